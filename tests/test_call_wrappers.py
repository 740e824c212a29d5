"""The shared call wrappers (instrumentation/_core/_calls.py) driven with a fake SDK method: the
re-entrancy guard makes one user call one span, and is reset whatever the call did."""
from __future__ import annotations

import asyncio
import contextlib
from contextvars import ContextVar
from typing import Any, Dict, List, Optional

import pytest

from otel_ai_cost.instrumentation._core import async_call_wrapper, sync_call_wrapper


class FakeOperation:
    def __init__(self, events: List[str]) -> None:
        self.events = events

    def apply_decision(self, call_kwargs: Dict[str, Any]) -> Optional[float]:
        self.events.append("decision")
        return None

    def fail(self, exc: BaseException) -> None:
        self.events.append(f"fail {type(exc).__name__}")

    def calling(self) -> Any:
        return contextlib.nullcontext()


class FakeCall:
    def __init__(self, events: List[str]) -> None:
        self.events = events
        self.operation = FakeOperation(events)

    def handle_result(self, result: Any) -> Any:
        self.events.append(f"result {result}")
        return result

    def finish_without_response(self) -> None:
        self.events.append("finished without response")


def _prepare(events: List[str]):
    def prepare(instance: Any, kwargs: Dict[str, Any]) -> Any:
        events.append(f"prepare {kwargs.get('name')}")
        return FakeCall(events), dict(kwargs)

    return prepare


@pytest.fixture
def guard() -> ContextVar[bool]:
    return ContextVar("test_guard", default=False)


def test_a_nested_call_is_not_instrumented_twice(guard):
    events: List[str] = []
    wrapper = sync_call_wrapper("test", _prepare(events), lambda delay: None, guard=guard)
    seen = []

    def inner(**kwargs):
        seen.append(guard.get())
        return "inner"

    def outer(**kwargs):  # an SDK method calling another wrapped one
        seen.append(guard.get())
        return wrapper(inner, None, (), {"name": "inner"})

    assert wrapper(outer, None, (), {"name": "outer"}) == "inner"
    assert events == ["prepare outer", "decision", "result inner"]
    assert seen == [True, True]
    assert guard.get() is False


def test_the_guard_is_reset_after_an_exception(guard):
    events: List[str] = []
    wrapper = sync_call_wrapper("test", _prepare(events), lambda delay: None, guard=guard)

    def failing(**kwargs):
        assert guard.get() is True
        raise ValueError("sdk error")

    with pytest.raises(ValueError):
        wrapper(failing, None, (), {"name": "a"})
    assert events == ["prepare a", "decision", "fail ValueError"]
    assert guard.get() is False
    # the next call is instrumented again
    assert wrapper(lambda **kwargs: "ok", None, (), {"name": "b"}) == "ok"
    assert events[-3:] == ["prepare b", "decision", "result ok"]


def test_without_a_guard_nested_calls_are_each_instrumented():
    events: List[str] = []
    wrapper = sync_call_wrapper("test", _prepare(events), lambda delay: None)

    def outer(**kwargs):
        return wrapper(lambda **kw: "inner", None, (), {"name": "inner"})

    assert wrapper(outer, None, (), {"name": "outer"}) == "inner"
    assert events == ["prepare outer", "decision", "prepare inner", "decision", "result inner", "result inner"]


def test_async_nested_call_and_reset_after_an_exception(guard):
    events: List[str] = []

    async def no_sleep(delay: float) -> None:
        pass

    wrapper = async_call_wrapper("test", _prepare(events), no_sleep, guard=guard)

    async def inner(**kwargs):
        assert guard.get() is True
        return "inner"

    async def outer(**kwargs):
        return await wrapper(inner, None, (), {"name": "inner"})

    async def failing(**kwargs):
        assert guard.get() is True
        raise asyncio.CancelledError()

    async def main() -> None:
        assert await wrapper(outer, None, (), {"name": "outer"}) == "inner"
        assert events == ["prepare outer", "decision", "result inner"]
        assert guard.get() is False
        with pytest.raises(asyncio.CancelledError):
            await wrapper(failing, None, (), {"name": "cancelled"})
        assert events[-3:] == ["prepare cancelled", "decision", "fail CancelledError"]
        assert guard.get() is False

    asyncio.run(main())
