"""The input (token) estimate of the ``groq`` SDK's calls."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from ..._request import TokenCount
from .._core import given

# The chat template overhead of the non-OpenAI models Groq serves (Llama 3 and the like), relative to
# what ``tokens.estimate_chat_input`` counts (3 + role per message, 3 for the reply): one more token
# per message (<|start_header_id|> role <|end_header_id|> "\n\n" ... <|eot_id|>) and two more for the
# reply (<|begin_of_text|> + the assistant header).
EXTRA_TOKENS_PER_MESSAGE = 1
EXTRA_PRIMING_TOKENS = 2


def estimate_chat(model: Optional[str], messages: Any, tools: Any = None) -> TokenCount:
    """Prompt tokens of a Groq chat request (tiktoken for OpenAI models, else the calibrated heuristic)."""
    from ...tokens import HEURISTIC, estimate_chat_input

    count = estimate_chat_input(model or "", messages or [], tools)
    if count.method != HEURISTIC:
        return count
    n = len(messages) if isinstance(messages, (list, tuple)) else 0
    return TokenCount(count.tokens + EXTRA_TOKENS_PER_MESSAGE * n + EXTRA_PRIMING_TOKENS, count.method)


def lazy_estimate(kind: str, kwargs: Mapping[str, Any]) -> Callable[[], TokenCount]:
    """The input estimate of a ``kind`` call with ``kwargs``, a function the processor calls when needed."""
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""
    if kind == "chat":
        def estimate() -> TokenCount:
            tools = kwargs.get("tools")
            return estimate_chat(model, kwargs.get("messages") or [], tools if given(tools) else None)
    else:
        def estimate() -> TokenCount:
            from ...tokens import estimate_embedding_input

            return estimate_embedding_input(model, kwargs.get("input"))
    return estimate


