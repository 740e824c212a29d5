"""Message content of google-genai generate_content calls, in the GenAI conventions' JSON structure
(see ``_content``). Only built when content capture is asked for."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from .._core._content import Accumulator, Bounds, items, modality_of
from ._attributes import field  # the SDK's dicts may use camelCase keys


def _role(role: Any) -> str:
    if role == "model":
        return "assistant"
    return role if isinstance(role, str) and role else "user"


def part(b: Bounds, p: Any) -> Optional[Dict[str, Any]]:
    if p is None:
        return None
    if isinstance(p, str):
        return b.text_part(p)
    if isinstance(p, (bytes, bytearray)):
        return b.blob("image", None, bytes(p))
    text = field(p, "text")
    if isinstance(text, str):
        return b.text_part(text, "reasoning" if field(p, "thought") is True else "text")
    call = field(p, "function_call")
    if call is not None:
        return b.tool_call(field(call, "id"), field(call, "name"), field(call, "args"))
    result = field(p, "function_response")
    if result is not None:
        return b.tool_response(field(result, "id") or field(result, "name"), field(result, "response"))
    blob = field(p, "inline_data")
    if blob is not None:
        mime = field(blob, "mime_type")
        return b.blob(modality_of(mime), mime, field(blob, "data"))
    file = field(p, "file_data")
    if file is not None:
        mime = field(file, "mime_type")
        return b.uri(modality_of(mime), mime, field(file, "file_uri"))
    code = field(p, "executable_code")
    if code is not None:
        return {"type": "server_tool_call", "id": None, "name": "code_execution",
                "server_tool_call": {"type": "code_execution", "code": b.text(field(code, "code"))}}
    outcome = field(p, "code_execution_result")
    if outcome is not None:
        return {"type": "server_tool_call_response", "id": None,
                "server_tool_call_response": {"type": "code_execution", "output": b.text(field(outcome, "output"))}}
    return {"type": type(p).__name__ if not isinstance(p, dict) else "unknown"}


def _parts(b: Bounds, content: Any) -> List[Dict[str, Any]]:
    parts = field(content, "parts") if not isinstance(content, (str, bytes, bytearray)) else None
    if parts is None:
        one = part(b, content)
        return [one] if one else []
    return b.parts([x for x in (part(b, p) for p in items(parts)) if x])


def generate_input(b: Bounds, contents: Any, config: Any) -> Tuple[Any, List[Dict[str, Any]]]:
    system = field(config, "system_instruction")
    system_parts = _parts(b, system) if system is not None else None
    out: List[Dict[str, Any]] = []
    pending: List[Dict[str, Any]] = []  # bare parts / strings: one user message
    for item in items(contents):
        if isinstance(item, (str, bytes, bytearray)) or field(item, "parts") is None:
            one = part(b, item)
            if one:
                pending.append(one)
            continue
        if pending:
            out.append({"role": "user", "parts": b.parts(pending)})
            pending = []
        parts = _parts(b, item)
        role = _role(field(item, "role"))
        if role == "user" and parts and all(p.get("type") == "tool_call_response" for p in parts):
            role = "tool"
        out.append({"role": role, "parts": parts})
    if pending:
        out.append({"role": "user", "parts": b.parts(pending)})
    return system_parts or None, out


def generate_output(b: Bounds, response: Any, finish: Callable[[Any], Optional[str]]) -> List[Dict[str, Any]]:
    out = []
    for cand in items(field(response, "candidates")):
        out.append({"role": "assistant", "parts": _parts(b, field(cand, "content")),
                    "finish_reason": finish(field(cand, "finish_reason")) or "error"})
    return out


class GenerateAccumulator(Accumulator):
    """Stream chunks: each candidate's text parts merged, other parts kept whole, finish reasons."""

    def __init__(self, finish: Callable[[Any], Optional[str]]) -> None:
        super().__init__()
        self._finish = finish

    def add(self, chunk: Any) -> None:
        for position, cand in enumerate(items(field(chunk, "candidates"))):
            index = field(cand, "index")
            index = index if isinstance(index, int) else position
            for p in items(field(field(cand, "content"), "parts")):
                text = field(p, "text")
                if isinstance(text, str):
                    self.text(index, text, "reasoning" if field(p, "thought") is True else "text")
                else:
                    one = part(self.bounds, p)
                    if one:
                        self.part(index, one)
            reason = self._finish(field(cand, "finish_reason"))
            if reason:
                self.finish(index, reason)
