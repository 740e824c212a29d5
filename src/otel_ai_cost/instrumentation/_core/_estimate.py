"""The output estimate of a stream that ends without usage, and the lazily imported ``tokens`` module."""
from __future__ import annotations

from typing import Any, Optional

from ..._request import LLMRequest
from ..._tiktoken_offline import without_waiting
from ...cost import Usage
from ._log import log_once
from ._readers import as_int, get

_TOKENS: Any = None


def tokens_module() -> Any:
    """The ``otel_ai_cost.tokens`` module, imported by the first estimate (not with the instrumentors),
    then kept: an import statement per call (or per text counted) costs more than the global."""
    global _TOKENS
    if _TOKENS is None:
        from ... import tokens

        _TOKENS = tokens
    return _TOKENS


class CharCounter:
    """The cheap counter for streams that are expected to end with a usage chunk / final response.

    Tokenising each delta would cost ~17 µs per chunk only to be thrown away when the usage arrives,
    and content is never buffered, so only the number of non-empty text deltas and their characters
    are kept. If the stream ends without usage, output tokens are estimated as
    ``max(deltas, ceil(chars / 4))``: OpenAI streams about one token per delta, and English text
    averages about 4 characters per token (the fallback for providers that batch several tokens per
    chunk).
    """

    __slots__ = ("deltas", "chars")
    failed = False

    def __init__(self) -> None:
        self.deltas = 0
        self.chars = 0

    def add(self, text: Any) -> None:
        if text and type(text) is str:
            self.deltas += 1
            self.chars += len(text)

    @property
    def tokens(self) -> int:
        return max(self.deltas, (self.chars + 3) // 4)


def estimated_usage(request: LLMRequest, counter: Any, site: str = "stream input estimate") -> Optional[Usage]:
    """Usage of a stream that ended without any: the input estimate and ``counter.tokens`` output.

    The input is the processor's start estimate, else counted here without waiting for the tokenizer
    (``without_waiting``: the heuristic while it loads), since this runs on the user's last read or
    ``close()``. None only when the counter failed and there is no input estimate either.
    """
    input_tokens = 0
    estimated = as_int(get(request.estimate, "input_tokens"))  # already counted by the processor
    if estimated is not None:
        input_tokens = estimated
    elif request.estimate_input is not None:
        try:
            input_tokens = int(without_waiting(request.estimate_input).tokens)
        except Exception as exc:
            log_once(site, exc)
    if counter.failed and not input_tokens:
        return None
    return Usage(input_tokens=input_tokens, output_tokens=counter.tokens)
