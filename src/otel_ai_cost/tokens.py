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

import json
import logging
from functools import lru_cache
from typing import Any, Callable, Optional

from otel_ai_cost import _tiktoken_offline
from otel_ai_cost._request import TokenCount
from otel_ai_cost._tokens_functions import render_functions as render_functions
from otel_ai_cost._tokens_heuristic import heuristic_tokens
from otel_ai_cost._tokens_media import audio_tokens, bare_model, image_tokens, image_url_tokens
from otel_ai_cost._tokens_media import image_size as image_size  # re-exported (instrumentations)
from otel_ai_cost._tokens_media import image_size_from_data_uri as image_size_from_data_uri  # re-exported

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
# While an OpenAI tokenizer is parsed for the first time on a machine, the estimate a budget holds
# money on counts each text's UTF-8 bytes: never less than tiktoken's count (see _tiktoken_offline).
UPPER_BOUND = "upper_bound"

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
    if not name:
        return _heuristic_count, HEURISTIC
    if encoding is not None:
        return _cached_counter(name, encoding.count), TIKTOKEN
    if _tiktoken_offline.bounding() and _tiktoken_offline.loading(name):
        return _utf8_bytes, UPPER_BOUND
    return _heuristic_count, HEURISTIC


def _utf8_bytes(text: str) -> int:
    """An upper bound of any tiktoken count of ``text``: every token is at least one byte of its UTF-8
    (lone surrogates, which tiktoken replaces with U+FFFD, are 3 bytes either way)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _cached_counter(name: str, count_uncached: Callable[[str], int]) -> Callable[[str], int]:
    """A counter of ``name`` (an encoding or HEURISTIC): short texts through ``_cached_count``,
    longer ones counted by ``count_uncached`` without being kept."""

    def count(text: str) -> int:
        if not text:
            return 0
        if len(text) <= _COUNT_CACHE_MAX_CHARS:
            return _cached_count(name, text)
        return count_uncached(text)

    return count


_heuristic_count = _cached_counter(HEURISTIC, heuristic_tokens)


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


# ----------------------------------------------------------------------------- shared pieces


def _as_dict(obj: Any) -> Optional[dict[str, Any]]:
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
                return image_url_tokens(image.get("url"), image.get("detail"), self.model)
            return image_url_tokens(image, None, self.model)
        if kind == "input_image":
            return image_url_tokens(p.get("image_url"), p.get("detail"), self.model)
        if kind == "input_audio":
            audio = p.get("input_audio")
            if isinstance(audio, dict):
                return audio_tokens(audio.get("data"), audio.get("format"))
            return audio_tokens(p.get("data"), p.get("format"))
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
        functions: list[dict[str, Any]] = []
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
                function = choice.get("function")
                name = (function if isinstance(function, dict) else choice).get("name")
                if isinstance(name, str):
                    tokens += 4 + self.count(name)
        return tokens

    def priming(self) -> int:
        return 2 if bare_model(self.model).startswith("gpt-5") else 3

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


def _chat_tool_calls(message: dict[str, Any], est: _Estimator) -> list[tuple[str, str]]:
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
