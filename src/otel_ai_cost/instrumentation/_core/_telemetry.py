"""The tracer and the metric instruments of one instrumentor, with prepared metric attribute sets."""
from __future__ import annotations

import threading
import weakref
from typing import Any, Dict, Iterable, List, Optional, Tuple

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation, get_meter, get_meter_provider
from opentelemetry.trace import TracerProvider

from ... import _semconv as sc

# Advised bucket boundaries from the GenAI metrics conventions.
TOKEN_USAGE_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)

_POINT_CACHE_SIZE = 256
# Attribute sets the cost counter keeps apart; the rest is summed into one overflow point, as the
# SDK's default cardinality limit does (2000) for a synchronous instrument.
_COST_SETS_MAX = 2000
_OVERFLOW_KEY: Tuple[Tuple[str, Any], ...] = (("otel.metric.overflow", True),)


class CostCounter:
    """``ai_cost.client.cost``, summed in process per attribute set and reported by an observable
    counter when a reader collects.

    ``add`` is a dict lookup and a float addition under a lock, where the SDK's synchronous counter
    would clean, copy and hash the attributes and offer an exemplar on every call. The exported
    points are the same cumulative (or, by the exporter's temporality, delta) monotonic sums; what is
    given up is exemplars on this one instrument (``gen_ai.client.token.usage`` and
    ``gen_ai.client.operation.duration`` still carry them). One per meter: the SDK keeps the first
    callback of an instrument registered twice, so an instrumentor switched off and on again adds to
    the totals it started, which stay monotonic.
    """

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._totals: Dict[Tuple[Tuple[str, Any], ...], List[Any]] = {}  # key -> [attributes, sum]
        meter.create_observable_counter(
            sc.AI_COST_CLIENT_COST,
            callbacks=[self._observe],
            unit=sc.AI_COST_CLIENT_COST_UNIT,
            description="Cost in USD of GenAI client operations.",
        )

    def add(self, amount: float, attributes: Dict[str, Any], status: Any, source: Any) -> None:
        """Add ``amount`` to the point of ``attributes`` (the operation's metric attributes without
        ``error.type``) with the cost's ``ai_cost.pricing.status`` and ``gen_ai.usage.cost.source``."""
        key = (*attributes.items(), (sc.AI_COST_PRICING_STATUS, status), (sc.GEN_AI_USAGE_COST_SOURCE, source))
        with self._lock:
            entry = self._totals.get(key)
            if entry is None:
                if len(self._totals) >= _COST_SETS_MAX:
                    key = _OVERFLOW_KEY
                    entry = self._totals.get(key)
                if entry is None:
                    entry = self._totals[key] = [{k: v for k, v in key if v is not None}, 0.0]
            entry[1] += amount

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            points = [(attributes, total) for attributes, total in self._totals.values()]
        return [Observation(total, attributes) for attributes, total in points]


# meter provider -> (scope name, version) -> its CostCounter. By provider, not meter: the API's proxy
# provider (before a global one is set) makes a new meter on every get_meter.
_cost_counters: "weakref.WeakKeyDictionary[MeterProvider, Dict[Tuple[str, str], CostCounter]]" = (
    weakref.WeakKeyDictionary()
)
_cost_counters_lock = threading.Lock()


def cost_counter(meter: Meter, provider: MeterProvider, name: str, version: str) -> CostCounter:
    """The one ``CostCounter`` of a scope of a meter provider (see there)."""
    with _cost_counters_lock:
        by_scope = _cost_counters.setdefault(provider, {})
        counter = by_scope.get((name, version))
        if counter is None:
            counter = by_scope[(name, version)] = CostCounter(meter)
        return counter


class Telemetry:
    """The tracer and the metric instruments of one instrumentor."""

    def __init__(self, name: str, version: str, tracer_provider: Optional[TracerProvider] = None,
                 meter_provider: Optional[MeterProvider] = None) -> None:
        self.tracer = trace.get_tracer(name, version, tracer_provider)
        provider = meter_provider if meter_provider is not None else get_meter_provider()
        meter: Meter = get_meter(name, version, provider)
        self.token_usage = meter.create_histogram(
            sc.GEN_AI_CLIENT_TOKEN_USAGE,
            unit=sc.GEN_AI_CLIENT_TOKEN_USAGE_UNIT,
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_USAGE_BUCKETS),
        )
        self.duration = meter.create_histogram(
            sc.GEN_AI_CLIENT_OPERATION_DURATION,
            unit=sc.GEN_AI_CLIENT_OPERATION_DURATION_UNIT,
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit=sc.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK_UNIT,
            description="Time to receive the first chunk of a streamed GenAI response.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.cost = cost_counter(meter, provider, name, version)
        # (metric attributes as a tuple) -> the attribute dicts of the token and cost points.
        # The SDK never mutates them, so one set is built per distinct attribute set and reused.
        self._point_attributes: Dict[Any, Any] = {}

    def point_attributes(self, attrs: Dict[str, Any]) -> Any:
        """(input-token, output-token, cost) attribute dicts for ``attrs`` (without ``error.type``; the
        cost point's status and source are added by ``CostCounter.add``)."""
        key = tuple(attrs.items())
        try:
            return self._point_attributes[key]
        except (KeyError, TypeError):
            pass
        base = {k: v for k, v in attrs.items() if k != sc.ERROR_TYPE}
        built = (
            {**base, sc.GEN_AI_TOKEN_TYPE: "input"},
            {**base, sc.GEN_AI_TOKEN_TYPE: "output"},
            base,
        )
        try:
            if len(self._point_attributes) >= _POINT_CACHE_SIZE:
                self._point_attributes = {}  # bounded: many distinct models must not grow memory forever
            self._point_attributes[key] = built
        except TypeError:  # an unhashable attribute value: build per call
            pass
        return built
