"""otel-ai-cost: see, estimate and control what LLM calls cost, natively in OpenTelemetry.

The public names are imported on first use, so ``import otel_ai_cost`` stays fast and does not
load the OpenTelemetry SDK, the pricing catalog or a tokenizer until something needs them.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, List

from .errors import BudgetExceededError, CatalogError, ConfigError

if TYPE_CHECKING:
    from .attribution import attribute
    from .config import Settings
    from .cost import Cost, Usage, compute_cost
    from .ledger import LedgerSpanExporter
    from .processor import AICostSpanProcessor, CostEnrichingSpanExporter

__all__ = [
    "AICostSpanProcessor",
    "BudgetExceededError",
    "CatalogError",
    "ConfigError",
    "Cost",
    "CostEnrichingSpanExporter",
    "LedgerSpanExporter",
    "Settings",
    "Usage",
    "__version__",
    "attribute",
    "compute_cost",
]

_LAZY = {
    "AICostSpanProcessor": ".processor",
    "CostEnrichingSpanExporter": ".processor",
    "LedgerSpanExporter": ".ledger",
    "Settings": ".config",
    "Cost": ".cost",
    "Usage": ".cost",
    "compute_cost": ".cost",
    "attribute": ".attribution",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._version import package_version

        value: Any = package_version()
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
