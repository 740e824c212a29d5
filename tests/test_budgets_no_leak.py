"""Budgets through the real openai SDK: no hold is ever left behind, sampling and shadow mode change
nothing they should not, and threads never overspend.

Every call goes through the instrumented ``openai`` SDK against the faked HTTP API of
tests/_fake_openai.py; AICostSpanProcessor reserves at span start and the instrumentor settles (or
releases) when the span ends. The store's ledger is the proof: every hold placed is settled or
released exactly once, and the settled spend is the cost the exported spans report.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
import time
from collections import Counter
from decimal import ROUND_CEILING, Decimal
from typing import Any, Dict, Iterator, List, Optional, Tuple

import httpx2
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

from _fake_openai import FakeOpenAI, chat_chunks, chat_completion, sse
from conftest import Pipeline
from otel_ai_cost import BudgetExceededError
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, Spend, SQLiteBudgetStore, block, lifetime, warn
from otel_ai_cost.instrumentation import _core
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
from otel_ai_cost.processor import AICostSpanProcessor

MODEL = "gpt-4o-mini"
BLOCKED_MODEL = "gpt-4o"  # the second budget of the mix refuses every call to it
PARTS = ["One", " two", " three", " four", " five", " six", " seven", " eight"]
# Chunks read before a stream is dropped: the role chunk and 4 of the 8 text deltas.
HALF_WAY = 5
NANOS = 10**9

COST = "gen_ai.usage.cost.amount"
ERROR_TYPE = "error.type"
BUDGET_PREFIX = "ai_cost.budget."
SHADOW_EVENT = "ai_cost.budget.shadow_decision"
# Durations measured on each run: present in both runs of a comparison, never equal.
TIMING_ATTRIBUTES = ("gen_ai.response.time_to_first_chunk",)


# ---------------------------------------------------------------------------------------------
# Helpers


def ceil_nanos(usd: Any) -> int:
    """USD as the store records a settle: the span's float, through str, rounded up to a nano-dollar."""
    return int((Decimal(str(usd)) * NANOS).to_integral_value(rounding=ROUND_CEILING))


def messages(what: str) -> List[Dict[str, str]]:
    """The request; its text tells the fake server how to answer (see ``answer``)."""
    return [{"role": "user", "content": what}]


def answer(body: dict) -> httpx2.Response:
    """The fake API's chat answer: an SDK error for "fail", a stream when asked, else a completion."""
    if body["messages"][-1]["content"] == "fail":
        return httpx2.Response(500, json={"error": {"message": "The server had an error while processing your request.",
                                                    "type": "server_error", "param": None, "code": None}})
    if body.get("stream"):
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               content=sse(chat_chunks(PARTS, include_usage=include)))
    return httpx2.Response(200, json=chat_completion())


class AsyncServer:
    """The async side of the fake API: "hang" requests are never answered (until cancelled)."""

    def __init__(self) -> None:
        self.arrived: Optional[asyncio.Event] = None

    async def chat(self, body: dict) -> httpx2.Response:
        if body["messages"][-1]["content"] == "hang":
            assert self.arrived is not None
            self.arrived.set()
            await asyncio.Event().wait()  # in flight until the task is cancelled
        return answer(body)


@contextlib.contextmanager
def instrumented(
        sampler: Any = None, **processor_kwargs: Any,
) -> Iterator[Tuple[AICostSpanProcessor, InMemorySpanExporter]]:
    """A provider with the processor (budgets as given) and an in-memory exporter, the SDK instrumented
    (the shared harness). Everything is shut down on exit: the processor unregisters and closes its store.
    """
    with contextlib.closing(Pipeline(OpenAIInstrumentor(), sampler=sampler, **processor_kwargs)) as p:
        yield p.processor, p.exporter


def store_of(processor: AICostSpanProcessor) -> Any:
    assert processor.budget_book is not None
    return processor.budget_book.store


def slot(entry: Any) -> Tuple[str, str, str]:
    return (entry.budget_id, entry.key, entry.window_key)


def check_every_hold_closed_once(store: Any) -> Dict[str, Any]:
    """Every reserve entry has exactly one settle or release for the same reservation and slot, no
    settle or release lacks its reserve, nothing expired, and no slot holds anything any more.

    Returns reservation id -> its closing entry ("settle" or "release").
    """
    reserves = store.ledger(kind="reserve")
    closings = store.ledger(kinds=("settle", "release"))
    assert store.ledger(kind="expire") == []
    reserved = Counter((e.reservation_id, slot(e)) for e in reserves)
    closed = Counter((e.reservation_id, slot(e)) for e in closings)
    assert set(reserved.values()) <= {1}
    assert closed == reserved, "holds not closed exactly once: " + repr(
        {k: (reserved[k], closed[k]) for k in set(reserved) | set(closed) if reserved[k] != closed[k]}
    )
    assert all(not e.attributes.get("late") for e in closings if e.kind == "settle")
    for budget_id, key, window_key in {slot(e) for e in store.ledger()}:
        assert store.spent(budget_id, key, [window_key]).reserved == 0, (budget_id, key, window_key)
    return {e.reservation_id: e for e in closings}


def trace_id_of(span: Any) -> str:
    return format(span.context.trace_id, "032x")


def replay(entries: List[Any], limit_nanos: int) -> int:
    """Replay the ledger in the order it was written; at every step spend + holds stay within the
    limit. Returns the most that was ever spent."""
    holds: Dict[str, int] = {}
    spent = most = 0
    for e in entries:
        if e.kind == "reserve":
            holds[e.reservation_id] = holds.get(e.reservation_id, 0) + e.amount_nanos
        elif e.kind == "settle":
            holds.pop(e.reservation_id, None)
            spent += e.amount_nanos
        elif e.kind in ("release", "expire"):
            holds.pop(e.reservation_id, None)
        assert spent + sum(holds.values()) <= limit_nanos, (e, spent, holds)
        most = max(most, spent)
    return most


# ---------------------------------------------------------------------------------------------
# 1. 10,000 calls, every way a call can end: no hold is left behind.

MIX = (
    "sync_ok", "sync_error", "async_ok", "async_cancelled",
    "sync_stream_dropped", "async_stream_dropped", "blocked_sync", "blocked_async_stream",
)
CALLS = 10_000


def _sync_call(client: Any, kind: str) -> None:
    if kind == "sync_ok":
        completion = client.chat.completions.create(model=MODEL, messages=messages("ok"))
        assert completion.choices[0].message.content == "Hello there"
    elif kind == "sync_error":
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=messages("fail"))
    elif kind == "sync_stream_dropped":
        stream = client.chat.completions.create(model=MODEL, messages=messages("stream"), stream=True)
        for _ in range(HALF_WAY):
            next(stream)
        del stream  # dropped half-way: never exhausted, never closed
    elif kind == "blocked_sync":
        with pytest.raises(BudgetExceededError):
            client.chat.completions.create(model=BLOCKED_MODEL, messages=messages("ok"))
    else:  # pragma: no cover
        raise AssertionError(kind)


async def _async_call(client: Any, server: AsyncServer, kind: str) -> None:
    if kind == "async_ok":
        completion = await client.chat.completions.create(model=MODEL, messages=messages("ok"))
        assert completion.choices[0].message.content == "Hello there"
    elif kind == "async_cancelled":
        server.arrived = asyncio.Event()
        task = asyncio.ensure_future(client.chat.completions.create(model=MODEL, messages=messages("hang")))
        await server.arrived.wait()  # the request is at the server, waiting for its answer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif kind == "async_stream_dropped":
        stream = await client.chat.completions.create(model=MODEL, messages=messages("stream"), stream=True)
        for _ in range(HALF_WAY):
            await stream.__anext__()
        del stream  # dropped half-way
    elif kind == "blocked_async_stream":
        with pytest.raises(BudgetExceededError):
            await client.chat.completions.create(model=BLOCKED_MODEL, messages=messages("stream"), stream=True)
    else:  # pragma: no cover
        raise AssertionError(kind)


async def _run_mix(kinds: List[str], sync_fake: FakeOpenAI, async_fake: FakeOpenAI, server: AsyncServer) -> None:
    sync_client, async_client = sync_fake.client(), async_fake.async_client()
    for kind in kinds:
        if kind.startswith("async") or kind == "blocked_async_stream":
            await _async_call(async_client, server, kind)
        else:
            _sync_call(sync_client, kind)
    await async_client.close()
    sync_client.close()


def test_no_hold_is_left_behind_after_10000_mixed_calls(tmp_path):
    kinds = [MIX[i % len(MIX)] for i in range(CALLS)]
    random.Random(20240611).shuffle(kinds)
    planned = Counter(kinds)
    store = SQLiteBudgetStore(str(tmp_path / "budgets.db"))
    budgets = [
        Budget("everything", "1000", lifetime()),  # every call matches it, none comes near its limit
        Budget("no-gpt-4o", "0", lifetime(), selector={"gen_ai.request.model": BLOCKED_MODEL}),
    ]
    sync_fake = FakeOpenAI(chat=answer)
    server = AsyncServer()
    async_fake = FakeOpenAI(chat=server.chat)
    started = time.perf_counter()
    with instrumented(budgets=budgets, budget_store=store) as (processor, exporter):
        asyncio.run(_run_mix(kinds, sync_fake, async_fake, server))
        gc.collect()  # the finalizers of the streams dropped half-way end their spans
        assert _core.flush_abandoned_streams()
        elapsed = time.perf_counter() - started
        spans = exporter.get_finished_spans()
        closing = check_every_hold_closed_once(store)
        reserves = store.ledger(kind="reserve")
        blocks = store.ledger(kind="block")
        settles = store.ledger(kind="settle")
        everything = store.spent("everything", "", ["lifetime"])
        no_gpt_4o = store.spent("no-gpt-4o", "", ["lifetime"])
    print(f"\n{CALLS} calls in {elapsed:.1f} s ({elapsed / CALLS * 1e3:.2f} ms a call)")

    # Every call made exactly one span, ended and exported.
    assert len(spans) == CALLS
    assert all(s.end_time is not None and s.end_time >= s.start_time for s in spans)
    assert len({s.context.span_id for s in spans}) == CALLS

    # The spans say how each call ended, as many of each as were made.
    def ending(span: Any) -> str:
        attrs = span.attributes
        if attrs.get(ERROR_TYPE) == "BudgetExceededError":
            assert attrs["gen_ai.request.model"] == BLOCKED_MODEL and COST not in attrs
            return "blocked"
        if attrs.get(ERROR_TYPE) == "InternalServerError":
            assert span.status.status_code == StatusCode.ERROR and COST not in attrs
            return "sdk_error"
        if attrs.get(ERROR_TYPE) == "CancelledError":
            assert span.status.status_code == StatusCode.ERROR and COST not in attrs
            return "cancelled"
        assert ERROR_TYPE not in attrs and span.status.status_code == StatusCode.UNSET
        assert attrs[COST] > 0
        if attrs.get("gen_ai.request.stream"):
            assert attrs["ai_cost.usage.source"] == "estimated"  # the usage chunk was never read
            return "stream_dropped"
        assert attrs["ai_cost.usage.source"] == "provider"
        return "ok"

    assert Counter(ending(s) for s in spans) == {
        "ok": planned["sync_ok"] + planned["async_ok"],
        "sdk_error": planned["sync_error"],
        "cancelled": planned["async_cancelled"],
        "stream_dropped": planned["sync_stream_dropped"] + planned["async_stream_dropped"],
        "blocked": planned["blocked_sync"] + planned["blocked_async_stream"],
    }
    # Blocked calls never reached the server; every other call did, once.
    sent = sync_fake.requests + async_fake.requests
    assert len(sent) == CALLS - planned["blocked_sync"] - planned["blocked_async_stream"]
    assert all(body["model"] == MODEL for body in sent)

    # Each span's hold: a priced call settled its cost, a call without usage released, a blocked
    # call held nothing and left one block entry. The reserve entry names the span's trace.
    by_trace = {trace_id_of(s): s for s in spans}
    assert len(by_trace) == CALLS
    held_traces = set()
    for entry in reserves:
        assert slot(entry) == ("everything", "", "lifetime")
        span = by_trace[entry.attributes["trace_id"]]
        held_traces.add(entry.attributes["trace_id"])
        closed = closing[entry.reservation_id]
        if COST in span.attributes:
            assert closed.kind == "settle" and closed.amount_nanos == ceil_nanos(span.attributes[COST])
        else:
            assert closed.kind == "release" and closed.amount_nanos == entry.amount_nanos
            assert span.attributes[ERROR_TYPE] in ("InternalServerError", "CancelledError")
    blocked = {t for t, s in by_trace.items() if s.attributes.get(ERROR_TYPE) == "BudgetExceededError"}
    assert held_traces == set(by_trace) - blocked
    assert sorted(e.attributes["trace_id"] for e in blocks) == sorted(blocked)
    assert {slot(e) for e in blocks} == {("no-gpt-4o", "", "lifetime")}

    # The settled spend is exactly what the exported spans cost, rounded up per settle.
    expected = sum(ceil_nanos(s.attributes[COST]) for s in spans if COST in s.attributes)
    assert everything.spent == expected == sum(e.amount_nanos for e in settles)
    assert everything.reserved == 0
    assert no_gpt_4o == Spend(0, 0)  # the blocking budget never held nor spent anything


# ---------------------------------------------------------------------------------------------
# 2. Spans the sampler drops are still enforced.

SAMPLED_CALLS = ("plain", "stream", "plain", "stream", "plain")


def _make(client: Any, how: str) -> None:
    if how == "plain":
        client.chat.completions.create(model=MODEL, messages=messages("ok"), max_tokens=40)
    else:
        for _ in client.chat.completions.create(model=MODEL, messages=messages("stream"), max_tokens=40, stream=True):
            pass


def test_sampled_out_calls_are_settled_and_blocked(tmp_path):
    # The recorded run: what these calls cost and hold when their spans are sampled.
    with instrumented(budgets=[Budget("recorded", "1000", lifetime())], budget_store=MemoryBudgetStore()) as (
        processor, exporter,
    ):
        fake = FakeOpenAI(chat=answer)
        client = fake.client()
        for how in SAMPLED_CALLS:
            _make(client, how)
        spans = exporter.get_finished_spans()
        recorded = store_of(processor)
        costs = [ceil_nanos(s.attributes[COST]) for s in spans]
        holds = [e.amount_nanos for e in recorded.ledger(kind="reserve")]
        assert recorded.spent("recorded", "", ["lifetime"]).spent == sum(costs)
    assert len(spans) == len(SAMPLED_CALLS) and all(c > 0 for c in costs)
    assert len(set(holds)) == 1  # max_tokens makes every call hold the same estimate
    hold = holds[0]
    # Room for exactly these calls: the next one's hold no longer fits.
    limit = Decimal(sum(costs) + hold - 1) / NANOS

    budget = Budget("small", limit, lifetime(), thresholds=[(Decimal("1"), block())])
    with instrumented(sampler=ALWAYS_OFF, budgets=[budget], budget_store=SQLiteBudgetStore(str(tmp_path / "b.db"))) as (
        processor, exporter,
    ):
        fake = FakeOpenAI(chat=answer)
        client = fake.client()
        for how in SAMPLED_CALLS:
            _make(client, how)
        store = store_of(processor)
        usage = store.spent("small", "", ["lifetime"])
        assert usage.spent == sum(costs)  # settled with what the sampled calls cost
        assert usage.reserved == 0
        assert [e.amount_nanos for e in store.ledger(kind="reserve")] == holds
        assert [e.amount_nanos for e in store.ledger(kind="settle")] == costs

        with pytest.raises(BudgetExceededError) as refused:
            client.chat.completions.create(model=MODEL, messages=messages("ok"), max_tokens=40)
        assert refused.value.budget_id == "small"
        assert len(fake.requests) == len(SAMPLED_CALLS)  # the refused call was never sent
        with pytest.raises(BudgetExceededError):  # and stays refused
            _make(client, "stream")
        assert len(fake.requests) == len(SAMPLED_CALLS)
        check_every_hold_closed_once(store)
        assert [e.amount_nanos for e in store.ledger(kind="block")] == [hold, hold]
        assert store.spent("small", "", ["lifetime"]) == usage
        assert exporter.get_finished_spans() == ()


# ---------------------------------------------------------------------------------------------
# 3. A shadow budget changes nothing but the records.


def _call_sequence_sync(client: Any) -> List[Any]:
    seen: List[Any] = []
    seen.append(client.chat.completions.create(model=MODEL, messages=messages("ok"), max_tokens=30).model_dump())
    seen.append([c.model_dump() for c in client.chat.completions.create(
        model=MODEL, messages=messages("stream"), stream=True)])
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model=MODEL, messages=messages("fail"))
    seen.append((type(failed.value).__name__, failed.value.status_code, failed.value.body))
    seen.append(client.responses.create(model=MODEL, input="Say this is a test").model_dump())
    seen.append(client.embeddings.create(model="text-embedding-3-small", input="hello").model_dump())
    with client.chat.completions.create(model=MODEL, messages=messages("stream"), stream=True) as stream:
        seen.append([next(stream).model_dump() for _ in range(HALF_WAY)])  # closed half-way
    return seen


async def _call_sequence_async(client: Any) -> List[Any]:
    seen: List[Any] = []
    seen.append((await client.chat.completions.create(model=MODEL, messages=messages("ok"))).model_dump())
    stream = await client.chat.completions.create(model=MODEL, messages=messages("stream"), stream=True)
    seen.append([c.model_dump() async for c in stream])
    await client.close()
    return seen


def _run_sequence(**processor_kwargs: Any) -> Tuple[List[Any], List[Any], List[Any], Any]:
    """(request bodies sent, responses seen, exported spans, the store's ledger or None)."""
    with instrumented(**processor_kwargs) as (processor, exporter):
        fake = FakeOpenAI(chat=answer)
        client = fake.client()
        seen = _call_sequence_sync(client)
        seen += asyncio.run(_call_sequence_async(fake.async_client()))
        client.close()
        spans = list(exporter.get_finished_spans())
        ledger = store_of(processor).ledger() if processor.budget_book is not None else None
        if ledger is not None:
            check_every_hold_closed_once(store_of(processor))
    return fake.requests, seen, spans, ledger


def _comparable(span: Any) -> Tuple[Any, ...]:
    attributes = {k: v for k, v in span.attributes.items() if not k.startswith(BUDGET_PREFIX)}
    for key in TIMING_ATTRIBUTES:
        if key in attributes:
            attributes[key] = "measured"
    events = [(e.name, dict(e.attributes)) for e in span.events if e.name != SHADOW_EVENT]
    return (span.name, span.kind, span.status.status_code, span.status.description, attributes, events)


def test_shadow_budget_changes_nothing_but_the_records():
    plain_requests, plain_seen, plain_spans, no_ledger = _run_sequence()
    shadow = Budget("shadow", "0", lifetime(), shadow=True)  # would block every call
    shadow_requests, shadow_seen, shadow_spans, ledger = _run_sequence(budgets=[shadow],
                                                                       budget_store=MemoryBudgetStore())

    assert no_ledger is None
    assert shadow_requests == plain_requests and len(plain_requests) == 8
    assert shadow_seen == plain_seen
    assert [_comparable(s) for s in shadow_spans] == [_comparable(s) for s in plain_spans]
    assert len(plain_spans) == 8
    # The plain run carries no budget records at all ...
    for span in plain_spans:
        assert not [k for k in span.attributes if k.startswith(BUDGET_PREFIX)]
        assert not [e for e in span.events if e.name == SHADOW_EVENT]
    # ... the shadow run says, on each span, that the call went ahead and what the budget would have done.
    for span in shadow_spans:
        assert span.attributes["ai_cost.budget.decision"] == "allow"
        events = [e for e in span.events if e.name == SHADOW_EVENT]
        assert len(events) == 1
        assert events[0].attributes["ai_cost.budget.decision"] == "block"
        assert events[0].attributes["ai_cost.budget.id"] == "shadow"
    # The ledger records every would-be block, flagged shadow, and no enforced one.
    would_block = [e for e in ledger if e.kind == "block"]
    assert len(would_block) == len(shadow_spans)
    assert all(e.budget_id == "shadow" and e.attributes.get("shadow") is True for e in would_block)
    assert sorted(e.attributes["trace_id"] for e in would_block) == sorted(trace_id_of(s) for s in shadow_spans)
    # The shadow budget still keeps the spend, as if it were enforced.
    settled = sum(e.amount_nanos for e in ledger if e.kind == "settle")
    assert settled == sum(ceil_nanos(s.attributes[COST]) for s in shadow_spans if COST in s.attributes) > 0


# ---------------------------------------------------------------------------------------------
# 4. Threads through the processor never overspend.

THREADS = 32
MAX_TOKENS = 200
CALLS_THAT_FIT = 400


class ExactServer:
    """Answers every chat call with the usage the client holds for it: input = the processor's
    input estimate, output = max_tokens (the worst case a reservation covers)."""

    def __init__(self) -> None:
        self.prompt_tokens = 1
        self.lock = threading.Lock()

    def chat(self, body: dict) -> httpx2.Response:
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": body["max_tokens"],
                 "total_tokens": self.prompt_tokens + body["max_tokens"]}
        return httpx2.Response(200, json=chat_completion(model=body["model"], usage=usage))


def test_threads_never_overspend_through_the_processor(tmp_path):
    server = ExactServer()
    # Calibrate: the input tokens the processor estimates, and that the answer then costs all it held.
    with instrumented(budgets=[Budget("calibration", "1000", lifetime())], budget_store=MemoryBudgetStore()) as (
        processor, exporter,
    ):
        client = FakeOpenAI(chat=server.chat).client()
        client.chat.completions.create(model=MODEL, messages=messages("ok"), max_tokens=MAX_TOKENS)
        (span,) = exporter.get_finished_spans()
        assert span.attributes["ai_cost.estimate.output_basis"] == "max_tokens"
        server.prompt_tokens = span.attributes["ai_cost.estimate.input_tokens"]
        client.chat.completions.create(model=MODEL, messages=messages("ok"), max_tokens=MAX_TOKENS)
        reserve = store_of(processor).ledger(kind="reserve")[-1]
        settle = store_of(processor).ledger(kind="settle")[-1]
    hold = reserve.amount_nanos
    assert settle.amount_nanos == hold  # worst case: every call costs exactly what it held
    limit_nanos = CALLS_THAT_FIT * hold + hold // 2  # room for CALLS_THAT_FIT calls, not one more
    limit = Decimal(limit_nanos) / NANOS

    budget = Budget("shared", limit, lifetime(), thresholds=[(Decimal("0.8"), warn()), (Decimal("1"), block())])
    fake = FakeOpenAI(chat=server.chat)
    client = fake.client()
    start = threading.Barrier(THREADS)
    allowed = [0] * THREADS
    blocked = [0] * THREADS
    errors: List[BaseException] = []

    def spend_until_blocked(i: int) -> None:
        try:
            start.wait()
            while True:
                try:
                    client.chat.completions.create(model=MODEL, messages=messages("ok"), max_tokens=MAX_TOKENS)
                except BudgetExceededError:
                    blocked[i] += 1
                    return
                allowed[i] += 1
                assert sum(allowed) <= 10 * CALLS_THAT_FIT, "the budget never refuses"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with instrumented(budgets=[budget], budget_store=SQLiteBudgetStore(str(tmp_path / "threads.db"))) as (
        processor, exporter,
    ):
        threads = [threading.Thread(target=spend_until_blocked, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        store = store_of(processor)
        usage = store.spent("shared", "", ["lifetime"])
        ledger = store.ledger()
        check_every_hold_closed_once(store)
        spans = exporter.get_finished_spans()

    made = sum(allowed)
    assert made == limit_nanos // hold == CALLS_THAT_FIT  # as many calls as fit, not one more
    assert sum(blocked) == THREADS  # every thread ran until refused
    assert usage.spent == made * hold <= limit_nanos
    assert usage.reserved == 0
    assert replay(ledger, limit_nanos) == usage.spent  # spend + holds never passed the limit at any step
    assert len([e for e in ledger if e.kind == "block"]) == THREADS
    assert len(fake.requests) == made
    assert len(spans) == made + THREADS and all(s.end_time is not None for s in spans)
    assert sum(ceil_nanos(s.attributes[COST]) for s in spans if COST in s.attributes) == usage.spent
