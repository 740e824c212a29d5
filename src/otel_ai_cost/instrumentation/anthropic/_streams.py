"""Streams of the Messages API: the stream state read as the user reads the events, and the
proxies of the ``messages.stream()`` helpers' managers."""
from __future__ import annotations

from typing import Any, Dict, Optional

import wrapt

from ... import _semconv as sc
from .. import _core as c
from .._core import CharCounter, Operation, Outcome, StreamState, as_str, get, safe
from .._stainless import sdk_types
from ._attributes import usage_fields, usage_from_fields

# A content block delta's type -> its text field (counted for the output estimate); a signature_delta
# has none.
_DELTA_TEXT: Dict[Any, Optional[str]] = {"text_delta": "text", "input_json_delta": "partial_json",
                                          "thinking_delta": "thinking", "signature_delta": None}


class MessageStreamState(StreamState):
    """Reads id, model, stop reason and usage from raw Messages stream events as the user reads them."""

    estimate_site = "anthropic stream input estimate"

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response_id: Optional[str] = None
        self.model: Optional[str] = None
        self.stop_reason: Optional[str] = None
        self.fields: Dict[str, Any] = {}
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        kind = get(event, "type")
        if kind == "content_block_delta":
            delta = get(event, "delta")
            delta_kind = get(delta, "type")
            if delta_kind in _DELTA_TEXT:  # only the field of the delta's type is read
                name = _DELTA_TEXT[delta_kind]
                if name is not None:
                    self.counter.add(get(delta, name))
            else:  # a type not known here: the first text field it has
                self.counter.add(get(delta, "text") or get(delta, "partial_json") or get(delta, "thinking"))
        elif kind == "message_start":
            message = get(event, "message")
            self.response_id = as_str(get(message, "id")) or self.response_id
            self.model = as_str(get(message, "model")) or self.model
            usage_fields(get(message, "usage"), self.fields)
        elif kind == "message_delta":
            reason = as_str(get(get(event, "delta"), "stop_reason"))
            if reason:
                self.stop_reason = reason
            usage_fields(get(event, "usage"), self.fields)  # the later totals replace the earlier
        return False

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: self.response_id}
        if self.stop_reason:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.stop_reason]
        # Without usage: the request was sent (there is a stream), so it is billed for its input even
        # if the stream was closed before message_start was read.
        usage, source = self.usage_or_estimated(usage_from_fields(self.fields))
        return Outcome(usage=usage, usage_source=source, response_model=self.model,
                       service_tier=self.fields.get("service_tier"), attributes=attrs)


def _adopt(message_stream: Any, holder: Dict[str, Any]) -> None:
    """anthropic 0.x: MessageStream builds its own Stream from the response instead of reading the
    one the request returned; put that one behind the proxy, with the same state (same span)."""
    proxy = holder.get("proxy")
    raw = getattr(message_stream, "_raw_stream", None)
    if not isinstance(proxy, (c.StreamProxy, c.AsyncStreamProxy)) or raw is None or raw is proxy:
        return
    if isinstance(raw, (c.StreamProxy, c.AsyncStreamProxy)):
        return
    Stream, AsyncStream, *_ = sdk_types("anthropic")
    if isinstance(raw, AsyncStream):
        adopted: Any = c.AsyncStreamProxy(raw, proxy._self_state)
    elif isinstance(raw, Stream):
        adopted = c.StreamProxy(raw, proxy._self_state)
    else:
        return
    proxy._self_finalizer.detach()
    message_stream._raw_stream = adopted
    holder["proxy"] = adopted


# ObjectProxy is generic in wrapt 2's stubs but cannot be subscripted at run time on wrapt 1.x.
class StreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """The MessageStreamManager ``stream()`` returned; ends the span when the ``with`` block exits
    (0.x MessageStream.close() closes the HTTP response directly, not through our proxy)."""

    def __init__(self, wrapped: Any, holder: Dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_holder = holder

    def __enter__(self) -> Any:
        stream = self.__wrapped__.__enter__()
        safe("anthropic stream adopt", _adopt, stream, self._self_holder)
        return stream

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            safe("anthropic stream exit", c.end_stream_proxy, self._self_holder.get("proxy"))


class AsyncStreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]  # as above
    """The AsyncMessageStreamManager counterpart of ``StreamManagerProxy``."""

    def __init__(self, wrapped: Any, holder: Dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_holder = holder

    async def __aenter__(self) -> Any:
        stream = await self.__wrapped__.__aenter__()
        safe("anthropic stream adopt", _adopt, stream, self._self_holder)
        return stream

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            safe("anthropic stream exit", c.end_stream_proxy, self._self_holder.get("proxy"))
