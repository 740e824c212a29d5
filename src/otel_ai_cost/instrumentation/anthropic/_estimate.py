"""The input (token) estimate of a Messages API request: no public Claude tokenizer, a heuristic
calibrated on the recordings (benchmarks/estimation_error_anthropic.py)."""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping, Optional

from ..._request import TokenCount
from .._core import as_str, get, given

# Claude's tokenizer yields more tokens than cl100k_base for English text; the heuristic approximates
# cl100k_base. Constants fitted on the recorded requests (benchmarks/estimation_error_anthropic.py).
_CLAUDE_TEXT_SCALE = 1.1
_REQUEST_OVERHEAD = 7          # the turn framing around the conversation
_MESSAGE_OVERHEAD = 3          # per message (role markers)
_SYSTEM_OVERHEAD = 2           # a system prompt
_THINKING_OVERHEAD = 26        # extended thinking adds its instructions
# Identifiers, hashes, base64: long runs mixing digits and both cases cost ~1 token per 1.2
# characters (the heuristic, made for words, would count a fraction of that).
_DENSE_MIN = 24
_DENSE_RUN = re.compile(r"[A-Za-z0-9+/=_-]{%d,}" % _DENSE_MIN)
_DENSE_CHARS_PER_TOKEN = 1.2
# The tool-use system prompt (tokens; tool_choice auto/none vs any/tool): Anthropic's documented
# values up to the 4.5 models; 4.6 and later measured on the recordings (~500), and assumed for
# any model not listed (an over- rather than an under-estimate).
_TOOL_PROMPT = (500, 467)
_TOOL_PROMPT_BY_MODEL = (
    ("claude-3-5-sonnet", (294, 261)),
    ("claude-3-opus", (530, 281)),
    ("claude-3-5-haiku", (264, 340)),
    ("claude-3-haiku", (264, 340)),
    ("claude-3-7-sonnet", (346, 313)),
    ("claude-sonnet-4-5", (346, 313)),
    ("claude-haiku-4-5", (346, 313)),
    ("claude-opus-4-5", (346, 313)),
    ("claude-opus-4-1", (346, 313)),
    ("claude-sonnet-4-2", (346, 313)),   # claude-sonnet-4-20250514
    ("claude-sonnet-4-0", (346, 313)),
    ("claude-opus-4-2", (346, 313)),     # claude-opus-4-20250514
    ("claude-opus-4-0", (346, 313)),
)
_TOOL_OVERHEAD = 6             # per tool definition
# Images: Anthropic documents tokens = width * height / 750 (resized to at most ~1.15 MP: ~1600).
_IMAGE_TOKENS = 1600
_DOCUMENT_TOKENS = 1500        # a PDF page or file whose size is unknown here


def _text_tokens(text: str) -> float:
    from ...tokens import heuristic_tokens

    if not text:
        return 0.0
    dense = 0
    if len(text) >= _DENSE_MIN:
        def cut(match: "re.Match[str]") -> str:
            nonlocal dense
            run = match.group()
            if any(ch.isdigit() for ch in run) and not run.islower() and not run.isupper():
                dense += len(run)
                return " "
            return run

        text = _DENSE_RUN.sub(cut, text)
    return heuristic_tokens(text) * _CLAUDE_TEXT_SCALE + dense / _DENSE_CHARS_PER_TOKEN


def _block_tokens(block: Any) -> float:
    if isinstance(block, str):
        return _text_tokens(block)
    kind = get(block, "type")
    if kind == "text":
        return _text_tokens(as_str(get(block, "text")) or "")
    if kind == "image":
        return _IMAGE_TOKENS
    if kind == "document":
        source = get(block, "source")
        if get(source, "type") == "text":
            return _text_tokens(as_str(get(source, "data")) or "")
        return _DOCUMENT_TOKENS
    if kind == "tool_use":
        return _text_tokens((as_str(get(block, "name")) or "") + " " + _json(get(block, "input"))) + 3
    if kind == "tool_result":
        content = get(block, "content")
        return _content_tokens(content) + 3
    if kind in ("thinking", "redacted_thinking"):
        return 0.0  # earlier turns' thinking blocks are stripped from the context by the API
    return _text_tokens(_json(block))


def _content_tokens(content: Any) -> float:
    if content is None or not given(content):
        return 0.0
    if isinstance(content, str):
        return _text_tokens(content)
    if isinstance(content, (list, tuple)):
        return sum(_block_tokens(b) for b in content)
    return _block_tokens(content)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except Exception:
        return str(value)


def _tool_prompt(model: str, tool_choice: Any) -> int:
    forced = get(tool_choice, "type") in ("any", "tool") if given(tool_choice) else False
    prompt = _TOOL_PROMPT
    for prefix, value in _TOOL_PROMPT_BY_MODEL:
        if prefix in model:
            prompt = value
            break
    return prompt[1] if forced else prompt[0]


def estimate_messages_input(model: Optional[str], messages: Any, system: Any = None, tools: Any = None,
                            tool_choice: Any = None, thinking: Any = None) -> TokenCount:
    """Estimated input tokens of a Messages API request (method ``heuristic``)."""
    model = (model or "").lower()
    total = float(_REQUEST_OVERHEAD)
    for message in messages or ():
        total += _MESSAGE_OVERHEAD + _content_tokens(get(message, "content"))
    if given(system) and system:
        total += _SYSTEM_OVERHEAD + _content_tokens(system)
    if given(tools) and tools:
        tool_list = list(tools)
        custom = [t for t in tool_list if get(t, "input_schema") is not None]
        if custom:
            total += _tool_prompt(model, tool_choice)
        for tool in tool_list:
            if get(tool, "input_schema") is None:
                total += _TOOL_OVERHEAD + _text_tokens(_json(tool))  # server / built-in tools
                continue
            total += _TOOL_OVERHEAD + _text_tokens(
                (as_str(get(tool, "name")) or "") + "\n" + (as_str(get(tool, "description")) or "") + "\n"
                + _json(get(tool, "input_schema"))
            )
    if given(thinking) and get(thinking, "type") in ("enabled", "adaptive"):
        total += _THINKING_OVERHEAD
    return TokenCount(int(round(total)), "heuristic")


def lazy_estimate(kwargs: Mapping[str, Any]) -> Callable[[], TokenCount]:
    """The estimate of a request, computed only if asked for (the budget or a stream without usage)."""
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""

    def estimate() -> TokenCount:
        return estimate_messages_input(model, kwargs.get("messages") or [], kwargs.get("system"),
                                       kwargs.get("tools"), kwargs.get("tool_choice"), kwargs.get("thinking"))

    return estimate

