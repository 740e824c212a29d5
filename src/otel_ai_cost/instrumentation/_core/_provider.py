"""The ``BaseInstrumentor`` every provider instrumentor shares: the switch-off check, the telemetry
and catalog of its wrappers, and the wrap / unwrap bookkeeping. A provider only says which SDK
versions it instruments, its scope name, and which methods it wraps."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Collection, List, Tuple

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from ._instrumentor import WrapContext, switched_off, telemetry_from, unwrap_all


class ProviderInstrumentor(BaseInstrumentor):
    """A provider's instrumentor: subclasses set ``instruments`` (the SDK version ranges) and
    ``scope`` (the instrumentation scope name), and wrap their methods in ``wrap_methods``,
    recording each in ``self._wrapped`` (``c.wrap``).

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider`` and ``catalog`` (a
    pricing catalog; default: the packaged one).
    """

    instruments: Tuple[str, ...] = ()
    scope = ""
    # BaseInstrumentor is a singleton: the list of wrapped methods must survive a second __init__.
    _wrapped: List[Tuple[str, str]] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    def _instrument(self, **kwargs: Any) -> None:
        if switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        config = WrapContext(telemetry_from(self.scope, kwargs), kwargs.get("catalog"))
        self._wrapped = []
        self.wrap_methods(config)

    @abstractmethod
    def wrap_methods(self, config: WrapContext) -> None:
        """Wrap the SDK's methods with wrappers sharing ``config``."""

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all(self._wrapped)
        self._wrapped = []
