"""Message content of OpenAI chat completions and Responses calls, in the GenAI conventions' JSON
structure (see ``_content``). Only built when content capture is asked for."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._core import get
from .._core._content import Accumulator, Bounds, finish_reason, items

# OpenAI finish reasons -> the conventions' values (others are kept as given).
_FINISH = {"tool_calls": "tool_call", "function_call": "tool_call"}






# ---------------------------------------------------------------------------------------------
# Chat completions


def _chat_content_parts(b: Bounds, content: Any) -> List[Dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [b.text_part(content)]
    parts: List[Dict[str, Any]] = []
    for item in items(content):
        if isinstance(item, str):
            parts.append(b.text_part(item))
            continue
        kind = get(item, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(b.text_part(get(item, "text")))
        elif kind == "refusal":
            parts.append(b.text_part(get(item, "refusal")))
        elif kind == "image_url":
            parts.append(b.data_url(get(get(item, "image_url"), "url"), "image"))
        elif kind == "input_audio":
            audio = get(item, "input_audio")
            fmt = get(audio, "format")
            parts.append(b.blob("audio", f"audio/{fmt}" if isinstance(fmt, str) else None, get(audio, "data")))
        elif kind == "file":
            file = get(item, "file")
            if isinstance(get(file, "file_id"), str):
                parts.append(b.file("document", None, get(file, "file_id")))
            else:
                parts.append(b.data_url(get(file, "file_data"), "document"))
        else:
            parts.append({"type": kind if isinstance(kind, str) else "unknown"})
    return parts


def chat_input(b: Bounds, messages: Any) -> Tuple[None, List[Dict[str, Any]]]:
    """(no separate system instructions: system messages are part of the history, messages)."""
    out: List[Dict[str, Any]] = []
    for message in items(messages):
        role = get(message, "role")
        role = role if isinstance(role, str) else "user"
        parts: List[Dict[str, Any]]
        if role in ("tool", "function"):
            response = get(message, "content")
            if not isinstance(response, str):
                texts = [get(p, "text") for p in items(response)]
                response = "".join(t for t in texts if isinstance(t, str))
            parts = [b.tool_response(get(message, "tool_call_id"), response)]
            role = "tool"
        else:
            parts = _message_parts(b, message)
            legacy = get(message, "function_call")
            if legacy is not None:
                parts.append(b.tool_call(None, get(legacy, "name"), get(legacy, "arguments")))
        entry: Dict[str, Any] = {"role": role, "parts": b.parts(parts)}
        name = get(message, "name")
        if isinstance(name, str) and name:
            entry["name"] = name
        out.append(entry)
    return None, out


def _message_parts(b: Bounds, message: Any) -> List[Dict[str, Any]]:
    """The parts of a chat message: its content, a refusal, its tool calls."""
    parts = _chat_content_parts(b, get(message, "content"))
    refusal = get(message, "refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(b.text_part(refusal))
    for call in items(get(message, "tool_calls")):
        function = get(call, "function")
        parts.append(b.tool_call(get(call, "id"), get(function, "name"), get(function, "arguments")))
    return parts


def chat_output(b: Bounds, completion: Any) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for choice in items(get(completion, "choices")):
        message = get(choice, "message")
        parts = _message_parts(b, message)
        role = get(message, "role")
        out.append({"role": role if isinstance(role, str) else "assistant", "parts": b.parts(parts),
                    "finish_reason": finish_reason(get(choice, "finish_reason"), _FINISH)})
    return out


class ChatAccumulator(Accumulator):
    """Chat completion chunks: text and refusal deltas, tool calls by index, finish reasons."""

    def add(self, chunk: Any) -> None:
        for choice in items(get(chunk, "choices")):
            index = get(choice, "index")
            index = index if isinstance(index, int) else 0
            delta = get(choice, "delta")
            self.text(index, get(delta, "content"))
            self.text(index, get(delta, "refusal"))
            for call in items(get(delta, "tool_calls")):
                key = (index, get(call, "index"))
                function = get(call, "function")
                if self.keyed(key) is None:
                    self.part(index, {"type": "tool_call", "id": get(call, "id"),
                                      "name": self.bounds.text(get(function, "name") or ""), "_arguments": ""}, key)
                self.append_arguments(key, get(function, "arguments"))
            reason = get(choice, "finish_reason")
            if isinstance(reason, str):
                self.finish(index, finish_reason(reason, _FINISH))


# ---------------------------------------------------------------------------------------------
# Responses


def _response_item_parts(b: Bounds, item: Any) -> Tuple[Optional[str], List[Dict[str, Any]]]:
    """(role, parts) of one Responses input / output item."""
    kind = get(item, "type")
    if isinstance(item, str):
        return "user", [b.text_part(item)]
    if kind == "function_call":
        return "assistant", [b.tool_call(get(item, "call_id"), get(item, "name"), get(item, "arguments"))]
    if kind == "function_call_output":
        return "tool", [b.tool_response(get(item, "call_id"), get(item, "output"))]
    if kind == "reasoning":
        texts = [get(s, "text") for s in items(get(item, "summary"))]
        texts += [get(s, "text") for s in items(get(item, "content"))]
        return "assistant", [b.text_part(t, "reasoning") for t in texts if isinstance(t, str)]
    if kind in (None, "message"):
        role = get(item, "role")
        content = get(item, "content")
        parts: List[Dict[str, Any]] = []
        if isinstance(content, str):
            parts.append(b.text_part(content))
        for piece in [] if isinstance(content, str) else items(content):
            ptype = get(piece, "type")
            if ptype in ("input_text", "output_text", "text"):
                parts.append(b.text_part(get(piece, "text")))
            elif ptype == "refusal":
                parts.append(b.text_part(get(piece, "refusal")))
            elif ptype == "input_image":
                if isinstance(get(piece, "file_id"), str):
                    parts.append(b.file("image", None, get(piece, "file_id")))
                else:
                    parts.append(b.data_url(get(piece, "image_url"), "image"))
            elif ptype == "input_file":
                if isinstance(get(piece, "file_id"), str):
                    parts.append(b.file("document", None, get(piece, "file_id")))
                elif isinstance(get(piece, "file_url"), str):
                    parts.append(b.uri("document", None, get(piece, "file_url")))
                else:
                    parts.append(b.data_url(get(piece, "file_data"), "document"))
            elif ptype == "input_audio":
                audio = get(piece, "input_audio")
                fmt = get(audio, "format")
                parts.append(b.blob("audio", f"audio/{fmt}" if isinstance(fmt, str) else None, get(audio, "data")))
            else:
                parts.append({"type": ptype if isinstance(ptype, str) else "unknown"})
        return (role if isinstance(role, str) else "user"), parts
    # A server-side tool (web_search_call, file_search_call, ...): its type and id, nothing more.
    return "assistant", [{"type": "server_tool_call", "id": get(item, "id"), "name": kind,
                          "server_tool_call": {"type": kind}}]


def responses_input(b: Bounds, input_value: Any, instructions: Any) -> Tuple[Any, List[Dict[str, Any]]]:
    system = [b.text_part(instructions)] if isinstance(instructions, str) and instructions else None
    out: List[Dict[str, Any]] = []
    for item in items(input_value):
        role, parts = _response_item_parts(b, item)
        if parts:
            out.append({"role": "system" if role == "developer" else role, "parts": b.parts(parts)})
    return system, out


def _responses_finish(response: Any, has_tool_call: bool) -> str:
    status = get(response, "status")
    if status == "incomplete":
        reason = get(get(response, "incomplete_details"), "reason")
        return {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason, reason or "error")
    if status == "failed" or status == "cancelled":
        return "error"
    if status == "completed":
        return "tool_call" if has_tool_call else "stop"
    return status if isinstance(status, str) else "error"


def responses_output(b: Bounds, response: Any) -> List[Dict[str, Any]]:
    parts: List[Dict[str, Any]] = []
    for item in items(get(response, "output")):
        _, item_parts = _response_item_parts(b, item)
        parts.extend(item_parts)
    has_tool_call = any(p.get("type") == "tool_call" for p in parts)
    return [{"role": "assistant", "parts": b.parts(parts), "finish_reason": _responses_finish(response, has_tool_call)}]


class ResponsesAccumulator(Accumulator):
    """Responses stream events: text deltas as they come; the final response, when read, replaces them."""

    def __init__(self) -> None:
        super().__init__()
        self.final: Any = None

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = get(event, "response")
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            self.text(0, get(event, "delta"))
        elif kind == "response.reasoning_summary_text.delta":
            self.text(0, get(event, "delta"), "reasoning")

    def output(self) -> List[Dict[str, Any]]:
        if self.final is not None:
            return responses_output(self.bounds, self.final)
        return super().output()
