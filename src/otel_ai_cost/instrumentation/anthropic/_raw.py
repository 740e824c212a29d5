"""Raw responses (``with_raw_response`` / ``with_streaming_response``) of clients whose resources
built them before ``instrument()``: the late-binding patch of the SDK's raw-response factories and
properties. (The response proxies ending the span are the shared ones of ``_stainless``.)"""
from __future__ import annotations

import functools
import weakref
from typing import Any, List, Tuple

from .. import _core as c
from .._core import log_once

# ---------------------------------------------------------------------------------------------
# with_raw_response / with_streaming_response: looked up at call time
#
# ``client.messages.with_raw_response`` is a ``cached_property`` building ``MessagesWithRawResponse``
# (likewise ``with_streaming_response``), whose ``__init__`` captures the bound ``messages.create``
# through ``to_raw_response_wrapper(messages.create)`` (``async_to_raw_response_wrapper``,
# ``to_streamed_response_wrapper``, ``async_to_streamed_response_wrapper``; 0.x:
# ``_legacy_response.to_raw_response_wrapper``) and keeps it. Left alone, an object built while
# instrumented keeps calling our wrapper after ``uninstrument()``, and one built before
# ``instrument()`` (the property was used once) never calls it. So, while instrumented:
#
# - those factories, in the modules of the wrapped resource classes, are replaced by ones handing
#   the SDK a function that looks ``create`` (``count_tokens``, ``parse``) up on the resource at
#   call time: the object calls whatever the class holds then, wrapped or not;
# - ``with_raw_response`` / ``with_streaming_response`` on those classes are data descriptors
#   (they take precedence over the instance ``__dict__`` where ``cached_property`` caches), which
#   replace an object cached before ``instrument()`` by a late-binding one, cached as before.
#
# ``uninstrument()`` restores the factories and the ``cached_property`` descriptors; the objects
# cached meanwhile stay, and call the unwrapped methods. What cannot be reached: an object the
# user took from the property before ``instrument()`` and keeps (``raw = client.messages.
# with_raw_response``, or its ``create``) holds the SDK's unwrapped method in a closure; it
# bypasses the instrumentation until it is taken from the property again.

_RAW_FACTORIES = ("to_raw_response_wrapper", "async_to_raw_response_wrapper",
                  "to_streamed_response_wrapper", "async_to_streamed_response_wrapper")
_RAW_PROPERTIES = ("with_raw_response", "with_streaming_response")
# The same objects reached from the client or the beta resource (``client.with_raw_response.messages``,
# ``client.beta.with_streaming_response.messages``): their ``messages`` cached_property, likewise.
_RAW_CONTAINERS: List[Tuple[str, str]] = [
    ("anthropic._client", "AnthropicWithRawResponse"),
    ("anthropic._client", "AsyncAnthropicWithRawResponse"),
    ("anthropic._client", "AnthropicWithStreamedResponse"),
    ("anthropic._client", "AsyncAnthropicWithStreamedResponse"),
]
for _module in ("anthropic.resources.beta.beta", "anthropic.lib.bedrock._beta", "anthropic.lib.vertex._beta"):
    _RAW_CONTAINERS += [(_module, "BetaWithRawResponse"), (_module, "AsyncBetaWithRawResponse"),
                        (_module, "BetaWithStreamingResponse"), (_module, "AsyncBetaWithStreamingResponse")]


def _late_bound(method: Any) -> Any:
    """A function calling ``getattr(method.__self__, method.__name__)`` at call time."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", None)
    if owner is None or not isinstance(name, str):
        return method

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(owner, name)(*args, **kwargs)

    call._otel_ai_cost = True  # type: ignore[attr-defined]
    return call


def _late_factory(factory: Any) -> Any:
    """The SDK's raw-response factory, handed a late-bound method instead of the bound one."""

    @functools.wraps(factory)
    def make(func: Any, *args: Any, **kwargs: Any) -> Any:
        return factory(_late_bound(func), *args, **kwargs)

    make._otel_ai_cost = True  # type: ignore[attr-defined]
    return make


# The with_raw_response / with_streaming_response objects our descriptors built (late-bound).
_LATE_OBJECTS: "weakref.WeakSet[Any]" = weakref.WeakSet()


class _RawResponseProperty:
    """Stands in for a resource's ``with_raw_response`` / ``with_streaming_response`` cached_property
    while instrumented (see above); built by ``original`` under the late-binding factories."""

    _otel_ai_cost = True

    def __init__(self, original: Any, name: str) -> None:
        self.original = original
        self.name = name
        self.build: Any = getattr(original, "func", None) or getattr(original, "fget", None)
        self.__doc__ = getattr(original, "__doc__", None)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self.original
        cache = getattr(instance, "__dict__", None)
        value = cache.get(self.name) if cache is not None else None
        if value is not None and _is_late(value):
            return value
        value = self.build(instance)
        try:
            _LATE_OBJECTS.add(value)
            if cache is not None:
                cache[self.name] = value
        except TypeError:  # not weak-referenceable: built again on each access
            pass
        return value

    def __set__(self, instance: Any, value: Any) -> None:  # cached_property is settable
        instance.__dict__[self.name] = value
        try:
            _LATE_OBJECTS.add(value)  # the user's own object: kept as it is
        except TypeError:
            pass

    def __delete__(self, instance: Any) -> None:
        try:
            del instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


def _is_late(value: Any) -> bool:
    try:
        return value in _LATE_OBJECTS
    except TypeError:
        return False


def patch_raw_responses(classes: List[Any], patched: List[Tuple[Any, str, Any]]) -> None:
    """Install the late-binding factories and properties for ``classes``; record them in ``patched``."""
    import sys

    if not classes:
        return
    namespaces: List[Any] = []
    for cls in classes:
        module = sys.modules.get(getattr(cls, "__module__", ""))
        if module is None:
            continue
        for namespace in (module, getattr(module, "_legacy_response", None)):
            if namespace is not None and all(namespace is not n for n in namespaces):
                namespaces.append(namespace)
    for namespace in namespaces:
        for name in _RAW_FACTORIES:
            factory = vars(namespace).get(name)
            if callable(factory) and not getattr(factory, "_otel_ai_cost", False):
                setattr(namespace, name, _late_factory(factory))
                patched.append((namespace, name, factory))
    properties = [(cls, name) for cls in classes for name in _RAW_PROPERTIES]
    for module_name, class_name in _RAW_CONTAINERS:
        container = c.resolve(module_name, class_name)
        if isinstance(container, type):
            properties.append((container, "messages"))
    for cls, name in properties:
        original = vars(cls).get(name)
        if original is None or getattr(original, "_otel_ai_cost", False):
            continue
        if getattr(original, "func", None) is None and getattr(original, "fget", None) is None:
            continue
        setattr(cls, name, _RawResponseProperty(original, name))
        patched.append((cls, name, original))


def unpatch_raw_responses(patched: List[Tuple[Any, str, Any]]) -> None:
    for owner, name, original in reversed(patched):
        try:
            setattr(owner, name, original)
        except Exception as exc:  # pragma: no cover - never break uninstrument()
            log_once("anthropic unpatch raw responses", exc)


def is_ours(attribute: Any) -> bool:
    """Whether ``attribute`` (a class attribute) is, or wraps, one of our wrappers.

    wrapt's ``FunctionWrapper`` keeps its wrapper function in ``_self_wrapper``; ours are marked
    ``_otel_ai_cost``. Another vendor's wrapt wrapper is not ours (we wrap on top of it); one on
    top of ours is followed through ``__wrapped__``.
    """
    for _ in range(16):
        if attribute is None:
            return False
        try:
            if getattr(getattr(attribute, "_self_wrapper", None), "_otel_ai_cost", False) is True:
                return True
            attribute = getattr(attribute, "__wrapped__", None)
        except Exception:
            return False
    return False

