"""The stream state of the ``mistralai`` SDK's ``CompletionEvent``s."""
from __future__ import annotations

from .._chat import ChatStreamState
from .._core import Outcome, as_str, get
from ._attributes import mistral_usage


class MistralStreamState(ChatStreamState):
    """``ChatStreamState`` of ``CompletionEvent``s (the chunk is the event's ``data``); the service
    tier is the usage's."""

    read_usage = staticmethod(mistral_usage)
    event_data = True
    chunk_tier = False

    def outcome(self) -> Outcome:
        outcome = super().outcome()
        outcome.service_tier = as_str(get(self.usage_obj, "service_tier"))
        return outcome
