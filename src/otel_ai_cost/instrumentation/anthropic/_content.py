"""Message content of Anthropic Messages calls, in the GenAI conventions' JSON structure (see
``_content``). Only built when content capture is asked for."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .._core import get
from .._core._content import Accumulator, Bounds, finish_reason, items

# stop_reason -> the conventions' finish reasons (others are kept as given).
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_call",
           "refusal": "content_filter"}






def _source(b: Bounds, block: Any, modality: str) -> Dict[str, Any]:
    source = get(block, "source")
    kind = get(source, "type")
    if kind == "base64":
        return b.blob(modality, get(source, "media_type"), get(source, "data"))
    if kind == "url":
        return b.uri(modality, None, get(source, "url"))
    if kind == "file":
        return b.file(modality, None, get(source, "file_id"))
    if kind == "text":
        return b.text_part(get(source, "data"))
    return {"type": modality}


def block_parts(b: Bounds, content: Any) -> List[Dict[str, Any]]:
    if isinstance(content, str):
        return [b.text_part(content)]
    parts: List[Dict[str, Any]] = []
    for block in items(content):
        kind = get(block, "type")
        if kind == "text":
            parts.append(b.text_part(get(block, "text")))
        elif kind == "thinking":
            parts.append(b.text_part(get(block, "thinking"), "reasoning"))
        elif kind == "tool_use":
            parts.append(b.tool_call(get(block, "id"), get(block, "name"), get(block, "input")))
        elif kind == "tool_result":
            result = get(block, "content")
            if not isinstance(result, str):
                result = [p.get("content") if p.get("type") == "text" else p for p in block_parts(b, result)]
            parts.append(b.tool_response(get(block, "tool_use_id"), result))
        elif kind == "image":
            parts.append(_source(b, block, "image"))
        elif kind == "document":
            parts.append(_source(b, block, "document"))
        elif kind == "server_tool_use":
            parts.append({"type": "server_tool_call", "id": get(block, "id"), "name": get(block, "name") or "",
                          "server_tool_call": {"type": get(block, "name") or "server_tool_use",
                                               "input": b.value(get(block, "input"))}})
        elif isinstance(kind, str) and kind.endswith("_tool_result"):
            parts.append({"type": "server_tool_call_response", "id": get(block, "tool_use_id"),
                          "server_tool_call_response": {"type": kind}})
        else:
            parts.append({"type": kind if isinstance(kind, str) else "unknown"})
    return parts


def messages_input(b: Bounds, messages: Any, system: Any) -> Tuple[Any, List[Dict[str, Any]]]:
    system_parts = block_parts(b, system) if system else None
    out = []
    for message in items(messages):
        role = get(message, "role")
        parts = block_parts(b, get(message, "content"))
        if role == "user" and parts and all(p.get("type") == "tool_call_response" for p in parts):
            role = "tool"
        out.append({"role": role if isinstance(role, str) else "user", "parts": b.parts(parts)})
    return system_parts or None, out


def message_output(b: Bounds, message: Any) -> List[Dict[str, Any]]:
    return [{"role": "assistant", "parts": b.parts(block_parts(b, get(message, "content"))),
             "finish_reason": finish_reason(get(message, "stop_reason"), _FINISH)}]


class MessageAccumulator(Accumulator):
    """Raw Messages stream events: blocks by index, their text / thinking / tool-input deltas."""

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "content_block_start":
            block = get(event, "content_block")
            btype = get(block, "type")
            index = get(event, "index")
            if btype in ("tool_use", "server_tool_use"):
                self.part(0, {"type": "tool_call", "id": get(block, "id"),
                              "name": self.bounds.text(get(block, "name") or ""), "_arguments": ""}, index)
            elif btype == "text":
                self.part(0, {"type": "text", "content": self.bounds.text(get(block, "text") or "")}, index)
            elif btype == "thinking":
                self.part(0, {"type": "reasoning", "content": self.bounds.text(get(block, "thinking") or "")}, index)
            elif isinstance(btype, str):
                self.part(0, {"type": btype}, index)
        elif kind == "content_block_delta":
            delta = get(event, "delta")
            index = get(event, "index")
            part = self.keyed(index)
            dtype = get(delta, "type")
            if part is None:
                return
            if dtype == "text_delta":
                self._append(part, "content", get(delta, "text") or "")
            elif dtype == "thinking_delta":
                self._append(part, "content", get(delta, "thinking") or "")
            elif dtype == "input_json_delta":
                self.append_arguments(index, get(delta, "partial_json"))
        elif kind == "message_delta":
            self.finish(0, finish_reason(get(get(event, "delta"), "stop_reason"), _FINISH))
        elif kind == "message_start":
            self._message(0)
