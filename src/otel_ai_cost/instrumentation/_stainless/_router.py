"""The instrumentation in force, and the clients' ``request`` fallback of the Stainless SDKs.

``with_raw_response`` / ``with_streaming_response`` are cached per resource object and keep the
``create`` they found the first time: a method bound before ``instrument()`` (the SDK's own), or
bound to the wrapper of an earlier ``instrument()``. So every method wrapper checks that it belongs
to the current instrumentation (else it calls the SDK untouched), and the clients' ``request``
(looked up at call time) instruments the requests to the wrapped endpoints that did not come
through a current wrapper, from the request body.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .._core import get, resolve, safe, wrap


class _ClientShim:
    """What a provider's ``_prepare`` reads of a resource (its ``_client``), for a request seen at the client."""

    __slots__ = ("_client",)

    def __init__(self, client: Any) -> None:
        self._client = client


def _with_body(args: Any, kwargs: Dict[str, Any], options: Any, body: Dict[str, Any]) -> Tuple[Any, Dict[str, Any]]:
    """``args`` / ``kwargs`` of ``request`` with a copy of ``options`` whose body is ``body``."""
    copy = options.model_copy() if hasattr(options, "model_copy") else options.copy()
    copy.json_data = body
    if len(args) > 1:
        return (args[0], copy, *args[2:]), kwargs
    return args, {**kwargs, "options": copy}


class RequestRouter:
    """One per provider module: the instrumentation in force, and the ``request`` fallback.

    ``paths``: (URL path suffix, kind) of the wrapped endpoints, the most specific first
    ("/chat/completions" before "/completions").
    """

    def __init__(self, name: str, paths: Sequence[Tuple[str, str]]) -> None:
        self.name = name
        self.paths = tuple(paths)
        self.current: Any = None  # the Config of the instrumentation in force, None when uninstrumented
        self._in_method: ContextVar[bool] = ContextVar(f"otel_ai_cost_{name}_in_method", default=False)

    # -- the method wrappers ------------------------------------------------------------------

    def method_wrapper(self, config: Any, inner: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """``inner`` (a ``_core`` call wrapper) run only while ``config`` is in force, flagged so
        that the ``request`` it makes is not instrumented again. ``.inner`` is kept for ``request``."""
        if is_async:
            async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                if self.current is not config:  # kept by a with_raw_response bound before
                    return await wrapped(*args, **kwargs)
                token = self._in_method.set(True)
                try:
                    return await inner(wrapped, instance, args, kwargs)
                finally:
                    self._in_method.reset(token)

            async_wrapper.inner = inner  # type: ignore[attr-defined]
            return async_wrapper

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if self.current is not config:
                return wrapped(*args, **kwargs)
            token = self._in_method.set(True)
            try:
                return inner(wrapped, instance, args, kwargs)
            finally:
                self._in_method.reset(token)

        wrapper.inner = inner  # type: ignore[attr-defined]
        return wrapper

    # -- the clients' request -------------------------------------------------------------------

    def wrap_requests(
        self,
        config: Any,
        methods: Sequence[Tuple[str, str, bool]],
        method_wrapper: Callable[[Any, str, bool], Callable[..., Any]],
        wrapped: List[Any],
    ) -> None:
        """Wrap each (module, ``Client.request``, is_async) of ``methods``; ``method_wrapper(config,
        kind, is_async)`` makes the provider's wrapper of a kind (its ``.inner`` does the work)."""
        for module, path, is_async in methods:
            if resolve(module, path) is None:
                continue
            # ``.inner``: set on every wrapper ``method_wrapper`` makes (see there)
            kinds = {kind: method_wrapper(config, kind, is_async).inner  # type: ignore[attr-defined]
                     for _, kind in self.paths}
            wrap(module, path, self._request_wrapper(config, kinds, is_async), wrapped)

    def _bypassed(self, args: Any, kwargs: Mapping[str, Any]) -> Optional[Tuple[str, Any, Dict[str, Any]]]:
        """(kind, options, body) of a POST to a wrapped endpoint, else None."""
        options = args[1] if len(args) > 1 else kwargs.get("options")
        method, url, body = get(options, "method"), get(options, "url"), get(options, "json_data")
        if not isinstance(method, str) or method.lower() != "post" or not isinstance(url, str):
            return None
        if not isinstance(body, Mapping):
            return None
        for suffix, kind in self.paths:
            if url.endswith(suffix):
                return kind, options, dict(body)
        return None

    def _route(self, config: Any, args: Any, kwargs: Dict[str, Any]) -> Any:
        if self._in_method.get() or self.current is not config:
            return None
        return safe(f"{self.name} request", self._bypassed, args, kwargs)

    @staticmethod
    def _sender(wrapped: Any, args: Any, kwargs: Dict[str, Any], options: Any,
                body: Dict[str, Any]) -> Callable[..., Any]:
        def send(**call_kwargs: Any) -> Any:
            a, k = (args, kwargs) if call_kwargs == body else _with_body(args, kwargs, options, call_kwargs)
            return wrapped(*a, **k)

        return send

    def _request_wrapper(self, config: Any, kind_wrappers: Mapping[str, Any], is_async: bool) -> Callable[..., Any]:
        """The clients' ``request``: instruments the requests no current method wrapper saw."""
        if is_async:
            async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                found = self._route(config, args, kwargs)
                if found is None:
                    return await wrapped(*args, **kwargs)
                kind, options, body = found
                token = self._in_method.set(True)
                try:
                    return await kind_wrappers[kind](self._sender(wrapped, args, kwargs, options, body),
                                                     _ClientShim(instance), (), body)
                finally:
                    self._in_method.reset(token)

            return async_wrapper

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            found = self._route(config, args, kwargs)
            if found is None:
                return wrapped(*args, **kwargs)
            kind, options, body = found
            token = self._in_method.set(True)
            try:
                return kind_wrappers[kind](self._sender(wrapped, args, kwargs, options, body),
                                           _ClientShim(instance), (), body)
            finally:
                self._in_method.reset(token)

        return wrapper
