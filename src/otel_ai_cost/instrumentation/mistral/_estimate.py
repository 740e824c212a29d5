"""The input (token) estimate of the ``mistralai`` SDK's calls (see the package doc)."""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping, Optional

from ..._request import TokenCount
from .._chat import content_text, plain
from .._core import log_once

# Template tokens (see the module docstring).
BOS_TOKENS = 1
USER_TURN_TOKENS = 2          # [INST] ... [/INST]
ASSISTANT_TURN_TOKENS = 1     # </s>
TOOL_RESULT_TOKENS = 2        # [TOOL_RESULTS] ... [/TOOL_RESULTS]
TOOLS_BLOCK_TOKENS = 2        # [AVAILABLE_TOOLS] ... [/AVAILABLE_TOOLS]
EMBEDDING_INPUT_TOKENS = 2    # <s> ... </s> around each embedded text (10 reported for 8 text tokens)
_DIGIT_RUN = re.compile(r"\d+")



def count_text(text: str) -> int:
    """Heuristic token count of ``text`` for Mistral's tokenizers: digits are one token each."""
    from ...tokens import heuristic_tokens

    if not text:
        return 0
    tokens = heuristic_tokens(text)
    for run in _DIGIT_RUN.findall(text):
        tokens += len(run) - (len(run) + 2) // 3  # the heuristic counts groups of up to 3 digits
    return tokens


def estimate_chat(model: Optional[str], messages: Any, tools: Any = None) -> TokenCount:
    """Prompt tokens of a Mistral chat request (heuristic plus the instruct template)."""
    from ...tokens import HEURISTIC

    try:
        tokens = BOS_TOKENS
        for message in messages or ():
            m = plain(message)
            if not isinstance(m, Mapping):
                tokens += USER_TURN_TOKENS + count_text(str(m))
                continue
            role = m.get("role")
            text = content_text(m.get("content"))
            tokens += count_text(text)
            if role == "user":
                tokens += USER_TURN_TOKENS
            elif role == "assistant":
                tokens += ASSISTANT_TURN_TOKENS
                for call in m.get("tool_calls") or ():
                    call = plain(call)
                    function = call.get("function") if isinstance(call, Mapping) else None
                    if isinstance(function, Mapping):
                        args = function.get("arguments")
                        args = args if isinstance(args, str) else json.dumps(args, default=str)
                        tokens += 2 + count_text(str(function.get("name") or "")) + count_text(args)
            elif role == "tool":
                tokens += TOOL_RESULT_TOKENS
            # system: joined to the first user turn with a blank line, no tokens of its own
        if tools:
            definitions = [plain(t) for t in tools]
            tokens += TOOLS_BLOCK_TOKENS + count_text(json.dumps(definitions, default=str))
        return TokenCount(tokens, HEURISTIC)
    except Exception as exc:  # noqa: BLE001
        log_once("mistral estimate", exc)
        return TokenCount(0, HEURISTIC)


def estimate_embeddings(inputs: Any) -> TokenCount:
    from ...tokens import HEURISTIC

    if isinstance(inputs, str):
        inputs = [inputs]
    texts = [t for t in inputs or () if isinstance(t, str)]
    return TokenCount(sum(count_text(t) + EMBEDDING_INPUT_TOKENS for t in texts), HEURISTIC)


def lazy_estimate(kind: str, kwargs: Mapping[str, Any]) -> Callable[[], TokenCount]:
    """The input estimate of a ``kind`` call with ``kwargs``, a function the processor calls when needed."""
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""
    if kind == "embeddings":
        def estimate() -> TokenCount:
            return estimate_embeddings(kwargs.get("inputs", kwargs.get("input")))
    else:
        def estimate() -> TokenCount:
            tools = kwargs.get("tools")
            return estimate_chat(model, kwargs.get("messages") or [],
                                 tools if isinstance(tools, (list, tuple)) else None)
    return estimate
