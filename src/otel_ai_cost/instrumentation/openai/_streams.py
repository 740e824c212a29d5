"""Stream states of the ``openai`` SDK: chat completion (and legacy completion) chunks, Responses events."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from ... import _semconv as sc
from ..._tiktoken_offline import without_waiting
from .._chat import ChatStreamState, chat_usage
from .._core import CharCounter, Operation, Outcome, StreamState, as_str, get, log_once
from ._attributes import provider_cost, responses_outcome

_COUNT_TEXT: Optional[Callable[..., Any]] = None  # ``tokens.count_text``, imported by the first count


def _count_text(text: str, model: Optional[str]) -> int:
    global _COUNT_TEXT
    if _COUNT_TEXT is None:
        from ...tokens import count_text

        _COUNT_TEXT = count_text
    count_text = _COUNT_TEXT
    return int(without_waiting(lambda: count_text(text, model or "")).tokens)


class _FallbackCounter:
    """Running output-token count of the text deltas, used only when the stream carries no usage.

    When no usage is expected (injection turned off, caller did not ask), every delta is tokenised,
    never waiting for the tokenizer (``without_waiting``): while it loads (the first ~0.1-0.3 s on a
    machine) a delta is counted with the heuristic, so that the user's read is never held up.
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


# The installed SDK's ChatCompletionChunk (resolved by the first chat stream state; ``_NoType`` for an
# SDK without it: the generic path only). The fast path takes the SDK's own chunks; their choices and
# deltas are read as parsed models (``__dict__``), else the generic way.
_CHUNK: Any = None


class _NoType:
    pass


def _sdk_chunk_type() -> Any:
    """ChatCompletionChunk of the installed SDK, for the fast path."""
    global _CHUNK
    if _CHUNK is None:
        try:
            from openai.types.chat.chat_completion_chunk import ChatCompletionChunk

            _CHUNK = ChatCompletionChunk
        except Exception:  # an SDK without it: every chunk takes the generic path
            _CHUNK = _NoType
    return _CHUNK


class OpenAIChatStreamState(ChatStreamState):
    """``ChatStreamState`` of the ``openai`` SDK: a fast path for its own parsed chunks, the system
    fingerprint, OpenRouter's ``usage.cost``, refusals, legacy completions' ``text``; a choice is
    ``error`` until its finish reason comes; the final usage chunk asked for on the caller's behalf
    is hidden.

    The fast path reads the SDK's parsed chunk, choice and delta from their ``__dict__`` (a pydantic
    model's fields live there; one attribute read per object instead of one per field), reads the
    id, model and fingerprint only until it has them, the usage only from a chunk that carries one,
    and counts the text deltas (for the estimate of a stream that ends without usage) only until a
    usage arrives, inline for the cheap ``CharCounter``.
    """

    pending_reason = "error"
    delta_texts = ("refusal",)
    legacy_text = True

    def __init__(self, operation: Operation, hide_usage_chunk: bool, usage_expected: bool = False) -> None:
        counter = (CharCounter() if usage_expected or hide_usage_chunk
                   else _FallbackCounter(operation.request.model))
        super().__init__(operation, counter, hide_usage_chunk)
        self.fingerprint: Optional[str] = None
        self.head_pending = True  # id, model or fingerprint not read yet
        self.fast_count = type(self.counter) is CharCounter  # counted inline
        _sdk_chunk_type()

    def observe(self, chunk: Any) -> bool:
        if type(chunk) is not _CHUNK:
            return self._observe_generic(chunk)
        fields = chunk.__dict__
        try:
            choices = fields["choices"]
            usage = fields["usage"]
            tier = fields["service_tier"]
        except KeyError:  # a field this SDK version lacks: read it the generic way
            return self._observe_generic(chunk)
        if self.head_pending:
            self._read_head(fields)
        if tier != self.service_tier and tier and type(tier) is str:  # the same tier: nothing to do
            self.service_tier = tier
        usage_ok = False
        if usage is not None:
            read = chat_usage(usage)
            if read is not None:
                self.usage_obj = usage
                self.usage_read = read
                usage_ok = True
        if type(choices) is not list:
            return super().observe(chunk)  # not parsed: the generic path (reads the same fields again)
        counter = self.counter if self.usage_obj is None else None
        fast_count = self.fast_count
        finish_reasons = self.finish_reasons
        pending = self.pending_reason
        for choice in choices:
            # Every field is read before anything is recorded: a choice or delta that is not a parsed
            # model with these fields (no ``__dict__``, a field missing) falls back from that choice on.
            try:
                values = choice.__dict__
                delta = values["delta"]
                index = values["index"]
                reason = values["finish_reason"]
                if counter is not None:
                    texts = delta.__dict__
                    content = texts["content"]
                    refusal = texts["refusal"]
                    calls = texts["tool_calls"]
            except (AttributeError, KeyError):
                rest = choices[next(i for i, c in enumerate(choices) if c is choice):]
                return self._observe_choices(rest, usage_ok, len(choices))
            if type(index) is not int:
                index = 0
            if type(reason) is str:
                finish_reasons[index] = reason
            elif pending is not None and index not in finish_reasons:
                finish_reasons[index] = pending
            if counter is None:
                continue
            if fast_count:
                if content and type(content) is str:
                    counter.deltas += 1
                    counter.chars += len(content)
                if refusal:
                    counter.add(refusal)
            else:
                counter.add(content)
                counter.add(refusal)
            if calls:
                for call in calls:
                    function = get(call, "function")
                    counter.add(get(function, "name"))
                    counter.add(get(function, "arguments"))
        # Only the usage chunk we asked for on the caller's behalf is hidden, and only if it is one.
        return usage_ok and not choices and self.hide_usage_chunk

    def _read_head(self, fields: Dict[str, Any]) -> None:
        if not self.response_id:
            self.response_id = as_str(fields.get("id"))
        if not self.model:
            self.model = as_str(fields.get("model"))
        if self.fingerprint is None:
            self.fingerprint = as_str(fields.get("system_fingerprint")) or None
        self.head_pending = not (self.response_id and self.model and self.fingerprint is not None)

    def _observe_generic(self, chunk: Any) -> bool:
        if self.fingerprint is None:
            self.fingerprint = as_str(get(chunk, "system_fingerprint")) or None
        return super().observe(chunk)

    def outcome(self) -> Outcome:
        outcome = super().outcome()
        attrs = outcome.attributes if outcome.attributes is not None else {}
        attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = self.service_tier
        attrs[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = self.fingerprint
        outcome.attributes = attrs
        outcome.provider_cost = provider_cost(self.usage_obj)
        return outcome


_RESPONSE_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
_DELTA_EVENTS = ("response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta")


def _is_lifecycle(kind: str) -> bool:
    """The events that carry the ``response`` (``response.created``, ``response.in_progress``,
    ``response.queued``, the final ones) are the ``response.<state>`` ones: the others have a part
    between (``response.output_item.added``, ``response.output_text.done``, ...) or are ``error``."""
    return kind.startswith("response.") and kind.count(".") == 1


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
        # Dispatched on the type first: an event is read only for the fields its type has (reading
        # an absent field of an SDK model is the slow part of a read).
        kind = get(event, "type")
        if kind in _DELTA_EVENTS:
            self.counter.add(get(event, "delta"))
        elif type(kind) is not str or _is_lifecycle(kind):
            response = get(event, "response")
            if response is not None:
                if kind in _RESPONSE_FINAL_EVENTS:
                    self.final = response
                    self.final_kind = kind
                elif self.response is None:
                    self.response = response
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
        # Only the final response's usage is billed usage: without it, the estimate.
        outcome.usage, outcome.usage_source = self.usage_or_estimated(
            outcome.usage if self.final is not None else None)
        return outcome


