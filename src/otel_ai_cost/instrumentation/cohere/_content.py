"""Message content of Cohere calls (API v2 ``chat``; API v1 ``chat``, ``generate``), in the GenAI
conventions' JSON structure (see ``_core._content``). Only built when content capture is asked for.

v2 chat: ``messages`` as they are (system messages in the history, as for OpenAI chat), the
response ``message``'s ``tool_plan`` (a reasoning part), content and tool calls.

v1 chat: ``preamble`` is the system instructions; ``chat_history`` (roles USER, CHATBOT, SYSTEM,
TOOL) then the turn's ``tool_results`` and ``message`` are the input; the answer is the response's
``text`` and ``tool_calls``. v1 tool calls carry no id: their parts have none. generate: the
``prompt`` is one user message, each generation one output message.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._core import get
from .._core._content import Accumulator, Bounds, finish_reason, items

# v1 FinishReason -> the conventions' finish reasons (others, USER_CANCEL, are kept as given).
_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "ERROR_LIMIT": "length",
           "ERROR_TOXIC": "content_filter", "ERROR": "error"}
_ROLES = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system", "TOOL": "tool"}


def _calls(b: Bounds, calls: Any) -> List[Dict[str, Any]]:
    return [b.tool_call(None, get(call, "name"), get(call, "parameters") or {}) for call in items(calls)]


def _results(b: Bounds, results: Any) -> List[Dict[str, Any]]:
    return [b.tool_response(None, get(result, "outputs")) for result in items(results)]


def _entry(b: Bounds, entry: Any) -> Optional[Dict[str, Any]]:
    role = get(entry, "role")
    parts: List[Dict[str, Any]] = []
    text = get(entry, "message")
    if isinstance(text, str) and text:
        parts.append(b.text_part(text))
    parts += _calls(b, get(entry, "tool_calls"))
    parts += _results(b, get(entry, "tool_results"))
    if not parts:
        return None
    return {"role": _ROLES.get(str(role).upper(), "user") if role else "user", "parts": b.parts(parts)}


def chat_input(b: Bounds, kwargs: Any) -> Tuple[Any, List[Dict[str, Any]]]:
    preamble = kwargs.get("preamble")
    system = [b.text_part(preamble)] if isinstance(preamble, str) and preamble else None
    out = [m for m in (_entry(b, e) for e in items(kwargs.get("chat_history"))) if m is not None]
    results = _results(b, kwargs.get("tool_results"))
    if results:
        out.append({"role": "tool", "parts": b.parts(results)})
    message = kwargs.get("message")
    if isinstance(message, str) and message:
        out.append({"role": "user", "parts": [b.text_part(message)]})
    return system, out


def chat_output(b: Bounds, response: Any) -> List[Dict[str, Any]]:
    parts: List[Dict[str, Any]] = []
    text = get(response, "text")
    if isinstance(text, str) and text:
        parts.append(b.text_part(text))
    parts += _calls(b, get(response, "tool_calls"))
    return [{"role": "assistant", "parts": b.parts(parts),
             "finish_reason": finish_reason(get(response, "finish_reason"), _FINISH)}]


def generate_input(b: Bounds, kwargs: Any) -> Tuple[Any, List[Dict[str, Any]]]:
    return None, [{"role": "user", "parts": [b.text_part(kwargs.get("prompt") or "")]}]


def generate_output(b: Bounds, response: Any) -> List[Dict[str, Any]]:
    return [{"role": "assistant", "parts": [b.text_part(get(g, "text") or "")],
             "finish_reason": finish_reason(get(g, "finish_reason"), _FINISH)}
            for g in items(get(response, "generations"))]


class ChatAccumulator(Accumulator):
    """v1 chat stream events: ``text-generation`` text, ``tool-calls-generation`` calls, the
    ``stream-end`` finish reason."""

    def add(self, event: Any) -> None:
        kind = get(event, "event_type")
        if kind == "text-generation":
            self.text(0, get(event, "text"))
        elif kind == "tool-calls-generation":
            for part in _calls(self.bounds, get(event, "tool_calls")):
                self.part(0, part)
        elif kind == "stream-end":
            self.finish(0, finish_reason(get(event, "finish_reason"), _FINISH))
        elif kind == "stream-start":
            self._message(0)


class GenerateAccumulator(Accumulator):
    """v1 generate stream events: ``text-generation`` text per generation ``index``; ``stream-end``
    / ``stream-error`` finish reasons."""

    def add(self, event: Any) -> None:
        kind = get(event, "event_type")
        index = get(event, "index")
        index = index if isinstance(index, int) else 0
        if kind == "text-generation":
            self.text(index, get(event, "text"))
        elif kind == "stream-error":
            self.finish(index, finish_reason(get(event, "finish_reason"), _FINISH))
        elif kind == "stream-end":
            reason = finish_reason(get(event, "finish_reason"), _FINISH)
            for i in list(self.messages) or [0]:
                if self._message(i)["finish_reason"] is None:
                    self.finish(i, reason)


# ---------------------------------------------------------------------------------------------
# API v2 chat: ``messages`` (system messages are part of the history, as for OpenAI chat), the
# response ``message`` (content, ``tool_plan``, ``tool_calls``), the stream's deltas.

_V2_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_call",
              "ERROR": "error", "TIMEOUT": "error"}


def _v2_content_parts(b: Bounds, content: Any) -> List[Dict[str, Any]]:
    if isinstance(content, str):
        return [b.text_part(content)] if content else []
    parts: List[Dict[str, Any]] = []
    for item in items(content):
        kind = get(item, "type")
        if kind == "text":
            parts.append(b.text_part(get(item, "text")))
        elif kind == "thinking":
            parts.append(b.text_part(get(item, "thinking"), "reasoning"))
        elif kind == "image_url":
            parts.append(b.data_url(get(get(item, "image_url"), "url"), "image"))
        elif kind == "document":
            parts.append({"type": "document", "content": b.value(get(item, "document"))})
        else:
            parts.append({"type": kind if isinstance(kind, str) else "unknown"})
    return parts


def _v2_message_parts(b: Bounds, message: Any) -> List[Dict[str, Any]]:
    plan = get(message, "tool_plan")
    parts = [b.text_part(plan, "reasoning")] if isinstance(plan, str) and plan else []
    parts += _v2_content_parts(b, get(message, "content"))
    for call in items(get(message, "tool_calls")):
        function = get(call, "function")
        parts.append(b.tool_call(get(call, "id"), get(function, "name"), get(function, "arguments")))
    return parts


def v2_chat_input(b: Bounds, messages: Any) -> Tuple[None, List[Dict[str, Any]]]:
    out: List[Dict[str, Any]] = []
    for message in items(messages):
        role = get(message, "role")
        role = role if isinstance(role, str) else "user"
        if role == "tool":
            content = get(message, "content")
            if not isinstance(content, str):
                content = [p.get("content") if p.get("type") == "text" else p for p in _v2_content_parts(b, content)]
            parts = [b.tool_response(get(message, "tool_call_id"), content)]
        else:
            parts = _v2_message_parts(b, message)
        out.append({"role": role, "parts": b.parts(parts)})
    return None, out


def v2_chat_output(b: Bounds, response: Any) -> List[Dict[str, Any]]:
    return [{"role": "assistant", "parts": b.parts(_v2_message_parts(b, get(response, "message"))),
             "finish_reason": finish_reason(get(response, "finish_reason"), _V2_FINISH)}]


class V2ChatAccumulator(Accumulator):
    """v2 chat stream events: content and tool-plan deltas, tool calls by index, the finish reason."""

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        delta = get(event, "delta")
        message = get(delta, "message")
        if kind == "content-delta":
            content = get(message, "content")
            self.text(0, get(content, "text"))
            self.text(0, get(content, "thinking"), "reasoning")
        elif kind == "tool-plan-delta":
            self.text(0, get(message, "tool_plan"), "reasoning")
        elif kind == "tool-call-start":
            call = get(message, "tool_calls")
            function = get(call, "function")
            self.part(0, {"type": "tool_call", "id": get(call, "id"),
                          "name": self.bounds.text(get(function, "name") or ""),
                          "_arguments": ""}, ("call", get(event, "index")))
            self.append_arguments(("call", get(event, "index")), get(function, "arguments"))
        elif kind == "tool-call-delta":
            function = get(get(message, "tool_calls"), "function")
            self.append_arguments(("call", get(event, "index")), get(function, "arguments"))
        elif kind == "message-end":
            self.finish(0, finish_reason(get(delta, "finish_reason"), _V2_FINISH))
        elif kind == "message-start":
            self._message(0)
