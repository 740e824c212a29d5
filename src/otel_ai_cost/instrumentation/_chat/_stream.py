"""The stream state of OpenAI-shaped chat completion chunks (``openai``, ``groq``, ``mistralai``)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from ... import _semconv as sc
from ...cost import Usage
from .._core import CharCounter, Operation, Outcome, StreamState, as_int, as_str, get, get_extra
from ._format import content_text
from ._response import chat_usage


class ChatStreamState(StreamState):
    """Reads id, model, service tier, finish reasons and usage from chat completion chunks as the
    user consumes them; until a usage arrives, counts the text deltas for the output estimate.

    What differs between providers is set by a subclass, as class attributes (no per-chunk call):
    ``read_usage`` (the usage reader), ``chunk_tier``, ``usage_holder``, ``event_data``, ``pending_reason``,
    ``delta_texts``, ``legacy_text``; ``hide_usage_chunk`` (per stream) hides the usage-only chunk
    asked for on the caller's behalf.
    """

    read_usage: Callable[[Any], Optional[Usage]] = staticmethod(chat_usage)
    # The service tier is the chunk's (Mistral: the usage's, read by the subclass's ``outcome``).
    chunk_tier = True
    # A chunk field whose ``usage`` is read when the chunk has none of its own (Groq: ``x_groq``).
    usage_holder: Optional[str] = None
    # The chunk is the ``data`` of the item the stream yields (Mistral's ``CompletionEvent``).
    event_data = False
    # The finish reason of a choice seen without one yet (None: only the reasons as reported).
    pending_reason: Optional[str] = None
    # The delta fields counted besides ``content`` and the tool calls while no usage was seen.
    delta_texts: Tuple[str, ...] = ()
    # Count a choice's own ``text`` (legacy completions; chat choices have a delta).
    legacy_text = False

    def __init__(self, operation: Operation, counter: Any = None, hide_usage_chunk: bool = False) -> None:
        super().__init__(operation)
        self.hide_usage_chunk = hide_usage_chunk
        self.response_id: Optional[str] = None
        self.model: Optional[str] = None
        self.service_tier: Optional[str] = None
        self.finish_reasons: Dict[int, str] = {}
        self.usage_obj: Any = None  # the last usage object read (with ``usage_read``, what it says)
        self.usage_read: Optional[Usage] = None
        # A stream expected to end with its usage counts cheaply (see ``CharCounter``).
        self.counter: Any = counter if counter is not None else CharCounter()

    def observe(self, chunk: Any) -> bool:
        if self.event_data:
            data = get(chunk, "data")
            if data is not None and not isinstance(data, (str, bytes)):
                chunk = data
        if not self.response_id:
            self.response_id = as_str(get(chunk, "id"))
        if not self.model:
            self.model = as_str(get(chunk, "model"))
        if self.chunk_tier:
            tier = get_extra(chunk, "service_tier")  # not a field of Groq's chunk: an extra one at most
            if tier is not None and type(tier) is str:
                self.service_tier = tier or self.service_tier
        read_usage = self.read_usage
        usage = get(chunk, "usage")
        read = read_usage(usage) if usage is not None else None
        if read is None and self.usage_holder is not None:
            usage = get(get(chunk, self.usage_holder), "usage")
            read = read_usage(usage) if usage is not None else None
        usage_ok = read is not None
        if usage_ok:
            self.usage_obj = usage
            self.usage_read = read
        choices = get(chunk, "choices")
        if not isinstance(choices, (list, tuple)):
            return False
        return self._observe_choices(choices, usage_ok, len(choices))

    def _observe_choices(self, choices: Any, usage_ok: bool, count: int) -> bool:
        """Read the finish reasons of ``choices`` (of a chunk with ``count`` choices), and count
        their text while no usage was seen; True for the usage chunk to hide."""
        finish_reasons = self.finish_reasons
        pending = self.pending_reason
        for choice in choices:
            index = as_int(get(choice, "index")) or 0
            reason = get(choice, "finish_reason")
            if isinstance(reason, str):  # as reported: a stream closed early has none
                finish_reasons[index] = reason
            elif pending is not None and index not in finish_reasons:
                finish_reasons[index] = pending
            if self.usage_obj is not None:
                continue
            add = self.counter.add
            delta = get(choice, "delta")
            content = get(delta, "content")  # a string, or (Mistral) a list of text chunks
            add(content if content is None or type(content) is str else content_text(content))
            for name in self.delta_texts:
                add(get(delta, name))
            if self.legacy_text and (delta is None or type(choice) is dict):
                add(get(choice, "text"))
            for call in get(delta, "tool_calls") or ():
                function = get(call, "function")
                add(get(function, "name"))
                add(get(function, "arguments"))
        # Only the usage chunk we asked for on the caller's behalf is hidden, and only if it is one.
        return self.hide_usage_chunk and count == 0 and usage_ok

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: self.response_id}
        if self.finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.finish_reasons[i] for i in sorted(self.finish_reasons)]
        usage, source = self.usage_or_estimated(self.usage_read if self.usage_obj is not None else None)
        return Outcome(usage=usage, usage_source=source, response_model=self.model,
                       service_tier=self.service_tier, attributes=attrs)
