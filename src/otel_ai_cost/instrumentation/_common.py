"""Span and metric helpers shared by the provider instrumentors.

An instrumentor describes its call as an ``LLMRequest`` plus the request attributes, starts an
``Operation`` (the span is started inside ``pending_request`` so ``AICostSpanProcessor.on_start``
sees the request), and finishes it exactly once with the usage it read from the response. Finishing
sets the usage and cost attributes, records the metrics and ends the span.

Nothing here may break the user's call: every helper that touches SDK objects catches its own
errors and logs them once per call site.

Also here, for every provider module: the small readers of SDK objects (``get``, ``as_int``, ...),
the output estimate of a stream that ends without usage (``CharCounter``, ``estimated_usage``),
the wrap / unwrap bookkeeping of ``_instrument`` / ``_uninstrument``, and the wrapper factories
(``sync_call_wrapper`` / ``async_call_wrapper``) of the providers whose calls follow the plain
prepare -> budget decision -> call -> result shape. The stream proxies, and the reaper that ends
the spans of abandoned streams, are in ``_streams`` (importable from here too).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator as _IteratorABC
from collections.abc import Mapping as _MappingABC
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.metrics import Meter, get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _semconv as sc
from .._request import LLMRequest, pending_request
from ..cost import Usage, bound_usage, usage_limits
from .._gen_ai import (  # noqa: F401 - re-exported for the provider modules
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_CHOICE_COUNT,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_ENCODING_FORMATS,
    GEN_AI_OUTPUT_TYPE,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    SERVER_ADDRESS,
    SERVER_PORT,
    ERROR_TYPE,
    GEN_AI_CLIENT_TOKEN_USAGE,
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
)

logger = logging.getLogger("otel_ai_cost.instrumentation")

# Advised bucket boundaries from the GenAI metrics conventions.
TOKEN_USAGE_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)

# Attributes copied from the span onto every metric point.
_METRIC_ATTRIBUTES = (
    GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, SERVER_ADDRESS, SERVER_PORT,
)

_POINT_CACHE_SIZE = 256

# Operations whose model a budget may swap for a cheaper one: chat models only (an embedding
# model's vectors live in its own space; a completions-only model has no chat endpoint).
_DOWNGRADABLE = frozenset({"chat", "generate_content"})

_logged_sites: set = set()
_logged_lock = threading.Lock()


def log_once(site: str, exc: BaseException) -> None:
    """Log an internal failure once per call site; the user's call goes on untouched."""
    with _logged_lock:
        if site in _logged_sites:
            return
        _logged_sites.add(site)
    logger.warning("otel-ai-cost: internal error in %s (reported once): %r", site, exc, exc_info=exc)


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: the class's qualified name, as contrib openai-v2 does."""
    return type(exc).__qualname__


# ---------------------------------------------------------------------------------------------
# Small pure helpers shared by the provider modules


MISSING = object()


def given(value: Any) -> bool:
    """False for None and the Stainless SDKs' ``NOT_GIVEN`` / ``omit`` sentinels."""
    if value is None:
        return False
    name = type(value).__name__
    return name not in ("NotGiven", "Omit")


def get(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: attribute first (SDK models), Mapping only as the fallback."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    try:
        value = getattr(obj, name, MISSING)
    except Exception:
        value = MISSING
    if value is not MISSING:
        return value
    if isinstance(obj, _MappingABC):
        try:
            return obj.get(name)
        except Exception:
            return None
    return None


def as_int(value: Any) -> Optional[int]:
    """``value`` if it is an int (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def as_num(value: Any) -> Optional[float]:
    """``value`` as a float if it is an int or a float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def as_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def materialize(kwargs: Dict[str, Any], key: str) -> None:
    """Turn a one-shot iterator argument into a list so the lazy estimate cannot consume it."""
    value = kwargs.get(key)
    if isinstance(value, _IteratorABC):
        kwargs[key] = list(value)


async def async_sleep(seconds: float) -> None:
    """Sleep in whatever event loop runs the SDK (asyncio or trio, as the SDKs themselves do with anyio)."""
    try:
        import anyio
    except ImportError:  # pragma: no cover - the SDKs depend on anyio
        await asyncio.sleep(seconds)
        return
    await anyio.sleep(seconds)


# id(base_url) -> (base_url, (host, port)): a client's URL object is immutable and long-lived,
# so host and port are parsed once per URL, not twice per call. The URL is kept in the value so
# a reused id() cannot match.
_HOST_PORT: Dict[int, Tuple[Any, Tuple[Optional[str], Optional[int]]]] = {}
_HOST_PORT_SIZE = 256


def host_port(client: Any) -> Tuple[Optional[str], Optional[int]]:
    """``server.address`` and ``server.port`` of a Stainless SDK client (openai, groq, anthropic),
    from its ``base_url``."""
    url = get(client, "base_url")
    if url is None or type(url) is str or type(url) is dict:
        return _parse_host_port(url)
    hit = _HOST_PORT.get(id(url))
    if hit is not None and hit[0] is url:
        return hit[1]
    result = _parse_host_port(url)
    if len(_HOST_PORT) >= _HOST_PORT_SIZE:
        _HOST_PORT.clear()
    _HOST_PORT[id(url)] = (url, result)
    return result


def _parse_host_port(url: Any) -> Tuple[Optional[str], Optional[int]]:
    host = as_str(get(url, "host"))
    if not host:
        return None, None
    port = as_int(get(url, "port"))
    if port is None:
        port = 443 if get(url, "scheme") == "https" else 80
    return host, port


# ---------------------------------------------------------------------------------------------
# Output estimate of a stream that ends without usage


class CharCounter:
    """The cheap counter for streams that are expected to end with a usage chunk / final response.

    Tokenising each delta would cost ~17 µs per chunk only to be thrown away when the usage arrives,
    and content is never buffered, so only the number of non-empty text deltas and their characters
    are kept. If the stream ends without usage, output tokens are estimated as
    ``max(deltas, ceil(chars / 4))``: OpenAI streams about one token per delta, and English text
    averages about 4 characters per token (the fallback for providers that batch several tokens per
    chunk).
    """

    __slots__ = ("deltas", "chars")
    failed = False

    def __init__(self) -> None:
        self.deltas = 0
        self.chars = 0

    def add(self, text: Any) -> None:
        if text and type(text) is str:
            self.deltas += 1
            self.chars += len(text)

    @property
    def tokens(self) -> int:
        return max(self.deltas, (self.chars + 3) // 4)


def estimated_usage(request: LLMRequest, counter: Any, site: str = "stream input estimate") -> Optional[Usage]:
    """Usage of a stream that ended without any: the input estimate and ``counter.tokens`` output.

    None only when the counter failed and there is no input estimate either.
    """
    input_tokens = 0
    estimated = as_int(get(request.estimate, "input_tokens"))  # already counted by the processor
    if estimated is not None:
        input_tokens = estimated
    elif request.estimate_input is not None:
        try:
            input_tokens = int(request.estimate_input().tokens)
        except Exception as exc:
            log_once(site, exc)
    if counter.failed and not input_tokens:
        return None
    return Usage(input_tokens=input_tokens, output_tokens=counter.tokens)


# ---------------------------------------------------------------------------------------------
# Instrumentor bookkeeping


def package_version() -> str:
    """The installed otel-ai-cost version (the instrumentation scope's version)."""
    try:
        from importlib.metadata import version

        return version("otel-ai-cost")
    except Exception:
        return "0.0.0"


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


class Config:
    """What a provider's wrappers need: its telemetry and the pricing catalog (None: the packaged one)."""

    def __init__(self, telemetry: "Telemetry", catalog: Any) -> None:
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
    from ..config import check_environment, instrumentation_off

    decided = instrumentation_off()
    if decided is not None:
        return decided
    return not check_environment().enabled


def telemetry_from(name: str, instrument_kwargs: Mapping[str, Any]) -> "Telemetry":
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


class Telemetry:
    """The tracer and the metric instruments of one instrumentor."""

    def __init__(self, name: str, version: str, tracer_provider=None, meter_provider=None) -> None:
        self.tracer = trace.get_tracer(name, version, tracer_provider)
        meter: Meter = get_meter(name, version, meter_provider)
        self.token_usage = meter.create_histogram(
            GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_USAGE_BUCKETS),
        )
        self.duration = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.time_to_first_chunk = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
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
        base = {k: v for k, v in attrs.items() if k != ERROR_TYPE}
        built = (
            {**base, GEN_AI_TOKEN_TYPE: "input"},
            {**base, GEN_AI_TOKEN_TYPE: "output"},
            {**base, sc.GEN_AI_USAGE_COST_CURRENCY: "USD"},
        )
        try:
            if len(self._point_attributes) >= _POINT_CACHE_SIZE:
                self._point_attributes = {}  # bounded: many distinct models must not grow memory forever
            self._point_attributes[key] = built
        except TypeError:  # an unhashable attribute value: build per call
            pass
        return built


@dataclass
class Outcome:
    """What an instrumentor read from the response, handed to ``Operation.finish``."""

    usage: Optional[Usage] = None
    usage_source: str = sc.AiCostUsageSourceValues.PROVIDER
    response_model: Optional[str] = None
    service_tier: Optional[str] = None          # the tier the provider says it served
    provider_cost: Optional[float] = None       # USD reported in the response (OpenRouter usage.cost)
    attributes: Optional[Dict[str, Any]] = None  # response attributes (id, finish reasons, ...)
    error_type: Optional[str] = None            # the response itself reports a failure (no exception)


def usage_attributes(usage: Usage) -> Dict[str, Any]:
    attrs: Dict[str, Any] = {
        GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
    }
    if usage.cache_read_input_tokens:
        attrs[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_input_tokens
    if usage.cache_write_input_tokens:
        attrs[GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.cache_write_input_tokens
    if usage.reasoning_output_tokens:
        attrs[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_output_tokens
    if usage.web_search_requests:
        attrs[sc.AI_COST_USAGE_WEB_SEARCH_REQUESTS] = usage.web_search_requests
    return attrs


def compute_cost_attributes(outcome: Outcome, *, provider: str, request_model: Optional[str],
                            catalog: Any = None) -> Dict[str, Any]:
    """The cost attributes for an outcome: the provider's own cost when it reported one, else local."""
    if outcome.provider_cost is not None:
        return {
            sc.GEN_AI_USAGE_COST_AMOUNT: float(outcome.provider_cost),
            sc.GEN_AI_USAGE_COST_CURRENCY: "USD",
            sc.GEN_AI_USAGE_COST_SOURCE: sc.GenAiUsageCostSourceValues.PROVIDER,
            sc.AI_COST_PRICING_STATUS: sc.AiCostPricingStatusValues.PROVIDER,
        }
    if outcome.usage is None:
        return {sc.AI_COST_PRICING_STATUS: sc.AiCostPricingStatusValues.NO_USAGE}
    from ..cost import cost_attributes  # imported late: the cost engine may load the catalog

    kwargs: Dict[str, Any] = dict(
        provider=provider,
        request_model=request_model,
        response_model=outcome.response_model,
        service_tier=outcome.service_tier,
    )
    if catalog is not None:
        kwargs["catalog"] = catalog
    return dict(cost_attributes(outcome.usage, **kwargs) or {})


class Operation:
    """One instrumented GenAI call: its span, its start time and its metric attributes.

    ``finish`` / ``fail`` end the span; whichever runs first wins, later calls do nothing.
    """

    def __init__(self, telemetry: Telemetry, request: LLMRequest, name: str,
                 attributes: Mapping[str, Any], catalog: Any = None) -> None:
        self.telemetry = telemetry
        self.request = request
        self.catalog = catalog
        self.metric_attributes = {k: attributes[k] for k in _METRIC_ATTRIBUTES if attributes.get(k) is not None}
        self._lock = threading.Lock()
        self._ended = False
        self.start = time.perf_counter()
        start_attributes = dict(attributes)
        request.attributes = start_attributes
        with pending_request(request):
            self.span = telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=start_attributes)
        if request.decision is None and not self.span.is_recording():
            # The sampler dropped the span, so no processor saw it: budgets still hold.
            from ..processor import start_unrecorded

            start_unrecorded(telemetry.tracer, request, attributes, self.span)

    # -- the budget decision ------------------------------------------------------------------

    def apply_decision(self, call_kwargs: Dict[str, Any], model_key: Optional[str] = "model") -> Optional[float]:
        """Apply the budget decision made at span start, before the request is sent.

        A block ends the span and raises ``BudgetExceededError``; a downgrade switches
        ``call_kwargs[model_key]`` (and the span's request model) to the cheaper model, for chat
        operations only (``model_key=None``: the call cannot be downgraded, and goes ahead
        unchanged, recorded as allowed); a throttle returns the delay the caller must wait.
        Anything else returns None.
        """
        error: Optional[BaseException] = None
        delay: Optional[float] = None
        try:
            decision = self.request.decision
            action = getattr(decision, "action", None)
            if action == "block":
                error = decision.error()
                self._end_blocked()
            elif action == "downgrade" and decision.model:
                if model_key is None or self.request.operation not in _DOWNGRADABLE or decision.model == self.request.model:
                    # An embeddings model cannot be swapped for a chat model: the call goes ahead.
                    self.span.set_attribute(sc.AI_COST_BUDGET_DECISION, sc.AiCostBudgetDecisionValues.ALLOW)
                    return None
                self._downgrade(decision.model)
                call_kwargs[model_key] = decision.model
            elif action == "throttle" and decision.delay:
                delay = float(decision.delay)
        except Exception as exc:
            log_once("apply_decision", exc)
            return None
        if error is not None:
            raise error
        return delay

    def _end_blocked(self) -> None:
        """End the span of a call refused before it was sent (the processor marked it)."""
        if not self._claim():
            return
        hold = self.request.hold
        if hold is not None:
            hold.release()
        try:
            self.span.end()
        except Exception as exc:
            log_once("span.end", exc)

    def _downgrade(self, model: str) -> None:
        requested = self.request.model
        self.request.model = model
        self.metric_attributes[GEN_AI_REQUEST_MODEL] = model
        self.span.set_attributes({GEN_AI_REQUEST_MODEL: model, sc.AI_COST_BUDGET_REQUESTED_MODEL: requested or ""})
        self.span.update_name(f"{self.request.operation} {model}")

    @property
    def ended(self) -> bool:
        return self._ended

    def _claim(self) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            return True

    def finish(self, outcome: Outcome, *, error: Optional[BaseException] = None,
               extra: Optional[Mapping[str, Any]] = None) -> None:
        """Set the response, usage and cost attributes, record the metrics and end the span."""
        if not self._claim():
            return
        span = self.span
        duration = time.perf_counter() - self.start
        metric_attrs = dict(self.metric_attributes)
        cost_amount: Optional[float] = None
        try:
            attrs: Dict[str, Any] = {}
            if outcome.response_model:
                attrs[GEN_AI_RESPONSE_MODEL] = outcome.response_model
                metric_attrs[GEN_AI_RESPONSE_MODEL] = outcome.response_model
            if outcome.attributes:
                attrs.update({k: v for k, v in outcome.attributes.items() if v is not None})
            if extra:
                attrs.update({k: v for k, v in extra.items() if v is not None})
            if outcome.usage is not None:
                outcome = self._bounded(outcome, attrs)
                attrs.update(usage_attributes(outcome.usage))
                attrs[sc.AI_COST_USAGE_SOURCE] = outcome.usage_source
            failed = error is not None or outcome.error_type is not None
            if not failed or outcome.usage is not None:
                try:
                    cost_attrs = compute_cost_attributes(
                        outcome, provider=self.request.provider, request_model=self.request.model,
                        catalog=self.catalog,
                    )
                except Exception as exc:  # the cost engine must never break the call
                    log_once("cost_attributes", exc)
                    cost_attrs = {}
                attrs.update(cost_attrs)
                amount = cost_attrs.get(sc.GEN_AI_USAGE_COST_AMOUNT)
                if isinstance(amount, (int, float)):
                    cost_amount = float(amount)
            if error is not None:
                metric_attrs[ERROR_TYPE] = attrs[ERROR_TYPE] = error_type(error)
            elif outcome.error_type is not None:
                metric_attrs[ERROR_TYPE] = attrs[ERROR_TYPE] = outcome.error_type
            span.set_attributes(attrs)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.record_exception(error)
            elif outcome.error_type is not None:
                span.set_status(Status(StatusCode.ERROR, outcome.error_type))
        except Exception as exc:
            log_once("Operation.finish", exc)
        finally:
            try:
                span.end()
            except Exception as exc:
                log_once("span.end", exc)
        first_chunk = extra.get(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) if extra else None
        self._record_metrics(duration, outcome, metric_attrs, cost_amount, first_chunk)
        hold = self.request.hold
        if hold is not None:
            # Settle the budget with what the call cost; a call that got no usage and no cost
            # (failed, cancelled before a response) releases its hold.
            if outcome.usage is None and cost_amount is None:
                hold.release()
            else:
                hold.settle(cost_amount, {GEN_AI_RESPONSE_MODEL: outcome.response_model}, usage=outcome.usage)

    def _bounded(self, outcome: Outcome, attrs: Dict[str, Any]) -> Outcome:
        """The outcome with its usage bounded by what the model and the request allow (see
        ``cost.bound_usage``); a count that could not be true is lowered, flagged and logged once."""
        usage = outcome.usage
        assert usage is not None
        try:
            catalog = self.catalog
            if catalog is None:
                from ..pricing import default_catalog

                catalog = default_catalog()
            # The limits of the billed snapshot, else of the requested model (as the cost engine looks them up).
            max_input = max_output = None
            for model in (outcome.response_model, self.request.model):
                if model:
                    max_input, max_output = usage_limits(
                        catalog, model, self.request.provider, self.request.max_output_tokens
                    )
                    if max_input is not None:
                        break
            bounded, clamped = bound_usage(usage, max_input=max_input, max_output=max_output)
        except Exception as exc:
            log_once("bound_usage", exc)
            return outcome
        if not clamped:
            return outcome
        attrs[sc.AI_COST_USAGE_CLAMPED] = list(clamped)
        log_clamped(self.request.model, clamped, usage, bounded)
        return dataclasses.replace(outcome, usage=bounded)

    def fail(self, error: BaseException, outcome: Optional[Outcome] = None) -> None:
        self.finish(outcome or Outcome(), error=error)

    def _record_metrics(self, duration: float, outcome: Outcome, attrs: Dict[str, Any],
                        cost_amount: Optional[float], first_chunk: Optional[float] = None) -> None:
        try:
            t = self.telemetry
            t.duration.record(duration, attributes=attrs)
            if isinstance(first_chunk, float):
                t.time_to_first_chunk.record(first_chunk, attributes=attrs)
            if outcome.usage is None and cost_amount is None:
                return
            input_attrs, output_attrs, cost_attrs = t.point_attributes(attrs)
            if outcome.usage is not None:
                t.token_usage.record(outcome.usage.input_tokens, attributes=input_attrs)
                t.token_usage.record(outcome.usage.output_tokens, attributes=output_attrs)
            if cost_amount is not None:
                t.cost.add(cost_amount, attributes=cost_attrs)
        except Exception as exc:
            log_once("record_metrics", exc)


_clamp_logged = False


def log_clamped(model: Optional[str], clamped: Sequence[str], reported: Usage, bounded: Usage) -> None:
    """Warn the first time reported usage had to be bounded; later times go to debug."""
    global _clamp_logged
    log = logger.debug if _clamp_logged else logger.warning
    _clamp_logged = True
    log(
        "otel-ai-cost: a response of %r reported usage that the model and request cannot produce (%s); "
        "the span, cost and budgets use the bounded counts (input %s -> %s, output %s -> %s). "
        "Later cases are logged at debug level.",
        model, ", ".join(clamped), reported.input_tokens, bounded.input_tokens, reported.output_tokens,
        bounded.output_tokens,
    )


def safe(site: str, fn: Callable[..., Any], *args: Any, default: Any = None, **kwargs: Any) -> Any:
    """Call ``fn``; on any error log once for ``site`` and return ``default``."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        log_once(site, exc)
        return default


# ---------------------------------------------------------------------------------------------
# The wrappers of an SDK method: prepare -> budget decision -> (throttle) -> call -> result


class Call:
    """One instrumented SDK call, between request and response: its ``Operation`` and its kind.

    ``finish_with(response)`` reads the outcome (``outcomes[kind]`` of the subclass, or its own
    ``outcome``) and ends the span; ``finish_without_response()`` ends it without usage. Subclasses
    add ``handle_result(result)`` for the wrappers below.
    """

    outcomes: Mapping[str, Callable[[Any], Outcome]] = {}
    log_prefix = ""  # of the log site "<prefix><kind> response"

    def __init__(self, operation: Operation, kind: str) -> None:
        self.operation = operation
        self.kind = kind

    def outcome(self, response: Any) -> Outcome:
        return self.outcomes[self.kind](response)

    def finish_with(self, response: Any) -> None:
        try:
            outcome = self.outcome(response)
        except Exception as exc:
            log_once(f"{self.log_prefix}{self.kind} response", exc)
            outcome = Outcome()
        self.operation.finish(outcome)

    def finish_without_response(self) -> None:
        self.operation.finish(Outcome())


def sync_call_wrapper(site: str, prepare: Callable[[Any, Dict[str, Any]], Any], sleep: Callable[[float], Any],
                      decide: Optional[Callable[[Any, Dict[str, Any]], Optional[float]]] = None) -> Callable[..., Any]:
    """The ``wrapt`` wrapper of a synchronous SDK method.

    ``prepare(instance, kwargs)`` starts the span and returns ``(call, call_kwargs)``; if it fails
    the SDK is called untouched. ``call`` has ``operation`` (an ``Operation``),
    ``handle_result(result)`` (what the user gets back: the result or a proxy) and
    ``finish_without_response()``. The budget decision (``call.operation.apply_decision``, or
    ``decide(call, call_kwargs)``) is applied first (a block raises ``BudgetExceededError``, a
    throttle waits ``sleep(delay)``); the SDK is then called with ``call_kwargs``. An exception
    (cancellation included) fails the span and propagates; an internal error in ``handle_result``
    ends the span without a response and returns the SDK's result.
    ``site`` names the log sites (``"<site> request"``, ``"<site> result"``).
    """
    request_site, result_site = f"{site} request", f"{site} result"

    def wrapper(wrapped, instance, args, kwargs):
        prepared = safe(request_site, prepare, instance, kwargs)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        # raises BudgetExceededError on a block
        delay = call.operation.apply_decision(call_kwargs) if decide is None else decide(call, call_kwargs)
        if delay:
            try:
                sleep(delay)
            except BaseException as exc:  # interrupted while throttled: the call is never sent
                call.operation.fail(exc)
                raise
        try:
            result = wrapped(*args, **call_kwargs)
        except BaseException as exc:  # cancellation and interrupts end the span too
            call.operation.fail(exc)
            raise
        try:
            return call.handle_result(result)
        except Exception as exc:
            log_once(result_site, exc)
            call.finish_without_response()
            return result

    return wrapper


def async_call_wrapper(site: str, prepare: Callable[[Any, Dict[str, Any]], Any], sleep: Callable[[float], Any],
                       decide: Optional[Callable[[Any, Dict[str, Any]], Optional[float]]] = None) -> Callable[..., Any]:
    """The ``sync_call_wrapper`` of a coroutine SDK method; ``sleep(delay)`` is awaited."""
    request_site, result_site = f"{site} request", f"{site} result"

    async def wrapper(wrapped, instance, args, kwargs):
        prepared = safe(request_site, prepare, instance, kwargs)
        if prepared is None:
            return await wrapped(*args, **kwargs)
        call, call_kwargs = prepared
        # raises BudgetExceededError on a block
        delay = call.operation.apply_decision(call_kwargs) if decide is None else decide(call, call_kwargs)
        if delay:
            try:
                await sleep(delay)
            except BaseException as exc:  # cancelled while throttled: the call is never sent
                call.operation.fail(exc)
                raise
        try:
            result = await wrapped(*args, **call_kwargs)
        except BaseException as exc:  # a cancelled task ends the span too
            call.operation.fail(exc)
            raise
        try:
            return call.handle_result(result)
        except Exception as exc:
            log_once(result_site, exc)
            call.finish_without_response()
            return result

    return wrapper


# The stream proxies and the reaper live in ``_streams``; their names stay importable from here.
_STREAM_NAMES = frozenset({
    "StreamState", "StreamProxy", "AsyncStreamProxy", "_StreamProxyBase", "end_stream_proxy",
    "end_when_collected", "flush_abandoned_streams", "set_stream_idle_timeout",
})


def __getattr__(name: str) -> Any:
    if name in _STREAM_NAMES:
        from . import _streams

        value = getattr(_streams, name)
        globals()[name] = value  # later lookups are plain module attributes
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
