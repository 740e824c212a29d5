"""Shared fixtures and harness: in-memory span exporter and metric reader, SDK providers,
instrumentation; the ``Pipeline`` (processor + exporter + instrumentor), a fake ``Clock``, and one
redis-server for the whole run (``redis_url``, with ``redis_prefix`` to keep each test's keys apart)."""
from __future__ import annotations

import contextlib
import itertools
import os
from datetime import datetime
from typing import Any, Callable, Iterator, List, Union

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _redis_server import RedisURL, redis_server

# The provider fakes' fixtures (``bedrock_instrumentor``, ``google_genai_instrumentor``) are shared by
# several test modules: registered here, the modules use them as parameters without importing them.
pytest_plugins = ["_fake_bedrock", "_fake_google_genai"]


@pytest.fixture(scope="session", autouse=True)
def _cache_home(tmp_path_factory):
    """Caches (the tokenizer tables) go to a folder of the test run, never to the user's home;
    subprocesses the tests start inherit it. The collector's Go caches are the exception."""
    previous = os.environ.get("XDG_CACHE_HOME")
    # The Go module and build caches of the collector tests stay where they survive between runs.
    os.environ.setdefault(
        "OTEL_AI_COST_GO_CACHE",
        os.path.join(previous or os.path.join(os.path.expanduser("~"), ".cache"), "otel-ai-cost", "go"),
    )
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    # The default call ledger and budget store (XDG_STATE_HOME) go to the test run's folder too.
    previous_state = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
    if previous_state is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous_state


@pytest.fixture(autouse=True)
def _tokenizers_loaded(_cache_home):
    """Every test starts with both tokenizers loaded, as a process is once they have loaded: a span
    that starts while one is still loading is estimated with the heuristic (never waiting for it),
    which tests/test_tokens_loading.py tests on purpose. Loaded once (from the disk cache after the
    first time), and again only after a test that forgot them."""
    from otel_ai_cost import _tiktoken_offline

    for name in (_tiktoken_offline.O200K_BASE, _tiktoken_offline.CL100K_BASE):
        if _tiktoken_offline.loaded(name) is None:
            _tiktoken_offline.get_encoding(name)


@pytest.fixture
def span_exporter():
    return InMemorySpanExporter()


@pytest.fixture
def metric_reader():
    return InMemoryMetricReader()


@pytest.fixture
def tracer_provider(span_exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def meter_provider(metric_reader):
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def openai_instrumentor(tracer_provider, meter_provider, monkeypatch):
    """The OpenAI instrumentor, instrumented for the test and uninstrumented after it."""
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

    monkeypatch.delenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


@contextlib.contextmanager
def instrumenting(instrumentor, tracer_provider, meter_provider, *, start=False):
    """``run(**kwargs)``: (re)instrument ``instrumentor`` with the test's providers and ``kwargs``
    (``start``: once now, with none); uninstrumented when the block ends. For fixtures."""

    def run(**kwargs):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **kwargs)
        return instrumentor

    if start:
        run()
    try:
        yield run
    finally:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def instrument_openai(tracer_provider, meter_provider):
    """Instrument with custom keyword arguments: ``instrument_openai(include_stream_usage=False)``."""
    from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

    with instrumenting(OpenAIInstrumentor(), tracer_provider, meter_provider) as run:
        yield run


# --- the harness: tracer provider + AICostSpanProcessor + exporter + instrumentor ---------------


class Pipeline:
    """An SDK tracer provider (with ``sampler`` and ``resource`` if given) with AICostSpanProcessor
    first and an in-memory exporter after it, a meter provider with an in-memory reader, and
    ``instrumentor`` (an instance, or None) instrumented against both. ``processor_kwargs`` are what
    the tests vary (``budgets``, ``budget_store``, ``catalog``, ``config_file``, ...); ``settings``
    defaults to ``Settings()`` so that the environment of the test run does not leak in. ``close()``
    (or ``with contextlib.closing(...)``) undoes it all; subclasses add the calls of their SDK."""

    def __init__(self, instrumentor: Any = None, sampler: Any = None, resource: Any = None,
                 **processor_kwargs: Any) -> None:
        from otel_ai_cost import AICostSpanProcessor
        from otel_ai_cost.config import Settings

        processor_kwargs.setdefault("settings", Settings())
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])
        self.processor = AICostSpanProcessor(meter_provider=self.meter_provider, **processor_kwargs)
        self.exporter = InMemorySpanExporter()
        provider_kwargs = {"sampler": sampler, "resource": resource}
        self.provider = TracerProvider(**{k: v for k, v in provider_kwargs.items() if v is not None})
        self.provider.add_span_processor(self.processor)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = instrumentor
        if instrumentor is not None:
            instrumentor.instrument(tracer_provider=self.provider, meter_provider=self.meter_provider)

    @property
    def store(self) -> Any:
        """The processor's budget store (as the processor wraps it)."""
        return self.processor.budget_book.store

    def spans(self) -> Any:
        return self.exporter.get_finished_spans()

    def last(self) -> Any:
        return self.spans()[-1]

    def close(self) -> None:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
        self.provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def close_later() -> Iterator[Callable[[Any], Any]]:
    """``close_later(thing)`` returns ``thing`` and closes it after the test, the last made first: a
    module's ``pipeline`` fixture is ``lambda **kwargs: close_later(ItsPipeline(**kwargs))``."""
    made: List[Any] = []

    def later(thing: Any) -> Any:
        made.append(thing)
        return thing

    yield later
    for thing in reversed(made):
        thing.close()


# --- time -----------------------------------------------------------------------------------


class Clock:
    """A fake clock for stores and books: calling it returns ``now`` (seconds since the epoch), which
    the test sets or moves; it starts at ``now``, a timestamp or an ISO 8601 time."""

    def __init__(self, now: Union[float, str] = 1_800_000_000.0) -> None:
        self.now = datetime.fromisoformat(now).timestamp() if isinstance(now, str) else float(now)

    def __call__(self) -> float:
        return self.now


# --- one redis-server for the run -----------------------------------------------------------

_redis_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisURL]:
    """One real redis-server for every test that only needs a server (tests that hang, kill or
    secure a server start their own). Tests share it: each keeps its keys under ``redis_prefix``."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test alone on the shared server: no test sees another's data."""
    return f"test:{request.node.name}:{next(_redis_prefixes)}"


def kill_once_ready(target: Callable[..., None], *args: Any) -> None:
    """Run ``target(*args, ready)`` in a forked child and SIGKILL it once it sets ``ready`` (a process
    that dies holding budget reservations). Children open their own connections after the fork."""
    import multiprocessing
    import signal

    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    child = fork.Process(target=target, args=(*args, ready))
    child.start()
    try:
        assert ready.wait(timeout=30), "the child did not place its holds"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL


@pytest.fixture
def open_redis_store(redis_url: RedisURL, redis_prefix: str) -> Iterator[Callable[..., Any]]:
    """``make(clock=None, **kwargs)``: a RedisBudgetStore on the shared server under this test's
    prefix (its own defaults otherwise), closed at the end of the test."""
    from otel_ai_cost.budgets._redis import RedisBudgetStore

    opened: List[Any] = []

    def make(clock: Any = None, **kwargs: Any) -> Any:
        store = RedisBudgetStore(redis_url, clock=clock or Clock(), prefix=redis_prefix, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@contextlib.contextmanager
def store_factory(request, tmp_path, kind):
    """make(clock=None) -> a budget store of ``kind`` (memory, sqlite, redis; sqlite-queued and
    redis-queued: with queued settles); the stores made in one test share their data (another
    connection to the same SQLite file or Redis prefix: as another process would)."""
    from otel_ai_cost.budgets import MemoryBudgetStore, SQLiteBudgetStore
    from otel_ai_cost.budgets._redis import RedisBudgetStore

    opened = []
    # Each settle sent at once unless the kind says queued (the Redis store queues by default).
    queued = {"settle_interval": 0.05 if kind.endswith("-queued") else None}

    def make(clock=None):
        clock = clock or Clock()
        if kind == "memory":
            store = opened[0] if opened else MemoryBudgetStore(clock)
            store._clock = clock
        elif kind.startswith("sqlite"):
            store = SQLiteBudgetStore(str(tmp_path / "budgets.db"), clock=clock, **queued)
        else:
            url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
            store = RedisBudgetStore(url, clock=clock, prefix=prefix, **queued)
        opened.append(store)
        return store

    make.backend = kind
    try:
        yield make
    finally:
        for store in opened:
            store.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request, tmp_path):
    """make_store(clock=None) -> a budget store of each kind in turn (``store_factory``)."""
    with store_factory(request, tmp_path, request.param) as make:
        yield make
