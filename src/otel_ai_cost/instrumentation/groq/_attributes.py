"""Request attributes and outcomes of the ``groq`` SDK's calls: the chat format's, without the
``openai.*`` attributes."""
from __future__ import annotations

from typing import Any, Callable, Dict

from ... import _semconv as sc
from .._chat import chat_outcome, embeddings_outcome
from .._core import Outcome

PROVIDER = "groq"

_OPENAI_ONLY_ATTRIBUTES = (sc.OPENAI_API_TYPE, sc.OPENAI_REQUEST_SERVICE_TIER)


def strip_openai(attrs: Dict[str, Any]) -> Dict[str, Any]:
    """The chat format's request attributes without those of the OpenAI API itself."""
    for key in _OPENAI_ONLY_ATTRIBUTES:
        attrs.pop(key, None)
    return attrs


# The chat format's outcomes.
OUTCOMES: Dict[str, Callable[[Any], Outcome]] = {"chat": chat_outcome, "embeddings": embeddings_outcome}
