"""Opt-in capture of message content: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.

Off unless the variable says so; prompts and completions are never recorded otherwise. When it is
``true`` (or ``span_only`` / ``span_and_event``, the values of the newer GenAI instrumentations), the
spans of the providers that support it carry, as the GenAI semantic conventions describe:

- ``gen_ai.system_instructions``: the instructions given apart from the chat history (Anthropic
  ``system``, Gemini ``system_instruction``, OpenAI Responses ``instructions``), a list of parts;
- ``gen_ai.input.messages``: the chat history sent, ``[{"role", "parts": [...], "name"?}]``;
- ``gen_ai.output.messages``: what the model answered, ``[{"role", "parts", "finish_reason"}]``.

Parts are ``text`` / ``reasoning`` (``content``), ``tool_call`` (``id``, ``name``, ``arguments``),
``tool_call_response`` (``id``, ``response``), ``blob`` (``modality``, ``mime_type``, base64
``content``), ``uri``, ``file`` and, for anything else, a generic part with its ``type``. The
OpenTelemetry SDK records no nested attribute values, so each attribute is its JSON string.

Bounds: every string in a part is cut at ``MAX_CHARS`` characters (a blob's base64 as well), and a
stream accumulates at most ``MAX_CHARS`` characters per text / tool-call part, and at most
``MAX_PARTS`` parts per message, read from the chunks the user read (never more of the stream).
A span whose content was cut says so with ``ai_cost.content.truncated``.

Supported: OpenAI chat completions and Responses, Anthropic messages, google-genai
generate_content, Cohere chat (API v2 and v1) and generate (v1), sync, async and streamed. The other
providers log once, when the variable asks for content, that they do not capture it.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import threading
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from ... import _semconv as sc
from ..._semconv import GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_SYSTEM_INSTRUCTIONS

logger = logging.getLogger("otel_ai_cost.instrumentation")

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRUNCATED = sc.AI_COST_CONTENT_TRUNCATED

MAX_CHARS = 16384
MAX_PARTS = 256

_ON = frozenset({"true", "span_only", "span_and_event"})
_OFF = frozenset({"", "false", "no_content"})

_state_lock = threading.Lock()
_cached: Optional[Tuple[Optional[str], bool]] = None  # (raw value, enabled)
_logged: Set[Tuple[str, Optional[str]]] = set()


def _log_once(key: Tuple[str, Optional[str]], message: str, *args: Any) -> None:
    with _state_lock:
        if key in _logged:
            return
        _logged.add(key)
    logger.warning(message, *args)


def capture_enabled() -> bool:
    """Whether message content is to be captured (read at each call: a cheap cached lookup)."""
    global _cached
    raw = os.environ.get(CAPTURE_ENV)
    cached = _cached
    if cached is not None and cached[0] == raw:
        return cached[1]
    value = (raw or "").strip().lower()
    if value in _ON:
        enabled = True
        if value == "span_and_event":
            _log_once(("events", raw), "otel-ai-cost: %s=%s: message content is recorded on spans only; "
                      "otel-ai-cost emits no GenAI events", CAPTURE_ENV, raw)
    elif value in _OFF:
        enabled = False
    elif value == "event_only":
        enabled = False
        _log_once(("events", raw), "otel-ai-cost: %s=%s: otel-ai-cost emits no GenAI events, so no message "
                  "content is recorded (use true or span_only to record it on spans)", CAPTURE_ENV, raw)
    else:
        enabled = False
        _log_once(("bad", raw), "otel-ai-cost: %s=%r is not one of true, false, no_content, span_only, "
                  "span_and_event: message content is not recorded", CAPTURE_ENV, raw)
    _cached = (raw, enabled)
    return enabled


def not_supported(provider: str) -> None:
    """Say once, if content capture is asked for, that ``provider``'s instrumentation lacks it."""
    if capture_enabled():
        _log_once(("unsupported", provider), "otel-ai-cost: %s=true, but message content capture is not "
                  "supported for %s: its spans carry no message content", CAPTURE_ENV, provider)


def active(span: Any) -> bool:
    """Capture for this span: asked for, and the span is recorded (no work for a dropped span)."""
    if not capture_enabled():
        return False
    try:
        return bool(span.is_recording())
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# Bounded building blocks


class Bounds:
    """Cuts strings at ``MAX_CHARS`` and remembers whether anything was cut."""

    __slots__ = ("truncated",)

    def __init__(self) -> None:
        self.truncated = False

    def text(self, value: Any) -> str:
        text: str = value if isinstance(value, str) else ("" if value is None else str(value))
        if len(text) > MAX_CHARS:
            self.truncated = True
            return text[:MAX_CHARS]
        return text

    def value(self, value: Any, depth: int = 0) -> Any:
        """A JSON-like value (tool arguments, results) with its strings cut; SDK models as dicts."""
        if depth > 16:
            self.truncated = True
            return None
        if hasattr(value, "model_dump"):
            try:
                value = value.model_dump(exclude_none=True, mode="json")
            except Exception:
                value = str(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        if isinstance(value, dict):
            return {str(k): self.value(v, depth + 1) for k, v in list(value.items())[:MAX_PARTS]}
        if isinstance(value, (list, tuple)):
            if len(value) > MAX_PARTS:
                self.truncated = True
            return [self.value(v, depth + 1) for v in list(value)[:MAX_PARTS]]
        if isinstance(value, (bytes, bytearray)):
            return self.text(base64.b64encode(bytes(value[: MAX_CHARS])).decode("ascii"))
        return self.text(str(value))

    def arguments(self, value: Any) -> Any:
        """Tool call arguments: a JSON string is decoded (kept as given when it is not JSON)."""
        if isinstance(value, str):
            if len(value) <= MAX_CHARS:
                try:
                    return self.value(json.loads(value))
                except ValueError:
                    pass
            return self.text(value)
        return self.value(value)

    def parts(self, parts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        if len(parts) > MAX_PARTS:
            self.truncated = True
            return parts[:MAX_PARTS]
        return parts

    # -- parts --------------------------------------------------------------------------------

    def text_part(self, text: Any, kind: str = "text") -> Dict[str, Any]:
        return {"type": kind, "content": self.text(text)}

    def tool_call(self, call_id: Any, name: Any, arguments: Any) -> Dict[str, Any]:
        return {"type": "tool_call", "id": call_id if isinstance(call_id, str) else None,
                "name": name if isinstance(name, str) else "", "arguments": self.arguments(arguments)}

    def tool_response(self, call_id: Any, response: Any) -> Dict[str, Any]:
        return {"type": "tool_call_response", "id": call_id if isinstance(call_id, str) else None,
                "response": self.value(response)}

    def blob(self, modality: str, mime_type: Any, data: Any) -> Dict[str, Any]:
        if isinstance(data, (bytes, bytearray)):
            if len(data) > MAX_CHARS:
                self.truncated = True
            data = base64.b64encode(bytes(data[:MAX_CHARS])).decode("ascii")
        return {"type": "blob", "modality": modality, "mime_type": mime_type if isinstance(mime_type, str) else None,
                "content": self.text(data)}

    def uri(self, modality: str, mime_type: Any, uri: Any) -> Dict[str, Any]:
        return {"type": "uri", "modality": modality, "mime_type": mime_type if isinstance(mime_type, str) else None,
                "uri": self.text(uri)}

    def file(self, modality: str, mime_type: Any, file_id: Any) -> Dict[str, Any]:
        return {"type": "file", "modality": modality, "mime_type": mime_type if isinstance(mime_type, str) else None,
                "file_id": self.text(file_id)}

    def data_url(self, url: Any, modality: str = "image") -> Dict[str, Any]:
        """An image / file URL: a ``data:`` URL is a blob, anything else a uri."""
        if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
            head, data = url[5:].split(";base64,", 1)
            return self.blob(modality, head or None, data)
        return self.uri(modality, None, url)


def items(value: Any) -> List[Any]:
    """``value`` as a list: nothing for None, a list or tuple as its items, anything else as one item."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def finish_reason(reason: Any, mapping: Mapping[str, str]) -> str:
    """The conventions' finish reason for a provider's ``reason`` (``mapping``; others kept as given,
    none at all is "error")."""
    if not isinstance(reason, str) or not reason:
        return "error"
    return mapping.get(reason, reason)


def modality_of(mime_type: Any) -> str:
    if isinstance(mime_type, str):
        for prefix in ("image", "audio", "video"):
            if mime_type.startswith(prefix + "/"):
                return prefix
    return "document"


def encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def attributes(bounds: Bounds, *, system: Any = None, inputs: Any = None, outputs: Any = None) -> Dict[str, Any]:
    """The span attributes for what was captured (None / empty: left out)."""
    attrs: Dict[str, Any] = {}
    if system:
        attrs[GEN_AI_SYSTEM_INSTRUCTIONS] = encode(system)
    if inputs:
        attrs[GEN_AI_INPUT_MESSAGES] = encode(inputs)
    if outputs is not None:
        attrs[GEN_AI_OUTPUT_MESSAGES] = encode(outputs)
    if bounds.truncated:
        attrs[TRUNCATED] = True
    return attrs


def record_input(operation: Any, convert: Any, *args: Any) -> None:
    """Set the input content attributes on ``operation``'s span: ``convert(bounds, *args)`` returns
    (system instructions, input messages). Never raises."""
    try:
        if not active(operation.span):
            return
        bounds = Bounds()
        system, inputs = convert(bounds, *args)
        attrs = attributes(bounds, system=system, inputs=inputs)
        if attrs:
            operation.span.set_attributes(attrs)
    except Exception as exc:
        from ._log import log_once

        log_once("content capture (input)", exc)


def output_attributes(convert: Any, *args: Any) -> Dict[str, Any]:
    """The output content attributes from ``convert(bounds, *args)`` (the output messages). Never raises."""
    try:
        bounds = Bounds()
        return attributes(bounds, outputs=convert(bounds, *args))
    except Exception as exc:
        from ._log import log_once

        log_once("content capture (output)", exc)
        return {}


def add_output(outcome: Any, operation: Any, convert: Any, *args: Any) -> Any:
    """``outcome`` with the output content attributes added, when capture is active for ``operation``."""
    if active(operation.span):
        attrs = output_attributes(convert, *args)
        if attrs:
            outcome.attributes = {**(outcome.attributes or {}), **attrs}
    return outcome


class Accumulator:
    """A stream's output, from the chunks the user read: per message index, its parts in order.

    ``text(index, kind, delta)`` appends to the message's last part of that kind (or starts one),
    at most ``MAX_CHARS`` characters each; ``part(index, part)`` adds a whole part; ``key`` lets a
    tool call's argument deltas find their part again. At most ``MAX_PARTS`` parts per message.
    """

    def __init__(self) -> None:
        self.bounds = Bounds()
        self.messages: Dict[int, Dict[str, Any]] = {}
        self._keyed: Dict[Any, Dict[str, Any]] = {}

    def _message(self, index: int) -> Dict[str, Any]:
        message = self.messages.get(index)
        if message is None:
            if len(self.messages) >= MAX_PARTS:
                self.bounds.truncated = True
                return {"parts": [], "role": "assistant"}
            message = self.messages[index] = {"role": "assistant", "parts": [], "finish_reason": None}
        return message

    def _add(self, message: Dict[str, Any], part: Dict[str, Any]) -> bool:
        if len(message["parts"]) >= MAX_PARTS:
            self.bounds.truncated = True
            return False
        message["parts"].append(part)
        return True

    def text(self, index: int, delta: Any, kind: str = "text") -> None:
        if not isinstance(delta, str) or not delta:
            return
        message = self._message(index)
        parts = message["parts"]
        if parts and parts[-1].get("type") == kind and "_open" in parts[-1]:
            part = parts[-1]
        else:
            part = {"type": kind, "content": "", "_open": True}
            if not self._add(message, part):
                return
        self._append(part, "content", delta)

    def _append(self, part: Dict[str, Any], field: str, delta: str) -> None:
        current = part.get(field) or ""
        room = MAX_CHARS - len(current)
        if room <= 0:
            self.bounds.truncated = True
            return
        if len(delta) > room:
            self.bounds.truncated = True
            delta = delta[:room]
        part[field] = current + delta

    def part(self, index: int, part: Dict[str, Any], key: Any = None) -> None:
        message = self._message(index)
        if self._add(message, part) and key is not None:
            self._keyed[key] = part

    def keyed(self, key: Any) -> Optional[Dict[str, Any]]:
        return self._keyed.get(key)

    def append_arguments(self, key: Any, delta: Any) -> None:
        part = self._keyed.get(key)
        if part is not None and isinstance(delta, str):
            self._append(part, "_arguments", delta)

    def finish(self, index: int, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self._message(index)["finish_reason"] = reason

    def role(self, index: int, role: Any) -> None:
        if isinstance(role, str) and role:
            self._message(index)["role"] = role

    def output(self) -> List[Dict[str, Any]]:
        out = []
        for index in sorted(self.messages):
            message = self.messages[index]
            parts = []
            for part in message["parts"]:
                part = {k: v for k, v in part.items() if k != "_open"}
                if "_arguments" in part:
                    part["arguments"] = self.bounds.arguments(part.pop("_arguments"))
                parts.append(part)
            out.append({"role": message["role"], "parts": parts,
                        "finish_reason": message["finish_reason"] or "error"})
        return out

    def attributes(self) -> Dict[str, Any]:
        return attributes(self.bounds, outputs=self.output())


def stream_accumulator(operation: Any, factory: Any) -> Any:
    """A new stream accumulator (``factory()``) when capture is active for ``operation``, else None."""
    try:
        return factory() if active(operation.span) else None
    except Exception:
        return None
