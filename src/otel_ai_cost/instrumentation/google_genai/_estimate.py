"""The input estimate of google-genai requests (for budgets): Gemini has no public offline tokenizer,
so the heuristic of ``otel_ai_cost.tokens`` counts the text the model reads, plus fixed overheads and
media tokens calibrated on the recorded requests (see the package doc and
``benchmarks/estimation_error_google_genai.py``)."""
from __future__ import annotations

import base64
from typing import Any, Iterable, List

from ..._request import TokenCount
from .._core import log_once
from ._attributes import field

# Estimation constants, calibrated on the recorded requests (benchmarks/estimation_error_google_genai.py).
_GEMINI_TOKEN_RATIO = 1.0          # Gemini tokens per heuristic (cl100k-like) token
_REQUEST_OVERHEAD = 1              # tokens of every request (the first turn's marker)
_TURN_OVERHEAD = 3                 # tokens per content turn beyond the first
_TOOL_DECLARATION_OVERHEAD = 4     # tokens added per function declaration
_BUILTIN_TOOL_TOKENS = 1           # a built-in tool (code execution, search, ...) without a declaration
_MEDIA_TOKENS = 258                # one image tile (768x768), or a media part of unknown size
_TILE = 768


def _image_tokens(data: Any) -> int:
    size = None
    try:
        from ...tokens import image_size

        raw = base64.b64decode(data) if isinstance(data, str) else data
        if isinstance(raw, (bytes, bytearray)):
            size = image_size(bytes(raw))
    except Exception:
        size = None
    if not size:
        return _MEDIA_TOKENS
    width, height = size
    if width <= 384 and height <= 384:
        return _MEDIA_TOKENS
    tiles = -(-width // _TILE) * -(-height // _TILE)
    return _MEDIA_TOKENS * max(tiles, 1)


class _Counter:
    """Accumulates heuristic text tokens and media tokens over the parts of a request."""

    def __init__(self) -> None:
        self.texts: List[str] = []
        self.media = 0
        self.fixed = 0

    def text(self, value: Any) -> None:
        if isinstance(value, str) and value:
            self.texts.append(value)

    def values(self, value: Any, depth: int = 0) -> None:
        """The keys and scalar values of a JSON-like value (function call arguments, results)."""
        if value is None or depth > 32:
            return
        if hasattr(value, "model_dump"):
            value = value.model_dump(exclude_none=True, mode="json")
        if isinstance(value, dict):
            for key, item in value.items():
                self.text(str(key))
                self.values(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.values(item, depth + 1)
        elif isinstance(value, str):
            self.text(value)
        elif isinstance(value, bool) or value is None:
            self.texts.append(str(value).lower())
        elif isinstance(value, (int, float)):
            self.texts.append(str(value))
        else:
            self.text(str(value))

    def schema(self, schema: Any, depth: int = 0) -> None:
        """Property names, descriptions and enum values of a parameter schema (types cost nothing)."""
        if schema is None or depth > 32:
            return
        if hasattr(schema, "model_dump"):
            schema = schema.model_dump(exclude_none=True, mode="json")
        if not isinstance(schema, dict):
            return
        self.text(schema.get("description"))
        for value in schema.get("enum") or ():
            self.text(str(value))
        for name, prop in (schema.get("properties") or {}).items():
            self.text(str(name))
            self.schema(prop, depth + 1)
        self.schema(schema.get("items"), depth + 1)

    def declaration(self, declaration: Any) -> None:
        self.text(field(declaration, "name"))
        self.text(field(declaration, "description"))
        parameters = field(declaration, "parameters")
        if parameters is None:
            parameters = field(declaration, "parameters_json_schema")
        self.schema(parameters)
        self.fixed += _TOOL_DECLARATION_OVERHEAD

    def part(self, part: Any) -> None:
        if part is None:
            return
        if isinstance(part, str):
            self.text(part)
            return
        if isinstance(part, (bytes, bytearray)):
            self.media += _MEDIA_TOKENS
            return
        text = field(part, "text")
        if isinstance(text, str):
            self.text(text)
        call = field(part, "function_call")
        if call is not None:
            self.text(field(call, "name"))
            self.values(field(call, "args"))
        result = field(part, "function_response")
        if result is not None:
            self.text(field(result, "name"))
            self.values(field(result, "response"))
        code = field(part, "executable_code")
        if code is not None:
            self.text(field(code, "code"))
        outcome = field(part, "code_execution_result")
        if outcome is not None:
            self.text(field(outcome, "output"))
        blob = field(part, "inline_data")
        if blob is not None:
            mime = field(blob, "mime_type") or ""
            if isinstance(mime, str) and mime.startswith("image/"):
                self.media += _image_tokens(field(blob, "data"))
            else:
                self.media += _MEDIA_TOKENS
        if field(part, "file_data") is not None:
            self.media += _MEDIA_TOKENS
        if type(part).__name__ in ("Image", "JpegImageFile", "PngImageFile"):  # PIL images
            self.media += _MEDIA_TOKENS

    def content(self, content: Any) -> int:
        """Count one content (a turn); returns how many turns it was."""
        if content is None:
            return 0
        if isinstance(content, (str, bytes, bytearray)):
            self.part(content)
            return 1
        parts = field(content, "parts")
        if parts is not None:
            for part in parts:
                self.part(part)
            return 1
        self.part(content)  # a bare Part (or Part dict)
        return 1

    def contents(self, contents: Any) -> None:
        if contents is None:
            return
        items: Iterable[Any] = contents if isinstance(contents, (list, tuple)) else [contents]
        turns = sum(self.content(item) for item in items)
        self.fixed += _REQUEST_OVERHEAD + _TURN_OVERHEAD * max(turns - 1, 0)

    def tools(self, tools: Any) -> None:
        for tool in tools or ():
            if callable(tool) and not hasattr(tool, "function_declarations"):
                # A Python function (automatic function calling): its name, docstring and parameters.
                import inspect

                self.text(getattr(tool, "__name__", ""))
                self.text(inspect.getdoc(tool) or "")
                try:
                    for name in inspect.signature(tool).parameters:
                        self.text(name)
                except (TypeError, ValueError):
                    pass
                self.fixed += _TOOL_DECLARATION_OVERHEAD
                continue
            declarations = field(tool, "function_declarations")
            if declarations:
                for declaration in declarations:
                    self.declaration(declaration)
            else:
                self.fixed += _BUILTIN_TOOL_TOKENS

    def total(self) -> int:
        from ...tokens import heuristic_tokens

        text = sum(heuristic_tokens(t) for t in self.texts)
        return int(round(text * _GEMINI_TOKEN_RATIO)) + self.media + self.fixed


def estimate_generate_input(contents: Any, config: Any) -> TokenCount:
    """Estimated ``promptTokenCount`` of a generate_content request (heuristic: no offline tokenizer)."""
    try:
        counter = _Counter()
        counter.contents(contents)
        system = field(config, "system_instruction")
        if system is not None:
            counter.content(system)
        counter.tools(field(config, "tools"))
        return TokenCount(counter.total(), "heuristic")
    except Exception as exc:  # noqa: BLE001
        log_once("google_genai estimate", exc)
        return TokenCount(0, "heuristic")


def estimate_embed_input(contents: Any) -> TokenCount:
    try:
        counter = _Counter()
        counter.contents(contents)
        return TokenCount(counter.total(), "heuristic")
    except Exception as exc:  # noqa: BLE001
        log_once("google_genai estimate", exc)
        return TokenCount(0, "heuristic")
