"""Bedrock's streams: the states that read the events of ConverseStream and
InvokeModelWithResponseStream, and the proxies over botocore's ``EventStream`` (and aiobotocore's
``AioEventStream``) that hand them each event the user reads."""
from __future__ import annotations

import base64
import json
from typing import Any, Dict, List, Optional

from ... import _semconv as sc
from ...cost import Usage
from .. import _core as c
from .._core import Operation, Outcome, StreamState
from ._attributes import anthropic_1h, as_dict, as_list, converse_usage, metered_usage, service_tier, to_int


class _BedrockStreamState(StreamState):
    """What both Bedrock stream states keep: the finish reasons read, and the service tier (the
    one the request asked for until the stream reports its own)."""

    def __init__(self, operation: Operation, tier: Optional[str]) -> None:
        super().__init__(operation)
        self.finish_reasons: List[str] = []
        self.tier = tier

    def _attributes(self) -> Dict[str, Any]:
        attrs: Dict[str, Any] = {}
        if self.finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = list(self.finish_reasons)
        return attrs


class ConverseStreamState(_BedrockStreamState):
    """Reads a ConverseStream's events: ``messageStop`` (stop reason), ``metadata`` (usage)."""

    def __init__(self, operation: Operation, tier: Optional[str]) -> None:
        super().__init__(operation, tier)
        self.usage: Optional[Usage] = None

    def observe(self, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        stop = item.get("messageStop")
        if isinstance(stop, dict) and isinstance(stop.get("stopReason"), str):
            self.finish_reasons.append(stop["stopReason"])
        metadata = item.get("metadata")
        if isinstance(metadata, dict):
            usage = converse_usage(metadata.get("usage"))
            if usage is not None:
                self.usage = usage
            self.tier = service_tier(metadata.get("serviceTier")) or self.tier
        return False

    def outcome(self) -> Outcome:
        return Outcome(usage=self.usage, service_tier=self.tier, attributes=self._attributes())


class InvokeStreamState(_BedrockStreamState):
    """Reads InvokeModelWithResponseStream chunks: Bedrock's ``amazon-bedrock-invocationMetrics``
    (in the last chunk) first, the model family's own usage events as the fallback."""

    def __init__(self, operation: Operation, tier: Optional[str]) -> None:
        super().__init__(operation, tier)
        self.metered: Optional[Usage] = None
        self.family_input: Optional[int] = None
        self.family_output: Optional[int] = None
        self.family_read: Optional[int] = None
        self.family_write: Optional[int] = None
        self.write_1h = 0
        self.model: Optional[str] = None
        self.response_id: Optional[str] = None

    def observe(self, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        chunk = item.get("chunk")
        if not isinstance(chunk, dict):
            return False
        raw = chunk.get("bytes")
        if isinstance(raw, str):
            raw = base64.b64decode(raw)
        if not isinstance(raw, (bytes, bytearray)) or not raw:
            return False
        try:
            event = json.loads(raw)
        except ValueError:
            return False
        if isinstance(event, dict):
            self._event(event)
        return False

    def _event(self, event: Dict[str, Any]) -> None:
        metrics = event.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self.metered = metered_usage(
                to_int(metrics.get("inputTokenCount")), to_int(metrics.get("outputTokenCount")),
                to_int(metrics.get("cacheReadInputTokenCount")), to_int(metrics.get("cacheWriteInputTokenCount")),
            )
        kind = event.get("type")
        if kind == "message_start":  # Anthropic
            message = as_dict(event.get("message"))
            self.model = message.get("model") if isinstance(message.get("model"), str) else self.model
            self.response_id = message.get("id") if isinstance(message.get("id"), str) else self.response_id
            self._anthropic_usage(as_dict(message.get("usage")))
        elif kind == "message_delta":
            stop = as_dict(event.get("delta")).get("stop_reason")
            if isinstance(stop, str):
                self.finish_reasons.append(stop)
            self._anthropic_usage(as_dict(event.get("usage")))
        if isinstance(event.get("messageStop"), dict):  # Nova
            stop = event["messageStop"].get("stopReason")
            if isinstance(stop, str):
                self.finish_reasons.append(stop)
        if isinstance(event.get("metadata"), dict):
            usage = as_dict(event["metadata"].get("usage"))
            self.family_input = to_int(usage.get("inputTokens"))
            self.family_output = to_int(usage.get("outputTokens"))
            self.family_read = to_int(usage.get("cacheReadInputTokenCount"))
            self.family_write = to_int(usage.get("cacheWriteInputTokenCount"))
        if "inputTextTokenCount" in event:  # Titan
            self.family_input = to_int(event.get("inputTextTokenCount"))
        if "totalOutputTextTokenCount" in event:
            self.family_output = to_int(event.get("totalOutputTextTokenCount"))
        if "prompt_token_count" in event and event.get("prompt_token_count") is not None:  # Llama
            self.family_input = to_int(event.get("prompt_token_count"))
        if "generation_token_count" in event:
            self.family_output = to_int(event.get("generation_token_count"))
        for key in ("completionReason", "stop_reason", "finish_reason"):
            if kind is None and isinstance(event.get(key), str):
                self.finish_reasons.append(event[key])
        for output in as_list(event.get("outputs")):  # Mistral
            if isinstance(output, dict) and isinstance(output.get("stop_reason"), str):
                self.finish_reasons.append(output["stop_reason"])

    def _anthropic_usage(self, usage: Dict[str, Any]) -> None:
        if not usage:
            return
        for key, attr in (("input_tokens", "family_input"), ("output_tokens", "family_output"),
                          ("cache_read_input_tokens", "family_read"),
                          ("cache_creation_input_tokens", "family_write")):
            value = to_int(usage.get(key))
            if value is not None:
                setattr(self, attr, value)
        self.write_1h = anthropic_1h(usage) or self.write_1h

    def outcome(self) -> Outcome:
        usage = self.metered
        if usage is not None and self.write_1h:
            usage = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                          cache_read_input_tokens=usage.cache_read_input_tokens,
                          cache_write_input_tokens=usage.cache_write_input_tokens,
                          cache_write_1h_input_tokens=min(self.write_1h, usage.cache_write_input_tokens))
        if usage is None:
            usage = metered_usage(self.family_input, self.family_output, self.family_read, self.family_write,
                                   self.write_1h)
        attrs = self._attributes()
        if self.response_id:
            attrs[sc.GEN_AI_RESPONSE_ID] = self.response_id
        return Outcome(usage=usage, response_model=self.model, service_tier=self.tier, attributes=attrs)


# ---------------------------------------------------------------------------------------------
# Stream proxies over botocore's EventStream (iterable, not an iterator) and aiobotocore's


class _EventStreamProxyBase(c.StreamProxyBase):
    """What the sync and async event-stream proxies share: the iterator over the wrapped stream,
    opened at the first read (an ``EventStream`` is iterable, not an iterator), and the end of the
    span when reading stops or the stream is closed. The reads themselves stay inline in
    ``__next__`` / ``__anext__`` (no extra call per event)."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped, state)
        self._self_iterator: Any = None

    def _self_stopped(self, exc: BaseException) -> None:
        """Reading raised: exhaustion ends the span plainly; anything else (a stream error event, a
        broken connection, an interrupt, a cancellation) ends it with that error."""
        self._self_end(None if isinstance(exc, (StopIteration, StopAsyncIteration)) else exc)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


class EventStreamProxy(_EventStreamProxyBase):
    """Transparent proxy over a botocore ``EventStream``: observes each event the user reads."""

    def __iter__(self) -> "EventStreamProxy":
        return self

    def __next__(self) -> Any:
        state = self._self_state
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = iter(self.__wrapped__)
        state.reads += 1  # odd: a read in progress (for the reaper)
        try:
            item = next(iterator)
        except BaseException as exc:
            self._self_stopped(exc)
            raise
        state.reads += 1
        state.observe_safely(item)
        return item


class AsyncEventStreamProxy(_EventStreamProxyBase):
    """The aiobotocore ``AioEventStream`` counterpart of ``EventStreamProxy`` (its ``close()`` is
    synchronous too)."""

    def __aiter__(self) -> "AsyncEventStreamProxy":
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = self.__wrapped__.__aiter__()
        state.reads += 1  # odd: a read in progress (for the reaper)
        try:
            item = await iterator.__anext__()
        except BaseException as exc:
            self._self_stopped(exc)
            raise
        state.reads += 1
        state.observe_safely(item)
        return item
