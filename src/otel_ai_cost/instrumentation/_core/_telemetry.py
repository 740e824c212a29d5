"""The tracer and the metric instruments of one instrumentor, with prepared metric attribute sets."""
from __future__ import annotations

from typing import Any, Dict, Optional

from opentelemetry import trace
from opentelemetry.metrics import Meter, MeterProvider, get_meter
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


class Telemetry:
    """The tracer and the metric instruments of one instrumentor."""

    def __init__(self, name: str, version: str, tracer_provider: Optional[TracerProvider] = None,
                 meter_provider: Optional[MeterProvider] = None) -> None:
        self.tracer = trace.get_tracer(name, version, tracer_provider)
        meter: Meter = get_meter(name, version, meter_provider)
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
        self.cost = meter.create_counter(
            sc.AI_COST_CLIENT_COST,
            unit=sc.AI_COST_CLIENT_COST_UNIT,
            description="Cost in USD of GenAI client operations.",
        )
        # (metric attributes as a tuple) -> the attribute dicts of the token and cost points.
        # The SDK never mutates them, so one set is built per distinct attribute set and reused.
        self._point_attributes: Dict[Any, Any] = {}

    def point_attributes(self, attrs: Dict[str, Any]) -> Any:
        """(input-token, output-token, cost) attribute dicts for ``attrs`` (without ``error.type``)."""
        key = tuple(attrs.items())
        try:
            return self._point_attributes[key]
        except (KeyError, TypeError):
            pass
        base = {k: v for k, v in attrs.items() if k != sc.ERROR_TYPE}
        built = (
            {**base, sc.GEN_AI_TOKEN_TYPE: "input"},
            {**base, sc.GEN_AI_TOKEN_TYPE: "output"},
            {**base, sc.GEN_AI_USAGE_COST_CURRENCY: "USD"},
        )
        try:
            if len(self._point_attributes) >= _POINT_CACHE_SIZE:
                self._point_attributes = {}  # bounded: many distinct models must not grow memory forever
            self._point_attributes[key] = built
        except TypeError:  # an unhashable attribute value: build per call
            pass
        return built
