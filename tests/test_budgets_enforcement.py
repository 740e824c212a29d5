"""Budgets enforced on real SDK calls: decided at span start, applied before the request is sent,
settled with the actual cost when the span ends.

The real ``openai`` SDK talks to a faked OpenAI API (``httpx2.MockTransport``, documented format).
Limits are derived from the estimate the processor puts on a first, unbudgeted call, so the tests
do not depend on today's catalog prices.
"""
from __future__ import annotations

import logging
import sqlite3
import types
from contextlib import closing
from decimal import Decimal

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

import conftest
import otel_ai_cost
from _fake_openai import FakeOpenAI
from otel_ai_cost import AICostSpanProcessor, BudgetExceededError, ConfigError
from otel_ai_cost.budgets import (
    Budget,
    BudgetBook,
    MemoryBudgetStore,
    SQLiteBudgetStore,
    Threshold,
    downgrade,
    lifetime,
    throttle,
    warn,
)
from otel_ai_cost.budgets._model import to_nanos
from otel_ai_cost.budgets._resilient import unwrap
from otel_ai_cost.config import Settings
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor
from otel_ai_cost.instrumentation.openai import _calls as openai_instrumentation

MESSAGES = [{"role": "user", "content": "Summarise the refund policy in one line."}]
MAX_TOKENS = 400


class Pipeline(conftest.Pipeline):
    """The shared harness (AICostSpanProcessor with the given budget options, in-memory exporter and
    metric reader) with the OpenAI instrumentor and the real SDK against the fake API."""

    def __init__(self, **processor_kwargs):
        super().__init__(OpenAIInstrumentor(), **processor_kwargs)
        self.fake = FakeOpenAI()
        self.client = self.fake.client()

    def chat(self, client=None, **kwargs):
        kwargs.setdefault("model", "gpt-4o")
        kwargs.setdefault("max_tokens", MAX_TOKENS)
        return (client or self.client).chat.completions.create(messages=MESSAGES, **kwargs)

    def decisions(self):
        points = []
        data = self.metrics.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == "ai_cost.budget.decisions":
                        points += [(dict(p.attributes), p.value) for p in metric.data.data_points]
        return points


@pytest.fixture
def pipeline(close_later):
    return lambda **kwargs: close_later(Pipeline(**kwargs))


@pytest.fixture(scope="module")
def estimate() -> Decimal:
    """The worst-case estimate of one MESSAGES call to gpt-4o with MAX_TOKENS, as the processor makes it."""
    with closing(Pipeline()) as p:
        p.chat()
        return Decimal(str(p.last().attributes["ai_cost.estimate.amount"]))


def nanos_of(span) -> int:
    return to_nanos(Decimal(str(span.attributes["gen_ai.usage.cost.amount"])))


# --- block, allow, settle -------------------------------------------------------------------


def test_a_blocked_call_raises_before_the_request_is_sent_and_its_span_is_exported(pipeline, estimate):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=store)
    with pytest.raises(BudgetExceededError) as raised:
        p.chat()
    assert p.fake.requests == []  # nothing was sent
    error = raised.value
    assert (error.budget_id, error.limit, error.spent, error.reserved) == ("team", estimate / 2, 0, 0)
    assert error.estimate == pytest.approx(estimate, abs=Decimal("1e-9"))
    assert "budget 'team'" in str(error) and "limit" in str(error)

    (span,) = p.spans()
    assert span.name == "chat gpt-4o"
    assert span.status.status_code is StatusCode.ERROR
    a = span.attributes
    assert a["error.type"] == "BudgetExceededError"
    assert (a["ai_cost.budget.decision"], a["ai_cost.budget.id"], a["ai_cost.budget.reason"]) == (
        "block", "team", "threshold")
    assert a["ai_cost.budget.limit"] == float(estimate / 2)
    assert (a["ai_cost.budget.spent"], a["ai_cost.budget.reserved"]) == (0.0, 0.0)
    assert "gen_ai.usage.input_tokens" not in a  # the call was never made
    assert [e.name for e in span.events] == ["exception"]
    assert store.spent("team", "", ["lifetime"]).reserved == 0
    assert [e.kind for e in store.ledger()] == ["block"]
    assert p.decisions() == [({"ai_cost.budget.decision": "block", "ai_cost.budget.id": "team",
                               "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}, 1)]


def test_an_allowed_call_settles_its_actual_cost(pipeline, estimate):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate * 10, lifetime())], budget_store=store)
    p.chat()
    span = p.last()
    assert span.attributes["ai_cost.budget.decision"] == "allow"
    assert store.spent("team", "", ["lifetime"]).spent == nanos_of(span)
    assert store.spent("team", "", ["lifetime"]).reserved == 0
    reserve, settle = store.ledger()
    assert (reserve.kind, settle.kind, reserve.reservation_id) == ("reserve", "settle", settle.reservation_id)
    assert reserve.amount_nanos == to_nanos(estimate)
    assert settle.attributes.get("gen_ai.response.model") == "gpt-4o-mini-2024-07-18"


def test_calls_without_a_matching_budget_are_left_alone(pipeline, estimate):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("claude", "0", lifetime(), selector={"gen_ai.provider.name": "anthropic"})],
                 budget_store=store)
    p.chat()
    assert not any(k.startswith("ai_cost.budget.") for k in p.last().attributes)
    assert store.ledger() == []


def test_spend_in_flight_counts_against_the_next_call(pipeline, estimate):
    # A stream not yet read holds its estimate: a second call that would pass the limit is refused.
    p = pipeline(budgets=[Budget("team", estimate * Decimal("1.5"), lifetime())], budget_store=MemoryBudgetStore())
    stream = p.chat(stream=True)
    with pytest.raises(BudgetExceededError) as raised:
        p.chat()
    assert raised.value.reserved == pytest.approx(estimate, abs=Decimal("1e-9"))
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "This is a test."
    p.chat()  # the stream ended and settled its (small) actual cost: room again


# --- warn, downgrade, throttle --------------------------------------------------------------


def test_a_warning_adds_a_span_event_logs_once_and_calls_the_hook(pipeline, estimate, caplog):
    warned = []
    p = pipeline(
        budgets=[Budget("team", estimate * 2, lifetime(), thresholds=[Threshold(Decimal("0.4"), warn())])],
        budget_store=MemoryBudgetStore(),
        on_warning=lambda span, decision: warned.append((span.name, decision.action, decision.budget.id)),
    )
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.budgets"):
        p.chat()
        p.chat()
    assert p.fake.requests and len(p.fake.requests) == 2
    for span in p.spans():
        assert span.attributes["ai_cost.budget.decision"] == "warn"
        (event,) = [e for e in span.events if e.name == "ai_cost.budget.warning"]
        assert event.attributes["ai_cost.budget.id"] == "team"
        assert span.status.status_code is StatusCode.UNSET
    assert warned == [("chat gpt-4o", "warn", "team")] * 2
    assert len([r for r in caplog.records if "passed a warning threshold" in r.getMessage()]) == 1


def test_a_downgrade_sends_the_call_to_the_cheaper_model(pipeline, estimate):
    p = pipeline(
        budgets=[Budget("team", estimate * 2, lifetime(),
                        thresholds=[Threshold(Decimal("0.3"), downgrade("gpt-4o-mini"))])],
        budget_store=MemoryBudgetStore(),
    )
    p.chat()
    assert p.fake.requests[0]["model"] == "gpt-4o-mini"
    span = p.last()
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert span.attributes["ai_cost.budget.requested_model"] == "gpt-4o"
    assert span.attributes["ai_cost.budget.decision"] == "downgrade"
    assert span.attributes["gen_ai.usage.cost.amount"] > 0


def test_a_throttle_delays_the_call(pipeline, estimate, monkeypatch):
    slept = []
    monkeypatch.setattr(openai_instrumentation, "time", types.SimpleNamespace(sleep=slept.append))
    p = pipeline(
        budgets=[Budget("team", estimate * 2, lifetime(), thresholds=[Threshold(Decimal("0.3"), throttle(1.5))])],
        budget_store=MemoryBudgetStore(),
    )
    p.chat()
    assert slept == [1.5] and len(p.fake.requests) == 1
    assert p.last().attributes["ai_cost.budget.delay"] == 1.5


async def test_async_calls_are_blocked_and_throttled_before_sending(pipeline, estimate, monkeypatch):
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(openai_instrumentation, "_async_sleep", fake_sleep)
    p = pipeline(
        budgets=[Budget("team", estimate * Decimal("1.9"), lifetime(),
                        thresholds=[Threshold(Decimal("0.3"), throttle(2))])],
        budget_store=MemoryBudgetStore(),
    )
    client = p.fake.async_client()
    stream = await client.chat.completions.create(model="gpt-4o", max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True)
    assert slept == [2]
    with pytest.raises(BudgetExceededError):
        await client.chat.completions.create(model="gpt-4o", max_tokens=MAX_TOKENS, messages=MESSAGES)
    assert len(p.fake.requests) == 1
    async for _ in stream:
        pass
    assert [s.attributes["ai_cost.budget.decision"] for s in p.spans()] == ["block", "throttle"]


# --- attribution, per-key budgets -------------------------------------------------------------


def test_attribution_reaches_spans_and_budgets_per_tenant(pipeline, estimate):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("tenants", estimate * Decimal("1.5"), lifetime(), per="tenant.id")],
                 budget_store=store)
    with otel_ai_cost.attribute(tenant="acme", user="dana", cost_center="cc-7"):
        stream = p.chat(stream=True)  # holds acme's estimate while unread
        with pytest.raises(BudgetExceededError) as raised:
            p.chat()
    assert raised.value.key == "acme"
    with otel_ai_cost.attribute(tenant="globex"):
        p.chat()  # another tenant, another partition
    list(stream)
    blocked, globex, acme = p.spans()
    assert (blocked.attributes["tenant.id"], blocked.attributes["ai_cost.budget.key"]) == ("acme", "acme")
    assert blocked.attributes["enduser.id"] == "dana" and blocked.attributes["ai_cost.cost_center"] == "cc-7"
    assert (globex.attributes["tenant.id"], globex.attributes["ai_cost.budget.key"]) == ("globex", "globex")
    assert acme.attributes["ai_cost.budget.decision"] == "allow"
    assert store.spent("tenants", "acme", ["lifetime"]).spent == nanos_of(acme)
    assert store.spent("tenants", "globex", ["lifetime"]).spent == nanos_of(globex)


def test_a_per_trace_budget_stops_a_runaway_agent_run(pipeline, estimate):
    p = pipeline(budgets=[Budget("agent-run", estimate * Decimal("2.5"), lifetime(), per="trace")],
                 budget_store=MemoryBudgetStore())
    tracer = p.provider.get_tracer("agent")
    sent = 0
    with tracer.start_as_current_span("invoke_agent support"):
        with pytest.raises(BudgetExceededError):
            for _ in range(1000):
                p.chat(max_tokens=MAX_TOKENS)
                sent += 1
    # Each call settles far below its estimate, so the run ends when spend + this call's hold passes.
    assert 2 <= sent < 1000
    with tracer.start_as_current_span("invoke_agent support"):
        p.chat()  # a new run, a new budget


# --- hooks --------------------------------------------------------------------------------------


def test_before_request_may_decide_instead_of_the_budgets(pipeline, estimate):
    answers = iter(["block", downgrade("gpt-4o-mini"), None])
    seen = []

    def before_request(span, est):
        seen.append(est.amount)
        return next(answers)

    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate * 10, lifetime())], budget_store=store, before_request=before_request)
    with pytest.raises(BudgetExceededError, match="before_request hook refused"):
        p.chat()
    p.chat()
    p.chat()
    assert [r["model"] for r in p.fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    blocked, downgraded, decided_by_budget = p.spans()
    assert blocked.attributes["ai_cost.budget.reason"] == "hook"
    assert downgraded.attributes["ai_cost.budget.decision"] == "downgrade"
    assert decided_by_budget.attributes["ai_cost.budget.id"] == "team"
    # The budgets still hold every call, so that what the hook lets through is counted.
    assert [e.kind for e in store.ledger()] == ["reserve", "release", "reserve", "settle", "reserve", "settle"]
    assert store.spent("team", "", ["lifetime"]).spent == nanos_of(downgraded) + nanos_of(decided_by_budget)
    assert seen[0] == pytest.approx(estimate, abs=Decimal("1e-9"))


def test_a_call_the_hook_lets_past_a_full_budget_still_counts(pipeline, estimate):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=store,
                 before_request=lambda span, est: "allow")
    p.chat()
    assert len(p.fake.requests) == 1
    assert store.spent("team", "", ["lifetime"]).spent == nanos_of(p.last())
    assert store.spent("team", "", ["lifetime"]).reserved == 0


def test_a_broken_hook_is_logged_once_and_the_budgets_decide(pipeline, estimate, caplog):
    def before_request(span, est):
        raise RuntimeError("hook bug")

    blocked = []
    p = pipeline(budgets=[Budget("team", estimate / 2, lifetime())], budget_store=MemoryBudgetStore(),
                 before_request=before_request, on_blocked=lambda span, d: blocked.append(d.budget.id))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            with pytest.raises(BudgetExceededError):
                p.chat()
    assert blocked == ["team", "team"]
    assert len([r for r in caplog.records if "before_request hook failed" in r.getMessage()]) == 1


# --- the store fails --------------------------------------------------------------------------


class FailingStore(MemoryBudgetStore):
    def reserve(self, *args, **kwargs):
        raise ConnectionError("store down")


def test_an_unreachable_store_fails_open_by_default(pipeline, estimate, caplog):
    book = BudgetBook([Budget("team", estimate / 2, lifetime())], FailingStore())
    p = pipeline(budget_book=book)
    with caplog.at_level(logging.WARNING):
        p.chat()
    assert len(p.fake.requests) == 1
    assert p.last().attributes["ai_cost.budget.decision"] == "allow"
    assert any("failing open" in r.getMessage() for r in caplog.records)


def test_an_unreachable_store_can_fail_closed(pipeline, estimate):
    book = BudgetBook([Budget("team", estimate * 10, lifetime())], FailingStore(), on_store_error="closed")
    p = pipeline(budget_book=book)
    with pytest.raises(BudgetExceededError, match="store is unavailable"):
        p.chat()
    assert p.fake.requests == []
    assert p.last().attributes["ai_cost.budget.reason"] == "store_error"


# --- spans of other instrumentations ----------------------------------------------------------

FOREIGN = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
}


def test_other_instrumentations_spans_settle_from_their_usage(pipeline):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", "1", lifetime())], budget_store=store)
    tracer = p.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=FOREIGN) as span:
        span.set_attributes({"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500,
                             "gen_ai.response.model": "gpt-4o-mini-2024-07-18"})
    # gpt-4o-mini at $0.15/M input, $0.60/M output (https://developers.openai.com/api/docs/pricing):
    # 1,000 x $0.15/M + 500 x $0.60/M = $0.00015 + $0.0003.
    cost = Decimal("0.00045")
    assert store.spent("team", "", ["lifetime"]) == type(store.spent("team", "", ["lifetime"]))(to_nanos(cost), 0)


def test_other_instrumentations_spans_are_refused_only_when_opted_in(pipeline, caplog):
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("frozen", "0", lifetime())], budget_store=store)
    tracer = p.provider.get_tracer("other")
    with caplog.at_level(logging.WARNING):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=FOREIGN):
            pass  # cannot be stopped: recorded, and its (unknown) spend still counts
    assert p.last().attributes["ai_cost.budget.decision"] == "block"
    assert p.last().status.status_code is StatusCode.UNSET
    assert any("raise_on_block" in r.getMessage() for r in caplog.records)

    p = pipeline(budgets=[Budget("frozen", "0", lifetime())], budget_store=MemoryBudgetStore(), raise_on_block=True)
    tracer = p.provider.get_tracer("other")
    with pytest.raises(BudgetExceededError):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=FOREIGN):
            pytest.fail("the block body must not run")
    span = p.last()
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "BudgetExceededError"
    # Non-GenAI spans, and agent or tool spans (which carry the totals of their calls), are never refused.
    with tracer.start_as_current_span("GET /health", kind=SpanKind.CLIENT):
        pass
    with tracer.start_as_current_span("invoke_agent triage", kind=SpanKind.CLIENT,
                                      attributes={**FOREIGN, "gen_ai.operation.name": "invoke_agent"}):
        pass


def test_a_call_instrumented_twice_counts_once(pipeline, estimate):
    # Another OpenAI instrumentation wraps the same call around ours: only our span holds and settles.
    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", "1", lifetime())], budget_store=store)
    tracer = p.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT,
                                      attributes={**FOREIGN, "gen_ai.request.model": "gpt-4o"}) as outer:
        p.chat()
        outer.set_attributes({"gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 10})
    ours = next(s for s in p.spans() if s.instrumentation_scope.name.startswith("otel_ai_cost"))
    assert store.spent("team", "", ["lifetime"]) == type(store.spent("team", "", ["lifetime"]))(nanos_of(ours), 0)
    assert [e.kind for e in store.ledger()] == ["reserve", "release", "reserve", "settle"]


# --- configuration ------------------------------------------------------------------------------

CONFIG = """
budgets:
  - id: tenants
    limit_usd: {limit}
    window: {{calendar: month, tz: Europe/Paris}}
    per: tenant.id
store:
  url: sqlite://budgets.db
"""


def test_budgets_from_the_configuration_file_survive_a_restart(tmp_path, monkeypatch, estimate):
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(CONFIG.format(limit=estimate * Decimal("1.5")))
    monkeypatch.setenv("OTEL_AI_COST_CONFIG", str(path))
    first = Pipeline(settings=Settings.from_env())
    try:
        with otel_ai_cost.attribute(tenant="acme"):
            first.chat()
        spent = nanos_of(first.last())
    finally:
        first.close()
    second = Pipeline(settings=Settings.from_env())  # a new process would read the same file
    try:
        assert isinstance(unwrap(second.processor.budget_book.store), SQLiteBudgetStore)
        store = second.processor.budget_book.store
        window = second.processor.budget_book.usage("tenants", "acme").window_key
        assert store.spent("tenants", "acme", [window]).spent == spent
        with otel_ai_cost.attribute(tenant="acme"):
            second.chat(max_tokens=MAX_TOKENS)  # spent + estimate < 1.5 estimate
            with pytest.raises(BudgetExceededError):
                second.chat(max_tokens=MAX_TOKENS * 2)
    finally:
        second.close()


def test_a_malformed_configuration_file_fails_at_construction(tmp_path, monkeypatch):
    path = tmp_path / "bad.yaml"
    path.write_text("budgets:\n  - {id: x, limit_usd: lots, window: lifetime}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: budgets\[0\].limit_usd: the limit in USD must be a number"):
        AICostSpanProcessor(settings=Settings(), config_file=str(path))
    monkeypatch.setenv("OTEL_AI_COST_RAISE_ON_BLOCK", "sometimes")
    with pytest.raises(ConfigError, match="OTEL_AI_COST_RAISE_ON_BLOCK: expected true or false"):
        Settings.from_env()


def test_unsampled_calls_are_checked_by_the_processor_and_resource_of_their_own_provider():
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    checkout = Budget("checkout", "0", lifetime(), selector={"service.name": "checkout"})
    store = MemoryBudgetStore()
    guarded = TracerProvider(resource=Resource.create({"service.name": "checkout"}), sampler=ALWAYS_OFF)
    guarded.add_span_processor(AICostSpanProcessor(settings=Settings(), budgets=[checkout], budget_store=store))
    unguarded = TracerProvider(sampler=ALWAYS_OFF)  # no cost processor at all
    fake = FakeOpenAI()
    instrumentor = OpenAIInstrumentor()
    try:
        instrumentor.instrument(tracer_provider=guarded)
        with pytest.raises(BudgetExceededError):  # selected by the resource of the span's own provider
            fake.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=unguarded)
        fake.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
        assert len(fake.requests) == 1  # another provider's budget does not apply
        assert [e.kind for e in store.ledger()] == ["block"]
    finally:
        instrumentor.uninstrument()
        guarded.shutdown()
        unguarded.shutdown()


def test_a_stream_collected_while_the_store_is_locked_does_not_deadlock(pipeline, estimate):
    # The garbage collector may finalize an abandoned stream at any allocation, even inside the
    # budget store's lock on the same thread; its span (and budget settle) must be ended elsewhere.
    import gc
    import threading

    from otel_ai_cost.instrumentation import _core

    store = MemoryBudgetStore()
    p = pipeline(budgets=[Budget("team", estimate * 10, lifetime())], budget_store=store)
    stream = p.chat(stream=True)
    next(iter(stream))
    cycle = [stream]
    cycle.append(cycle)  # only the cyclic collector can free it now
    del stream, cycle

    def collect_under_the_store_lock():
        with store._lock:
            gc.collect()

    worker = threading.Thread(target=collect_under_the_store_lock, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the stream's finalizer waited on the store lock its own thread held"
    assert _core.flush_abandoned_streams()
    (span,) = p.spans()
    assert span.attributes["ai_cost.usage.source"] == "estimated"
    assert store.spent("team", "", ["lifetime"]) == type(store.spent("team", "", ["lifetime"]))(nanos_of(span), 0)


def test_downgrades_apply_to_chat_only_and_parse_is_budgeted_too(pipeline, estimate):
    p = pipeline(
        budgets=[Budget("team", "0.000001", lifetime(),
                        thresholds=[Threshold(Decimal("0.000001"), downgrade("gpt-4o-mini"))],
                        selector={"gen_ai.operation.name": "embeddings"}),
                 Budget("zero", "0", lifetime(), selector={"gen_ai.request.model": "gpt-4.1"})],
        budget_store=MemoryBudgetStore(),
    )
    # An embeddings model cannot be replaced by a chat model: the call goes ahead unchanged.
    p.client.embeddings.create(model="text-embedding-3-large", input="refund policy")
    assert p.fake.requests[-1]["model"] == "text-embedding-3-large"
    assert p.last().attributes["ai_cost.budget.decision"] == "allow"
    assert "ai_cost.budget.requested_model" not in p.last().attributes
    # Structured-output helpers post by themselves: they are held and refused like create().
    import pydantic

    class Answer(pydantic.BaseModel):
        colour: str

    with pytest.raises(BudgetExceededError):
        p.client.chat.completions.parse(model="gpt-4.1", messages=MESSAGES, response_format=Answer)
    assert len(p.fake.requests) == 1


def test_shutdown_closes_only_the_stores_the_processor_opened(tmp_path, estimate):

    mine = SQLiteBudgetStore(str(tmp_path / "mine.db"))
    processor = AICostSpanProcessor(settings=Settings(), budgets=[Budget("b", "1", lifetime())], budget_store=mine)
    processor.shutdown()
    assert mine.spent("b", "", ["lifetime"]).spent == 0  # still open: the caller owns it
    mine.close()

    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(CONFIG.format(limit=1))
    processor = AICostSpanProcessor(settings=Settings(), config_file=str(path))
    store = processor.budget_book.store
    processor.shutdown()
    with pytest.raises(sqlite3.ProgrammingError):  # "Cannot operate on a closed database."
        store.spent("tenants", "acme", ["2026-11"])  # closed with the processor that opened it


def test_budgets_in_code_and_in_the_file_are_refused(tmp_path):
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(CONFIG.format(limit=1))
    with pytest.raises(ConfigError, match=r"otel-ai-cost.yaml; keep one of the two"):
        AICostSpanProcessor(settings=Settings(), config_file=str(path), budgets=[Budget("b", "1", lifetime())])


def test_a_store_that_cannot_be_opened_names_the_file_and_key(tmp_path):
    (tmp_path / "not-a-db").write_text("hello, I am not a database" * 100)
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text("budgets:\n  - {id: b, limit_usd: 1, window: lifetime}\nstore:\n  url: sqlite://not-a-db\n")
    with pytest.raises(ConfigError, match=r"otel-ai-cost.yaml: store.url: cannot open 'sqlite://not-a-db'"):
        AICostSpanProcessor(settings=Settings(), config_file=str(path))
