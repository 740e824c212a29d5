"""The stream state of the ``groq`` SDK's chat completion chunks."""
from __future__ import annotations

from .._chat import ChatStreamState


class GroqStreamState(ChatStreamState):
    """``ChatStreamState`` of Groq: the usage is in ``usage`` or ``x_groq.usage`` (sent without being
    asked), reasoning deltas are counted."""

    delta_texts = ("reasoning",)
    usage_holder = "x_groq"
