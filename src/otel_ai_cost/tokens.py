"""Input-token estimates for LLM requests, before the request is sent.

OpenAI models are counted with tiktoken (o200k_base or cl100k_base, chosen by model, loaded offline
by ``_tiktoken_offline``) plus the overhead the API adds around messages, tools and images. Models
without a public tokenizer (Claude, Gemini, Llama, ...) use a calibrated heuristic. Every public
function returns a ``TokenCount`` whose ``method`` says which was used, and never raises.

Formulas (each checked against the recorded real responses in ``tests/fixtures/recorded``, see
``benchmarks/estimation_error.py``):

- Chat message: 3 tokens + tokens(role) + tokens(content), + 1 + tokens(name) when a name is set;
  + 3 for the reply priming (2 for gpt-5*, measured on the recordings). OpenAI cookbook,
  "How to count tokens with tiktoken".
- Assistant tool calls: one call is a message ``assistant to=functions.NAME`` whose content is the
  arguments; several calls are one ``assistant to=multi_tool_use.parallel`` message whose content
  is ``{"tool_uses":[{"recipient_name":"functions.NAME","parameters":ARGS},...]}`` (compact JSON).
  A tool result is a message whose author is ``functions.NAME``. Exact on the recordings.
- Tool definitions: rendered as the TypeScript-like ``namespace functions {...}`` block the models
  see, counted, + 9; - 4 when a system/developer message (or instructions) exists, since the block
  joins it; tool_choice "none" + 1, a forced function + 4 + tokens(name). This is the approximation
  of hmarr/openai-chat-tokens. Non-function tools (web search, ...) count their JSON.
- Images: ``image_tokens`` (the documented tile formula; patch formula for the models that use it).
  Unknown size (a URL, an undecodable data URI) assumes 1024x1024: 765 tokens on gpt-4o.
- Audio input: 10 tokens per second of audio (1 per 100 ms), duration from the WAV header or, for
  other formats, the data size at 128 kbit/s.
- Files (``file`` / ``input_file`` parts) and reasoning items are not counted: their token cost is
  decided server-side.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import struct
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional

from otel_ai_cost import _tiktoken_offline
from otel_ai_cost._request import TokenCount

__all__ = [
    "count_text",
    "encoding_for_model",
    "estimate_chat_input",
    "estimate_embedding_input",
    "estimate_responses_input",
    "heuristic_tokens",
    "image_tokens",
]

_log = logging.getLogger(__name__)
_warned: set[str] = set()

TIKTOKEN = "tiktoken"
HEURISTIC = "heuristic"

# ----------------------------------------------------------------------------- model -> encoding

# Substrings naming a model family that does not use an OpenAI tokenizer.
_NON_OPENAI_MARKERS = (
    "claude", "anthropic", "gemini", "gemma", "palm", "bison", "mistral", "mixtral", "codestral",
    "pixtral", "ministral", "magistral", "devstral", "llama", "command", "cohere", "grok", "xai",
    "deepseek", "qwen", "phi-", "jamba", "titan", "amazon.", "nova-", "yi-", "glm", "kimi",
    "moonshot", "nemotron", "falcon", "sonar", "dbrx", "olmo", "granite", "minimax", "ernie",
)
_CL100K_PREFIXES = (
    "gpt-4-", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002", "davinci-002",
    "babbage-002",
)
_O200K_PREFIXES = (
    "gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-", "gpt-image",
    "gpt-realtime", "gpt-audio", "gpt-oss", "codex", "computer-use", "omni-moderation",
)


def encoding_for_model(model: Optional[str], default: str = _tiktoken_offline.O200K_BASE) -> Optional[str]:
    """The tiktoken encoding name for ``model``, or None when only the heuristic applies.

    ``provider/`` prefixes are ignored. Names we cannot place (Azure deployment names, None) are
    assumed to be OpenAI models and get ``default``: o200k_base, the encoding of every recent chat
    model (embeddings pass cl100k_base, the encoding of every OpenAI embedding model).
    """
    return _encoding_name(model or "", default)


@lru_cache(maxsize=1024)
def _encoding_name(model: str, default: str) -> Optional[str]:
    name = model.strip().lower()
    if not name:
        return default
    if any(marker in name for marker in _NON_OPENAI_MARKERS):
        return None
    name = name.rsplit("/", 1)[-1]
    if name.startswith(_O200K_PREFIXES):
        return _tiktoken_offline.O200K_BASE
    if name == "gpt-4" or name.startswith(_CL100K_PREFIXES):
        return _tiktoken_offline.CL100K_BASE
    return default


def _bare_model(model: Optional[str]) -> str:
    return (model or "").strip().lower().rsplit("/", 1)[-1]


# ----------------------------------------------------------------------------- heuristic

# An approximation, with the stdlib ``re``, of cl100k_base's pre-tokenizer: a word with at most
# one leading punctuation character, digit groups of up to 3, punctuation runs, newlines, spaces.
_PRETOKEN = re.compile(
    r"'(?i:[sdmt]|ll|ve|re)|(?:[^\r\n\w]|_)?([^\W\d_]+)|\d{1,3}| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]|\s+(?!\S)|\s+"
)
# Calibrated against cl100k_base on 37 English package descriptions (119k tokens) and 28 Python
# modules (131k tokens), the METADATA and openai/yaml sources in the venv, then checked on prose it
# was not fitted to (tests/test_tokens.py). A lowercase or Capitalised ASCII word costs 1 token plus
# 1 per 6 letters beyond 7; camelCase and UPPERCASE words are split at case changes, an uppercase
# part costing 1 plus 1 per 4 letters beyond the first; a punctuation run costs 1 plus 1/2 per extra
# character (1/8 when one character repeats, as in "====="); any other pre-token 1.
# Mean absolute error: 3.7% on the English texts, 2.5% on the code (chars/4: 6.1% and 17.6%).
_WORD_FREE_LETTERS = 7
_LETTERS_PER_EXTRA_TOKEN = 6.0
_UPPERCASE_LETTERS_PER_EXTRA_TOKEN = 4.0
_EXTRA_PUNCTUATION_COST = 0.5
_EXTRA_REPEATED_PUNCTUATION_COST = 0.125
_CASE_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")


def _word_tokens(length: int) -> float:
    if length > _WORD_FREE_LETTERS:
        return 1 + (length - _WORD_FREE_LETTERS) / _LETTERS_PER_EXTRA_TOKEN
    return 1.0


def _piece_cost(piece: str) -> float:
    """The heuristic cost of one pre-token (as ``_PRETOKEN`` splits it in context)."""
    match = _PRETOKEN.match(piece)
    word = match.group(1) if match is not None else None
    if word is not None:
        length = len(word)
        if word.isascii():
            if length == 1 or word[1:].islower():
                return _word_tokens(length)
            cost = 0.0
            for part in _CASE_PART.findall(word):
                if part.isupper():
                    cost += 1 + (len(part) - 1) / _UPPERCASE_LETTERS_PER_EXTRA_TOKEN
                else:
                    cost += _word_tokens(len(part))
            return cost
        if ord(word[0]) >= 0x2E80:  # CJK and later blocks: about one token per character
            return length
        return 1 + length / 3  # other scripts (Cyrillic, Greek, accented Latin): about one per 3 letters
    first = piece[0]
    if first.isspace() or first.isdigit() or first == "'":
        return 1
    run = piece.strip()
    if len(run) > 1 and run.count(run[0]) == len(run):
        return 1 + (len(run) - 1) * _EXTRA_REPEATED_PUNCTUATION_COST
    return 1 + (len(piece.rstrip("\r\n")) - 1) * _EXTRA_PUNCTUATION_COST


# The same split without the capture group, for findall; costs of pre-tokens seen before are cached.
_PIECES = re.compile(_PRETOKEN.pattern.replace("([^\\W\\d_]+)", "(?:[^\\W\\d_]+)"))
_PIECE_COSTS: dict = {}
_PIECE_COSTS_SIZE = 16384


def heuristic_tokens(text: str) -> int:
    """Estimated cl100k_base token count of ``text`` without a tokenizer."""
    global _PIECE_COSTS
    pieces = _PIECES.findall(text)
    costs = _PIECE_COSTS
    try:
        return round(sum(map(costs.__getitem__, pieces)))  # every pre-token seen before
    except KeyError:
        pass
    if len(costs) >= _PIECE_COSTS_SIZE:
        _PIECE_COSTS = costs = {}
    n = 0.0
    for piece in pieces:
        cost = costs.get(piece)
        if cost is None:
            cost = costs[piece] = _piece_cost(piece)
        n += cost
    return round(n)


# ----------------------------------------------------------------------------- counting


def _warn_once(key: str, exc: BaseException) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning("otel-ai-cost: token estimation failed in %s (%r); using a rough estimate. "
                     "Please report this with the request shape.", key, exc)


# Conversations resend their history on every call, so counts of recent strings are kept.
# Bounded: at most _COUNT_CACHE_SIZE strings of at most _COUNT_CACHE_MAX_CHARS characters.
_COUNT_CACHE_SIZE = 1024
_COUNT_CACHE_MAX_CHARS = 8192


@lru_cache(maxsize=_COUNT_CACHE_SIZE)
def _cached_count(encoding_name: str, text: str) -> int:
    encoding = None if encoding_name == HEURISTIC else _tiktoken_offline.get_encoding(encoding_name)
    if encoding is None:
        return heuristic_tokens(text)
    return encoding.count(text)


def _counter(
    model: Optional[str], default: str = _tiktoken_offline.O200K_BASE
) -> tuple[Callable[[str], int], str]:
    """A text -> token count function for ``model`` and the method it uses."""
    name = encoding_for_model(model, default)
    encoding = _tiktoken_offline.get_encoding(name) if name else None
    if encoding is None:
        return _heuristic_count, HEURISTIC
    encode = encoding.count

    def count(text: str) -> int:
        if not text:
            return 0
        if len(text) <= _COUNT_CACHE_MAX_CHARS:
            return _cached_count(name, text)
        return encode(text)

    return count, TIKTOKEN


def _heuristic_count(text: str) -> int:
    if not text:
        return 0
    if len(text) <= _COUNT_CACHE_MAX_CHARS:
        return _cached_count(HEURISTIC, text)
    return heuristic_tokens(text)


def _fallback(payload: Any) -> TokenCount:
    try:
        return TokenCount(heuristic_tokens(str(payload)), HEURISTIC)
    except Exception:  # noqa: BLE001
        return TokenCount(0, HEURISTIC)


def count_text(text: str, model: Optional[str] = None) -> TokenCount:
    """Tokens in ``text`` for ``model`` (no message overhead)."""
    try:
        count, method = _counter(model)
        return TokenCount(count(_text(text)), method)
    except Exception as exc:  # noqa: BLE001
        _warn_once("count_text", exc)
        return _fallback(text)


# ----------------------------------------------------------------------------- images

_DEFAULT_IMAGE_SIZE = (1024, 1024)
# (base tokens, tokens per 512px tile) for models that do not use the gpt-4o values (85, 170).
_TILE_PRICES = (("gpt-4o-mini", 2833, 5667), ("o1", 75, 150), ("o3", 75, 150))
# Tokens per 32px patch for the models billed by patches (OpenAI vision guide).
_PATCH_MULTIPLIERS = (
    ("gpt-4.1-mini", 1.62), ("gpt-4.1-nano", 2.46), ("gpt-5-mini", 1.62), ("gpt-5-nano", 2.46),
    ("o4-mini", 1.72),
)
_MAX_PATCHES = 1536


def image_tokens(width: int, height: int, detail: str = "auto", model: Optional[str] = None) -> int:
    """Input tokens for one image of ``width`` x ``height`` pixels.

    Tile formula: detail "low" costs the base (85). Otherwise ("high", and "auto", where the API
    may choose either: we assume the dearer) the image is scaled to fit in 2048x2048, then its
    shortest side scaled down to 768, and each 512px tile costs 170, plus 85. gpt-4o-mini and the
    o1/o3 models use other constants; gpt-4.1-mini/nano, gpt-5-mini/nano and o4-mini count 32px
    patches (at most 1536) times a per-model multiplier, whatever the detail.
    """
    try:
        width, height = int(width), int(height)
    except (TypeError, ValueError, OverflowError):
        width, height = _DEFAULT_IMAGE_SIZE
    name = _bare_model(model)
    for prefix, multiplier in _PATCH_MULTIPLIERS:
        if name.startswith(prefix):
            return math.ceil(_patches(width, height) * multiplier)
    base, tile = 85, 170
    for prefix, tile_base, tile_price in _TILE_PRICES:
        if name.startswith(prefix):
            base, tile = tile_base, tile_price
            break
    if detail == "low":
        return base
    w, h = float(max(width, 1)), float(max(height, 1))
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def _patches(width: int, height: int) -> int:
    w, h = float(max(width, 1)), float(max(height, 1))
    patches = math.ceil(w / 32) * math.ceil(h / 32)
    if patches <= _MAX_PATCHES:
        return patches
    r = math.sqrt(32 * 32 * _MAX_PATCHES / (w * h))
    r *= min(math.floor(w * r / 32) / (w * r / 32), math.floor(h * r / 32) / (h * r / 32))
    return min(_MAX_PATCHES, math.ceil(w * r / 32) * math.ceil(h * r / 32))


# Enough base64 for the headers we read; JPEG's size marker can follow a large EXIF block.
_IMAGE_HEADER_B64_CHARS = 1 << 18


def image_size_from_data_uri(url: str) -> Optional[tuple[int, int]]:
    """(width, height) read from the header of a PNG/JPEG/GIF/WebP ``data:`` URI, or None."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",")
    if comma < 0 or ";base64" not in url[:comma]:
        return None
    chunk = url[comma + 1 : comma + 1 + _IMAGE_HEADER_B64_CHARS]
    chunk = chunk[: len(chunk) - len(chunk) % 4]
    try:
        data = base64.b64decode(chunk)
    except (binascii.Error, ValueError):
        return None
    return image_size(data)


def image_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from the first bytes of a PNG, GIF, WebP or JPEG file, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if kind == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        return None
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> Optional[tuple[int, int]]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _image_url_tokens(url: Any, detail: Any, model: Optional[str]) -> int:
    size = image_size_from_data_uri(url) if isinstance(url, str) else None
    width, height = size or _DEFAULT_IMAGE_SIZE
    return image_tokens(width, height, detail if isinstance(detail, str) else "auto", model)


# ----------------------------------------------------------------------------- audio

_AUDIO_TOKENS_PER_SECOND = 10
_COMPRESSED_AUDIO_BYTES_PER_SECOND = 16_000  # 128 kbit/s


def _audio_tokens(data: Any, audio_format: Any) -> int:
    if not isinstance(data, str) or not data:
        return 0
    size = len(data) * 3 // 4
    bytes_per_second = _COMPRESSED_AUDIO_BYTES_PER_SECOND
    if audio_format == "wav" or data.startswith("UklGR"):  # "RIFF" in base64
        try:
            header = base64.b64decode(data[:64])
            rate = int.from_bytes(header[28:32], "little")
            if header[:4] == b"RIFF" and rate > 0:
                bytes_per_second = rate
                size -= 44
        except (binascii.Error, ValueError):
            pass
    return math.ceil(max(size, 0) / bytes_per_second * _AUDIO_TOKENS_PER_SECOND)


# ----------------------------------------------------------------------------- shared pieces


def _as_dict(obj: Any) -> Optional[dict]:
    """A message or item as a dict: dicts as they are, pydantic models (SDK objects) dumped."""
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            value = dump(exclude_none=True)
        except Exception:  # noqa: BLE001
            return None
        return value if isinstance(value, dict) else None
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


class _Estimator:
    """Counts one request: holds the text counter and the tool-call id -> function name map."""

    def __init__(self, model: Optional[str]) -> None:
        self.model = model
        self.count, self.method = _counter(model)
        self.tool_names: dict[str, str] = {}
        self.has_system = False

    def part(self, part: Any) -> int:
        """One content part of a chat message or a Responses message."""
        if isinstance(part, str):
            return self.count(part)
        p = _as_dict(part)
        if p is None:
            return self.count(_text(part))
        kind = p.get("type")
        if kind in ("text", "input_text", "output_text"):
            return self.count(_text(p.get("text")))
        if kind == "image_url":
            image = p.get("image_url")
            if isinstance(image, dict):
                return _image_url_tokens(image.get("url"), image.get("detail"), self.model)
            return _image_url_tokens(image, None, self.model)
        if kind == "input_image":
            return _image_url_tokens(p.get("image_url"), p.get("detail"), self.model)
        if kind == "input_audio":
            audio = p.get("input_audio")
            if isinstance(audio, dict):
                return _audio_tokens(audio.get("data"), audio.get("format"))
            return _audio_tokens(p.get("data"), p.get("format"))
        if kind == "refusal":
            return self.count(_text(p.get("refusal")))
        if kind in ("file", "input_file"):
            return 0
        return self.count(_text(p.get("text")))

    def content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.count(content)
        if isinstance(content, (list, tuple)):
            return sum(self.part(part) for part in content)
        return self.part(content)

    def message(self, role: str, content: Any, name: Any = None) -> int:
        if role in ("system", "developer"):
            self.has_system = True
        tokens = 3 + self.count(role) + self.content(content)
        if name:
            tokens += 1 + self.count(_text(name))
        return tokens

    def tool_calls(self, calls: list[tuple[str, str]]) -> int:
        """An assistant turn that calls ``calls`` = [(function name, arguments JSON)]."""
        if len(calls) == 1:
            name, arguments = calls[0]
            return 3 + self.count("assistant to=functions." + name) + self.count(arguments)
        uses = []
        for name, arguments in calls:
            try:
                parameters = json.loads(arguments) if arguments else {}
            except ValueError:
                parameters = arguments
            uses.append({"recipient_name": "functions." + name, "parameters": parameters})
        payload = json.dumps({"tool_uses": uses}, separators=(",", ":"), ensure_ascii=False)
        return 3 + self.count("assistant to=multi_tool_use.parallel") + self.count(payload)

    def tool_result(self, call_id: Any, output: Any) -> int:
        name = self.tool_names.get(call_id) if isinstance(call_id, str) else None
        author = "functions." + name if name else "tool"
        return 3 + self.count(author) + self.content(output)

    def tools(self, tools: Any, tool_choice: Any) -> int:
        if not tools:
            return 0
        functions: list[dict] = []
        other = 0
        for tool in tools:
            t = _as_dict(tool)
            if t is None:
                other += self.count(_text(tool))
                continue
            function = t.get("function") if isinstance(t.get("function"), dict) else None
            if function is None and t.get("type") == "function":
                function = t
            if function is not None:
                functions.append(function)
            else:
                other += self.count(json.dumps(t, default=str, ensure_ascii=False))
        tokens = other
        if functions:
            tokens += self.count(render_functions(functions)) + 9
            if self.has_system:
                tokens -= 4
        if tool_choice == "none":
            tokens += 1
        else:
            choice = _as_dict(tool_choice)
            if choice is not None:
                function = choice.get("function") if isinstance(choice.get("function"), dict) else choice
                name = function.get("name")
                if isinstance(name, str):
                    tokens += 4 + self.count(name)
        return tokens

    def priming(self) -> int:
        return 2 if _bare_model(self.model).startswith("gpt-5") else 3


# ----------------------------------------------------------------------------- tool definitions


def render_functions(functions: Iterable[dict]) -> str:
    """Function definitions as the model sees them (a TypeScript-like namespace)."""
    lines = ["namespace functions {", ""]
    for function in functions:
        description = function.get("description")
        if description:
            lines.append(f"// {description}")
        name = function.get("name", "")
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and parameters.get("properties"):
            lines.append(f"type {name} = (_: {{")
            lines.append(_render_properties(parameters, 0))
            lines.append("}) => any;")
        else:
            lines.append(f"type {name} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _render_properties(schema: dict, indent: int) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return ""
    required = schema.get("required") or ()
    lines = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        description = prop.get("description")
        if description and indent < 2:
            lines.append(f"// {description}")
        optional = "" if name in required else "?"
        lines.append(f"{name}{optional}: {_render_type(prop, indent)},")
    return "\n".join(" " * indent + line for line in lines)


def _render_type(prop: dict, indent: int) -> str:
    kind = prop.get("type")
    enum = prop.get("enum")
    if kind == "string":
        return " | ".join(f'"{v}"' for v in enum) if isinstance(enum, list) else "string"
    if kind in ("number", "integer"):
        return " | ".join(str(v) for v in enum) if isinstance(enum, list) else "number"
    if kind in ("boolean", "null"):
        return kind
    if kind == "object":
        return "{\n" + _render_properties(prop, indent + 2) + "\n}"
    if kind == "array":
        items = prop.get("items")
        return f"{_render_type(items, indent)}[]" if isinstance(items, dict) else "any[]"
    return ""


# ----------------------------------------------------------------------------- requests


def estimate_chat_input(
    model: Optional[str], messages: Any, tools: Any = None, tool_choice: Any = None
) -> TokenCount:
    """Prompt tokens of a Chat Completions request."""
    try:
        est = _Estimator(model)
        tokens = 0
        for message in messages or ():
            m = _as_dict(message)
            if m is None:
                tokens += 3 + est.count(_text(message))
                continue
            role = _text(m.get("role"))
            content = m.get("content")
            calls = _chat_tool_calls(m, est)
            if role == "tool":
                tokens += est.tool_result(m.get("tool_call_id"), content)
            elif role == "function":
                tokens += 3 + est.count("functions." + _text(m.get("name"))) + est.content(content)
            elif content or m.get("refusal") or not calls:
                tokens += est.message(role, content, m.get("name"))
                if m.get("refusal"):
                    tokens += est.count(_text(m.get("refusal")))
            if calls:
                tokens += est.tool_calls(calls)
        tokens += est.tools(tools, tool_choice)
        return TokenCount(tokens + est.priming(), est.method)
    except Exception as exc:  # noqa: BLE001
        _warn_once("estimate_chat_input", exc)
        return _fallback(messages)


def _chat_tool_calls(message: dict, est: _Estimator) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    for call in message.get("tool_calls") or ():
        c = _as_dict(call)
        if c is None:
            continue
        function = c.get("function") or c.get("custom") or {}
        name = _text(function.get("name"))
        arguments = _text(function.get("arguments", function.get("input")))
        if isinstance(c.get("id"), str):
            est.tool_names[c["id"]] = name
        calls.append((name, arguments))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append((_text(legacy.get("name")), _text(legacy.get("arguments"))))
    return calls


def estimate_responses_input(
    model: Optional[str],
    input: Any,
    instructions: Optional[str] = None,
    tools: Any = None,
    tool_choice: Any = None,
) -> TokenCount:
    """Input tokens of a Responses API request (``input`` a string or a list of items)."""
    try:
        est = _Estimator(model)
        tokens = 0
        if instructions:
            tokens += est.message("system", instructions)
        if isinstance(input, str):
            tokens += est.message("user", input)
        else:
            for item in input or ():
                tokens += _responses_item(item, est)
        tokens += est.tools(tools, tool_choice)
        return TokenCount(tokens + est.priming(), est.method)
    except Exception as exc:  # noqa: BLE001
        _warn_once("estimate_responses_input", exc)
        return _fallback(input)


def _responses_item(item: Any, est: _Estimator) -> int:
    it = _as_dict(item)
    if it is None:
        return 3 + est.count(_text(item))
    kind = it.get("type")
    if kind in (None, "message") and "role" in it:
        return est.message(_text(it.get("role")), it.get("content"))
    if kind in ("function_call", "custom_tool_call"):
        name = _text(it.get("name"))
        if isinstance(it.get("call_id"), str):
            est.tool_names[it["call_id"]] = name
        return est.tool_calls([(name, _text(it.get("arguments", it.get("input"))))])
    if kind in ("function_call_output", "custom_tool_call_output"):
        return est.tool_result(it.get("call_id"), it.get("output"))
    if kind in ("reasoning", "item_reference"):
        return 0
    return 3 + est.count(json.dumps(it, default=str, ensure_ascii=False))


def estimate_embedding_input(model: Optional[str], input: Any) -> TokenCount:
    """Tokens of an embeddings request: a string, strings, token ids, or lists of token ids."""
    try:
        count, method = _counter(model, default=_tiktoken_offline.CL100K_BASE)
        if isinstance(input, str):
            return TokenCount(count(input), method)
        tokens = 0
        for element in input or ():
            if isinstance(element, str):
                tokens += count(element)
            elif isinstance(element, int):
                tokens += 1
            elif isinstance(element, (list, tuple)):
                tokens += len(element)
            else:
                tokens += count(_text(element))
        return TokenCount(tokens, method)
    except Exception as exc:  # noqa: BLE001
        _warn_once("estimate_embedding_input", exc)
        return _fallback(input)
