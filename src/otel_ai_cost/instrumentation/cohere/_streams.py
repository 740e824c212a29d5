"""Cohere streams: the state read off the v2 ``chat_stream`` events and off the v1 ``chat_stream`` /
``generate_stream`` events, and the async generator of an async ``*_stream`` behind its throttle
delay."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ... import _semconv as sc
from .. import _core as c
from .._core import CharCounter, Operation, Outcome, StreamState, as_str, get
from ._attributes import V1_ERROR_REASONS, billed_usage, cohere_usage, v1_response_id, v2_outcome


class _GeneratorStream(StreamState):
    """A Cohere stream is a generator: the request is sent on the first ``next``. A stream ended with
    no event read was never sent (a dropped generator) or failed: nothing to charge."""

    def end(self, error: Optional[BaseException] = None) -> None:
        if self.first_chunk_at is None and not self.operation.ended:
            self.operation.finish(Outcome(), error=error)
            return
        super().end(error)


class CohereStreamState(_GeneratorStream):
    """Reads the id (``message-start``), finish reason and usage (``message-end``) from v2 events.

    The outcome is the response's (``v2_outcome``): a stream that ends with an ERROR or TIMEOUT
    finish reason fails the span and charges only the billed units it reports; a stream that ends
    otherwise without ``message-end`` usage is estimated."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response_id: Optional[str] = None
        self.finish_reason: Optional[str] = None
        self.usage: Any = None  # ``message-end``'s ``delta.usage``
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        kind = get(event, "type")
        if kind == "message-start":
            self.response_id = as_str(get(event, "id")) or self.response_id
        elif kind == "message-end":
            delta = get(event, "delta")
            reason = get(delta, "finish_reason")
            if reason is not None:
                self.finish_reason = str(reason)
            usage = get(delta, "usage")
            if usage is not None:
                self.usage = usage
        elif self.usage is None:  # each delta kind read for the fields it has (an absent one is slow to read)
            if kind == "content-delta":
                content = get(get(get(event, "delta"), "message"), "content")
                self.counter.add(get(content, "text"))
                self.counter.add(get(content, "thinking"))
            elif kind == "tool-plan-delta":
                self.counter.add(get(get(get(event, "delta"), "message"), "tool_plan"))
            elif kind in ("tool-call-delta", "tool-call-start"):
                function = get(get(get(get(event, "delta"), "message"), "tool_calls"), "function")
                self.counter.add(get(function, "name"))
                self.counter.add(get(function, "arguments"))
        return False

    def outcome(self) -> Outcome:
        outcome = v2_outcome(self.response_id, self.finish_reason or None, self.usage)
        if outcome.error_type is None:
            outcome.usage, outcome.usage_source = self.usage_or_estimated(outcome.usage)
        return outcome


class CohereV1StreamState(_GeneratorStream):
    """Reads a v1 stream's events as the user reads them (nothing is buffered).

    ``chat_stream``: ``stream-start`` (``generation_id``), ``text-generation`` / ``tool-calls-chunk``
    (counted for the fallback estimate), ``stream-end`` (``finish_reason``, ``response`` with its
    ``response_id`` and ``meta``). ``generate_stream``: ``text-generation``, ``stream-end``
    (``finish_reason``, ``response.id``; ``response.meta`` when the API sends it, an extra field of
    the SDK model), ``stream-error`` (``finish_reason``, ``err``).

    A stream that ends in an error (a ``stream-error`` event, an ERROR* finish reason) has error
    status and ``error.type`` the finish reason, and usage and cost only when the provider reported
    billed units; a stream that ends otherwise without ``meta`` is estimated.
    """

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response_id: Optional[str] = None
        self.finish_reasons: List[str] = []
        self.meta: Any = None
        self.error: Optional[str] = None
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        kind = get(event, "event_type")
        if kind == "text-generation":
            self.counter.add(get(event, "text"))
        elif kind == "tool-calls-chunk":
            self.counter.add(get(event, "text"))
            delta = get(event, "tool_call_delta")
            self.counter.add(get(delta, "name"))
            self.counter.add(get(delta, "parameters"))
        elif kind == "stream-start":
            self.response_id = as_str(get(event, "generation_id")) or self.response_id
        elif kind == "stream-end":
            response = get(event, "response")
            self.response_id = v1_response_id(response) or as_str(get(response, "id")) or self.response_id
            self.meta = get(response, "meta")
            self._finish(get(event, "finish_reason"))
        elif kind == "stream-error":
            self._finish(get(event, "finish_reason") or "ERROR")
            self.error = self.error or (self.finish_reasons[-1] if self.finish_reasons else "ERROR")
        return False

    def _finish(self, reason: Any) -> None:
        if reason is None:
            return
        reason = str(reason)
        if reason not in self.finish_reasons:
            self.finish_reasons.append(reason)
        if reason in V1_ERROR_REASONS and self.error is None:
            self.error = reason

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: self.response_id}
        if self.finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = list(self.finish_reasons)
        if self.error is not None:
            return Outcome(usage=billed_usage(self.meta), attributes=attrs, error_type=self.error)
        usage, source = self.usage_or_estimated(cohere_usage(self.meta))
        return Outcome(usage=usage, usage_source=source, attributes=attrs)


class AsyncEvents:
    """The async generator of ``AsyncV2Client.chat_stream``, after an optional throttle delay."""

    def __init__(self, agen: Any, delay: Optional[float]) -> None:
        self._agen = agen
        self._delay = delay

    def __aiter__(self) -> "AsyncEvents":
        return self

    async def __anext__(self) -> Any:
        if self._delay:
            delay, self._delay = self._delay, None
            await c.async_sleep(delay)
        return await self._agen.__anext__()

    async def close(self) -> None:
        await self._agen.aclose()

    aclose = close
