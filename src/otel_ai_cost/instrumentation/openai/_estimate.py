"""The input (token) estimate of the ``openai`` SDK's calls, computed only when asked for."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ..._request import TokenCount
from .._core import given
from .._core import tokens_module as _tokens


def lazy_estimate(kind: str, kwargs: Mapping[str, Any]) -> Callable[[], TokenCount]:
    """The input estimate of a ``kind`` call with ``kwargs``, a function the processor calls when needed."""
    model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else ""

    def tools() -> Any:
        value = kwargs.get("tools")
        return value if given(value) else None

    if kind == "chat":
        def estimate() -> TokenCount:
            counted: TokenCount = _tokens().estimate_chat_input(model, kwargs.get("messages") or [], tools())
            return counted
    elif kind == "responses":
        def estimate() -> TokenCount:
            instructions = kwargs.get("instructions")
            counted: TokenCount = _tokens().estimate_responses_input(
                model, kwargs.get("input") if given(kwargs.get("input")) else "",
                instructions if given(instructions) else None, tools(),
            )
            return counted
    elif kind == "completions":
        def estimate() -> TokenCount:
            count_text = _tokens().count_text
            prompt = kwargs.get("prompt")
            texts = [prompt] if isinstance(prompt, str) else [p for p in (prompt or []) if isinstance(p, str)]
            return TokenCount(sum(count_text(t, model).tokens for t in texts),
                              count_text(texts[0] if texts else "", model).method)
    else:
        def estimate() -> TokenCount:
            counted: TokenCount = _tokens().estimate_embedding_input(model, kwargs.get("input"))
            return counted
    return estimate


