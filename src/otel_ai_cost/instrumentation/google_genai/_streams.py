"""google-genai streams: the state read off the chunks of one request's stream, and the proxies of the
public ``generate_content_stream`` whose close ends the spans of the requests it streamed."""
from __future__ import annotations

import functools
from contextvars import ContextVar
from typing import Any, Dict, List, Optional

import wrapt

from ... import _semconv as sc
from .._core import Operation, Outcome, StreamState, end_when_collected, safe
from ._attributes import field, finish_reason, integral, service_tier, usage_from_metadata, with_requested_tier


class GenerateStreamState(StreamState):
    """Reads the running usage, model, id and finish reasons off the chunks the user reads."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation)
        self.meta: Any = None
        self.model: Optional[str] = None
        self.response_id: Optional[str] = None
        self.reasons: Dict[int, str] = {}

    def observe(self, item: Any) -> bool:
        meta = field(item, "usage_metadata")
        if meta is not None:
            self.meta = meta
        model = field(item, "model_version")
        if isinstance(model, str):
            self.model = model
        response_id = field(item, "response_id")
        if isinstance(response_id, str):
            self.response_id = response_id
        for position, cand in enumerate(field(item, "candidates") or ()):
            reason = finish_reason(field(cand, "finish_reason"))
            if reason:
                index = integral(field(cand, "index"))
                self.reasons[index if index is not None else position] = reason
        return False

    def outcome(self) -> Outcome:
        attrs: Dict[str, Any] = {}
        if self.response_id:
            attrs[sc.GEN_AI_RESPONSE_ID] = self.response_id
        if self.reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self.reasons[i] for i in sorted(self.reasons)]
        return with_requested_tier(self.operation, Outcome(
            usage=usage_from_metadata(self.meta), response_model=self.model,
            service_tier=service_tier(self.meta), attributes=attrs))


# ---------------------------------------------------------------------------------------------
# The public generate_content_stream: its close ends the spans of the requests it streamed
#
# The SDK's public stream is a generator over generators over the per-request stream we proxy,
# iterated with ``for`` / ``async for``, which never close what they iterate: closing the public
# stream only drops the inner ones, and the async SDK leaves their closing to the event loop, a
# turn or more later. So the public stream is proxied too; while the user reads it, the requests
# it sends register their stream state (``STREAM_SCOPE``), and its ``close()`` / ``aclose()``
# (or its being dropped) ends them, before returning.

STREAM_SCOPE: "ContextVar[Optional[List[StreamState]]]" = ContextVar("otel_ai_cost_genai_stream_scope", default=None)


def _end_all(states: List[StreamState]) -> None:
    for state in list(states):
        state.end()


class _PublicStreamBase(wrapt.ObjectProxy):  # type: ignore[type-arg]  # proxies any generator
    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._self_states: List[StreamState] = []
        self._self_finalizer = end_when_collected(self, functools.partial(_end_all, self._self_states), watch=False)

    def _self_end(self) -> None:
        self._self_finalizer.detach()
        _end_all(self._self_states)


class PublicStreamProxy(_PublicStreamBase):
    """``Models.generate_content_stream``'s generator: ``close()`` ends its requests' spans."""

    def __iter__(self) -> "PublicStreamProxy":
        return self

    def __next__(self) -> Any:
        token = STREAM_SCOPE.set(self._self_states)
        try:
            return self.__wrapped__.__next__()
        except BaseException:  # exhausted, failed or interrupted: nothing more is read
            self._self_end()
            raise
        finally:
            STREAM_SCOPE.reset(token)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


class AsyncPublicStreamProxy(_PublicStreamBase):
    """``AsyncModels.generate_content_stream``'s async generator: ``aclose()`` ends its requests' spans."""

    def __aiter__(self) -> "AsyncPublicStreamProxy":
        return self

    async def __anext__(self) -> Any:
        token = STREAM_SCOPE.set(self._self_states)
        try:
            return await self.__wrapped__.__anext__()
        except BaseException:
            self._self_end()
            raise
        finally:
            STREAM_SCOPE.reset(token)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_end()


def public_stream_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    return safe("google_genai public stream", PublicStreamProxy, result, default=result)


async def async_public_stream_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = await wrapped(*args, **kwargs)
    return safe("google_genai public stream", AsyncPublicStreamProxy, result, default=result)
