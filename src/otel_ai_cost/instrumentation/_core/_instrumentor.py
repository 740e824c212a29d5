"""Instrumentor bookkeeping: the package version, the wrap / unwrap records of ``_instrument`` /
``_uninstrument``, the switch-off check, and what one instrumentor's wrappers share."""
from __future__ import annotations

from typing import Any, List, Mapping, Tuple

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from ..._version import package_version as package_version  # re-exported by _core
from ._telemetry import Telemetry


def resolve(module: str, path: str) -> Any:
    """The object at ``module`` + dotted ``path`` (importing the module), or None if missing."""
    import importlib

    try:
        obj: Any = importlib.import_module(module)
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError):
        return None


class WrapContext:
    """What the wrappers of one instrumentor share: its telemetry and the pricing catalog (None: the
    packaged one)."""

    def __init__(self, telemetry: Telemetry, catalog: Any) -> None:
        self.telemetry = telemetry
        self.catalog = catalog


def switched_off(instrumentor: Any) -> bool:
    """True when otel-ai-cost is off, so ``instrument()`` must wrap nothing: ``OTEL_AI_COST_ENABLED=false``
    or, under opentelemetry-instrument, a bad ``OTEL_AI_COST_*`` value (the zero-code check logged it).

    In code, a bad value raises ConfigError here, naming the variable, as the processor does. Leaves
    the instrumentor with nothing to undo (``_uninstrument`` works on empty lists).
    """
    instrumentor._wrapped = []
    instrumentor._patched = []
    from ...config import check_environment, instrumentation_off

    decided = instrumentation_off()
    if decided is not None:
        return decided
    return not check_environment().enabled


def telemetry_from(name: str, instrument_kwargs: Mapping[str, Any]) -> Telemetry:
    """The ``Telemetry`` of instrumentor ``name`` from its ``instrument()`` keyword arguments."""
    return Telemetry(name, package_version(), instrument_kwargs.get("tracer_provider"),
                     instrument_kwargs.get("meter_provider"))


def wrap(module: str, path: str, wrapper: Any, wrapped: List[Tuple[str, str]]) -> None:
    """Wrap ``module`` + ``path`` with ``wrapper`` and record it in ``wrapped`` for ``unwrap_all``."""
    wrapt.wrap_function_wrapper(module, path, wrapper)
    wrapped.append((module, path))


def unwrap_all(wrapped: List[Tuple[str, str]]) -> None:
    """Undo every ``wrap`` recorded in ``wrapped``."""
    import importlib

    for module, path in wrapped:
        owner: Any = importlib.import_module(module)
        *parents, method = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        unwrap(owner, method)
