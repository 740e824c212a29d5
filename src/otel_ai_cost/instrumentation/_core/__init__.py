"""The instrumentation core every provider package is built on.

An instrumentor describes its call as an ``LLMRequest`` plus the request attributes, starts an
``Operation`` (the span is started inside ``pending_request`` so ``AICostSpanProcessor.on_start``
sees the request), and finishes it exactly once with the usage it read from the response. Finishing
sets the usage and cost attributes, records the metrics and ends the span. Nothing here may break
the user's call: every helper that touches SDK objects catches its own errors and logs them once per
call site.

- ``_readers``: small readers of SDK objects (``get``, ``get_extra``, ``as_int``, ``given``, ``host_port``, ...);
- ``_log``: ``log_once``, ``safe``, ``error_type``;
- ``_telemetry``: the tracer and metric instruments of one instrumentor;
- ``_operation``: ``Operation`` and ``Outcome``;
- ``_request``: the span name and the request attributes every provider builds alike;
- ``_calls``: the wrappers of SDK methods of the plain prepare -> decision -> call -> result shape;
- ``_streams``: the stream proxies, and the reaper that ends the spans of abandoned streams;
- ``_stream_errors``: the one rule for streams the provider ends with an error;
- ``_estimate``: the output estimate of a stream that ends without usage;
- ``_instrumentor``: wrap / unwrap bookkeeping, the switch-off check, the package version;
- ``_provider``: ``ProviderInstrumentor``, the ``BaseInstrumentor`` a provider subclasses.
"""
from ._calls import Call, async_call_wrapper, async_sleep, sync_call_wrapper
from ._estimate import CharCounter, estimated_usage, tokens_module
from ._instrumentor import WrapContext, package_version, resolve, switched_off, telemetry_from, unwrap_all, wrap
from ._log import error_type, log_once, safe
from ._operation import Operation, Outcome, compute_cost_attributes, log_clamped
from ._provider import ProviderInstrumentor
from ._readers import MISSING, as_int, as_num, as_str, get, get_extra, given, host_port, materialize
from ._request import SAMPLING_NUMBERS, base_attributes, number_attributes, span_name, string_list, url_host_port
from ._stream_errors import error_event_type, failed_outcome, provider_error_type
from ._streams import (
    AsyncStreamProxy,
    StreamProxy,
    StreamProxyBase,
    StreamState,
    end_stream_proxy,
    end_when_collected,
    flush_abandoned_streams,
    set_stream_idle_timeout,
)
from ._telemetry import DURATION_BUCKETS, TOKEN_USAGE_BUCKETS, Telemetry

__all__ = [
    "MISSING", "DURATION_BUCKETS", "TOKEN_USAGE_BUCKETS",
    "AsyncStreamProxy", "Call", "CharCounter", "Operation", "Outcome", "StreamProxy", "StreamProxyBase",
    "StreamState", "Telemetry", "WrapContext",
    "as_int", "as_num", "as_str", "async_call_wrapper", "async_sleep", "compute_cost_attributes",
    "end_stream_proxy", "end_when_collected", "error_event_type", "error_type", "estimated_usage",
    "failed_outcome", "flush_abandoned_streams",
    "get", "get_extra", "given", "host_port", "log_clamped", "log_once", "materialize", "package_version",
    "provider_error_type",
    "resolve", "safe",
    "set_stream_idle_timeout", "switched_off", "sync_call_wrapper", "telemetry_from", "tokens_module", "unwrap_all",
    "wrap",
    "ProviderInstrumentor", "SAMPLING_NUMBERS", "base_attributes", "number_attributes", "span_name", "string_list",
    "url_host_port",
]
