"""Stream states of the ``openai`` SDK: chat completion (and legacy completion) chunks, Responses events."""
from __future__ import annotations

from typing import Any, Optional, Tuple

from ... import _semconv as sc
from .._chat import ChatStreamState, chat_usage
from .._core import CharCounter, Operation, Outcome, StreamState, as_str, estimated_usage, get, log_once
from ._attributes import provider_cost, responses_outcome


def _count_text(text: str, model: Optional[str]) -> int:
    from ...tokens import count_text

    return int(count_text(text, model or "").tokens)


class _FallbackCounter:
    """Running output-token count of the text deltas, used only when the stream carries no usage.

    When no usage is expected (injection turned off, caller did not ask), every delta is tokenised.
    """

    def __init__(self, model: Optional[str]) -> None:
        self.model = model
        self.tokens = 0
        self.failed = False

    def add(self, text: Any) -> None:
        if self.failed or not isinstance(text, str) or not text:
            return
        try:
            self.tokens += _count_text(text, self.model)
        except Exception as exc:
            self.failed = True
            log_once("stream token counting", exc)


_SDK_CHUNK_TYPES: Optional[Tuple[Any, Any, Any]] = None


def _sdk_chunk_types() -> Tuple[Any, Any, Any]:
    """(ChatCompletionChunk, its Choice, ChoiceDelta) of the installed SDK, for the fast path."""
    global _SDK_CHUNK_TYPES
    if _SDK_CHUNK_TYPES is None:
        try:
            from openai.types.chat.chat_completion_chunk import ChatCompletionChunk, Choice, ChoiceDelta

            _SDK_CHUNK_TYPES = (ChatCompletionChunk, Choice, ChoiceDelta)
        except Exception:  # an SDK without them: every chunk takes the generic path
            _SDK_CHUNK_TYPES = (_NoType, _NoType, _NoType)
    return _SDK_CHUNK_TYPES


class _NoType:
    pass


class OpenAIChatStreamState(ChatStreamState):
    """``ChatStreamState`` of the ``openai`` SDK: a fast path for its own parsed chunks, the system
    fingerprint, OpenRouter's ``usage.cost``, refusals, legacy completions' ``text``; a choice is
    ``error`` until its finish reason comes; the final usage chunk asked for on the caller's behalf
    is hidden."""

    pending_reason = "error"
    delta_texts = ("refusal",)
    legacy_text = True

    def __init__(self, operation: Operation, hide_usage_chunk: bool, usage_expected: bool = False) -> None:
        counter = (CharCounter() if usage_expected or hide_usage_chunk
                   else _FallbackCounter(operation.request.model))
        super().__init__(operation, counter, hide_usage_chunk)
        self.fingerprint: Optional[str] = None

    def observe(self, chunk: Any) -> bool:
        if type(chunk) is _sdk_chunk_types()[0]:
            try:
                return self._observe_sdk_chunk(chunk)
            except AttributeError:  # a field this SDK version lacks: read it the generic way
                pass
        if self.fingerprint is None:
            self.fingerprint = as_str(get(chunk, "system_fingerprint")) or None
        return super().observe(chunk)

    def _observe_sdk_chunk(self, chunk: Any) -> bool:
        """``observe`` for the SDK's own parsed chunk: its fields are plain attributes (no _get)."""
        _, choice_type, delta_type = _sdk_chunk_types()
        if not self.response_id:
            self.response_id = as_str(chunk.id)
        if not self.model:
            self.model = as_str(chunk.model)
        tier = chunk.service_tier
        if tier is not None and type(tier) is str:
            self.service_tier = tier or self.service_tier
        if self.fingerprint is None:
            self.fingerprint = as_str(chunk.system_fingerprint) or None
        choices = chunk.choices
        usage = chunk.usage
        usage_ok = usage is not None and chat_usage(usage) is not None
        if usage_ok:
            self.usage_obj = usage
        if type(choices) is not list:
            return super().observe(chunk)  # not parsed: the generic path (reads the same fields again)
        for choice in choices:
            if type(choice) is not choice_type or type(choice.delta) is not delta_type:
                return super().observe(chunk)
        finish_reasons = self.finish_reasons
        for choice in choices:
            index = choice.index
            index = index if type(index) is int and index else 0
            reason = choice.finish_reason
            if type(reason) is str:
                finish_reasons[index] = reason
            elif index not in finish_reasons:
                finish_reasons[index] = "error"
            if self.usage_obj is None:
                delta = choice.delta
                add = self.counter.add
                add(delta.content)
                add(delta.refusal)
                for call in delta.tool_calls or ():
                    function = get(call, "function")
                    add(get(function, "name"))
                    add(get(function, "arguments"))
        # Only the usage chunk we asked for on the caller's behalf is hidden, and only if it is one.
        return self.hide_usage_chunk and len(choices) == 0 and usage_ok

    def outcome(self) -> Outcome:
        outcome = super().outcome()
        attrs = outcome.attributes if outcome.attributes is not None else {}
        attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = self.service_tier
        attrs[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = self.fingerprint
        outcome.attributes = attrs
        outcome.provider_cost = provider_cost(self.usage_obj)
        return outcome


_RESPONSE_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


class ResponsesStreamState(StreamState):
    """Reads the final response (with usage) from Responses API stream events."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.response: Any = None
        self.final: Any = None
        self.final_kind: Optional[str] = None
        self.error_code: Optional[str] = None  # an ``error`` event's code
        # The Responses API always ends a stream with the final response and its usage.
        self.counter = CharCounter()

    def observe(self, event: Any) -> bool:
        kind = get(event, "type")
        response = get(event, "response")
        if response is not None:
            if kind in _RESPONSE_FINAL_EVENTS:
                self.final = response
                self.final_kind = kind
            elif self.response is None:
                self.response = response
        elif kind in ("response.output_text.delta", "response.refusal.delta",
                      "response.function_call_arguments.delta"):
            self.counter.add(get(event, "delta"))
        elif kind == "error":
            self.error_code = as_str(get(event, "code")) or "error"
        return False

    def outcome(self) -> Outcome:
        final = self.final if self.final is not None else self.response
        outcome = responses_outcome(final) if final is not None else Outcome()
        if self.final_kind == "response.failed":
            outcome.error_type = str(get(get(final, "error"), "code") or "response.failed")
        elif self.error_code is not None and self.final_kind is None:
            outcome.error_type = self.error_code
        if outcome.error_type is not None:
            return outcome  # failed: only the usage the response reports, no guess (``_core._stream_errors``)
        # response.incomplete is no error: its response reports the usage billed.
        if self.final is None or outcome.usage is None:
            outcome.usage = estimated_usage(self.operation.request, self.counter)
            outcome.usage_source = sc.AiCostUsageSourceValues.ESTIMATED
        return outcome


