"""``otel-ai-cost demo``: a small instrumented app against the local fake OpenAI API.

Runs a support assistant's calls (chat, a cached long prompt, a stream, a reasoning model,
embeddings, the Responses API, an unpriced self-hosted model) through the real OpenAI SDK,
instrumented by otel-ai-cost, and prints what each call cost from the spans it produced. Then runs
the assistant for one tenant under a per-tenant budget, sized at run time from the catalog prices,
so that its calls are allowed, warned about, downgraded to a cheaper model and finally blocked, and
prints what the budget store recorded. Nothing leaves the machine unless
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; nothing is written to disk (the budget store is in memory).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .. import _semconv as sc
from ._fake_openai import FakeOpenAIServer

SERVICE_NAME = "otel-ai-cost-demo"
# A self-hosted model behind an OpenAI-compatible endpoint: not in the pricing catalog.
UNKNOWN_MODEL = "acme-support-llm"
DASH = "\u2014"
# The demo's output fits a terminal this wide.
WIDTH = 100

_TICKET = (
    "Hi, I was charged twice for my March invoice (INV-20931) and the second charge still shows "
    "as pending on my card. Can you refund it? Thanks, Dana"
)

# The budget section: who the calls are made for, and the budget they run under.
TENANT = "acme"
USER = "dana"
BUDGET_ID = "support-daily"
CHEAPER_MODEL = "gpt-4o-mini"
WARN_AT = Decimal("0.5")
DOWNGRADE_AT = Decimal("0.8")
# The limit is sized so that the worst case of the call meant to be downgraded is this share of it:
# past the downgrade threshold, with room below 100% for what the earlier calls spent.
SIZED_SHARE = Decimal("0.85")


def _handbook() -> str:
    """A long, static system prompt: the kind of prefix OpenAI's prompt cache serves."""
    topics = ("billing", "refunds", "invoices", "account access", "data export", "plan changes",
              "outages", "security reports")
    lines = ["You are the support assistant of Acme Cloud. Follow the handbook below exactly."]
    for number in range(1, 49):
        topic = topics[number % len(topics)]
        lines.append(
            f"Rule {number} ({topic}): read the customer's message twice, quote the invoice or "
            f"ticket number when there is one, never promise a date you cannot keep, escalate "
            f"{topic} questions you cannot resolve to a human within one business day, and end "
            f"with one clear next step."
        )
    return "\n".join(lines)


def _chat(system: str) -> List[Dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": _TICKET}]


_CLASSIFY = "Classify the ticket: billing, technical or other."
_DRAFT = "Write a short, friendly reply."


@dataclass(frozen=True)
class DemoCall:
    """One call the sample app makes; ``run`` gets the OpenAI client."""

    description: str
    run: Callable[[Any], Any]


def _consume(stream: Any) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def demo_calls() -> List[DemoCall]:
    """The sample app: a support assistant triaging and answering one ticket."""
    handbook = _handbook()
    return [
        DemoCall("classify the ticket", lambda c: c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=20, messages=_chat(_CLASSIFY))),
        DemoCall("answer (prompt cache)", lambda c: c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=300, messages=_chat(handbook))),
        DemoCall("draft the reply", lambda c: c.chat.completions.create(
            model="gpt-4o", max_tokens=400, messages=_chat(_DRAFT))),
        DemoCall("stream the reply", lambda c: _consume(c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=400, stream=True, stream_options={"include_usage": True},
            messages=_chat("Rewrite the reply for a chat widget.")))),
        DemoCall("check refund policy", lambda c: c.chat.completions.create(
            model="o4-mini", max_completion_tokens=2000, reasoning_effort="medium",
            messages=[{"role": "user", "content": "Is a double charge refundable under policy 7? " + _TICKET}])),
        DemoCall("embed for search", lambda c: c.embeddings.create(
            model="text-embedding-3-small", input=[_TICKET, "double charge refund", "pending card charge"])),
        DemoCall("summarise (Responses)", lambda c: c.responses.create(
            model="gpt-5-mini", max_output_tokens=1000, reasoning={"effort": "low"},
            instructions="Summarise the ticket in one line.", input=_TICKET)),
        DemoCall("sentiment (self-hosted)", lambda c: c.chat.completions.create(
            model=UNKNOWN_MODEL, max_tokens=10,
            messages=[{"role": "user", "content": "Sentiment of this ticket? " + _TICKET}])),
    ]


@dataclass(frozen=True)
class BudgetCall:
    """One chat call of the budget section, and the decision the budget is sized to give it."""

    description: str
    model: str
    max_tokens: int
    messages: List[Dict[str, str]]
    expect: str  # allow | warn | downgrade | block

    def run(self, client: Any) -> Any:
        return client.chat.completions.create(model=self.model, max_tokens=self.max_tokens, messages=self.messages)


def budget_calls() -> List[BudgetCall]:
    """The assistant working one ticket for the tenant, each call with a bigger worst case."""
    return [
        BudgetCall("classify the ticket", "gpt-4o-mini", 20, _chat(_CLASSIFY), "allow"),
        BudgetCall("answer (prompt cache)", "gpt-4o-mini", 300, _chat(_handbook()), "allow"),
        BudgetCall("draft the reply", "gpt-4o", 400, _chat(_DRAFT), "warn"),
        BudgetCall("draft a longer reply", "gpt-4o", 600,
                   _chat("Write a detailed reply that walks through the refund steps."), "downgrade"),
        BudgetCall("escalate to billing", "gpt-4o", 1500,
                   _chat("Write a detailed escalation of this ticket for the billing team."), "block"),
    ]


@dataclass
class CallRow:
    """One line of the demo's table, read from one finished GenAI span."""

    number: int
    operation: str
    model: str
    input_tokens: Optional[int]
    cached_tokens: Optional[int]
    output_tokens: Optional[int]
    reasoning_tokens: Optional[int]
    estimate: Optional[float]
    cost: Optional[float]
    pricing_status: Optional[str]
    description: str = ""
    request_model: Optional[str] = None  # gen_ai.request.model: after a downgrade, the cheaper model
    requested_model: Optional[str] = None  # ai_cost.budget.requested_model: the model asked for
    decision: Optional[str] = None  # ai_cost.budget.decision
    warned: bool = False  # the span has the ai_cost.budget.warning event

    @classmethod
    def from_span(cls, number: int, span: ReadableSpan, description: str = "") -> "CallRow":
        a: Dict[str, Any] = dict(span.attributes or {})
        return cls(
            number=number,
            operation=str(a.get(sc.GEN_AI_OPERATION_NAME, "")),
            model=str(a.get(sc.GEN_AI_RESPONSE_MODEL) or a.get(sc.GEN_AI_REQUEST_MODEL) or "?"),
            input_tokens=a.get(sc.GEN_AI_USAGE_INPUT_TOKENS),
            cached_tokens=a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            output_tokens=a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS),
            reasoning_tokens=a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
            estimate=a.get(sc.AI_COST_ESTIMATE_AMOUNT),
            cost=a.get(sc.GEN_AI_USAGE_COST_AMOUNT),
            pricing_status=a.get(sc.AI_COST_PRICING_STATUS),
            description=description,
            request_model=a.get(sc.GEN_AI_REQUEST_MODEL),
            requested_model=a.get(sc.AI_COST_BUDGET_REQUESTED_MODEL),
            decision=a.get(sc.AI_COST_BUDGET_DECISION),
            warned=any(event.name == sc.AI_COST_BUDGET_WARNING for event in span.events),
        )

    @property
    def note(self) -> str:
        status = self.pricing_status
        if status and status not in (sc.AiCostPricingStatusValues.PRICED, sc.AiCostPricingStatusValues.PROVIDER,
                                     sc.AiCostPricingStatusValues.UNKNOWN_MODEL):  # unknown: see the total
            return f"{self.description}: {status}".lstrip(": ")
        return self.description

    @property
    def asked_model(self) -> str:
        """The model the app asked for (before any downgrade)."""
        return str(self.requested_model or self.request_model or "?")

    @property
    def decision_text(self) -> str:
        if self.decision == "downgrade":
            return f"downgrade -> {self.request_model}"
        if self.decision == "block":
            return "BLOCKED"
        return self.decision or DASH


class _CostProcessor(SpanProcessor):
    """Delegates to one AICostSpanProcessor, which a demo section may replace for its calls."""

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor = processor
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def using(self, processor: SpanProcessor) -> Iterator[SpanProcessor]:
        """Send the spans started in the block to ``processor`` (which the caller shuts down)."""
        with self._lock:
            previous, self.processor = self.processor, processor
        try:
            yield processor
        finally:
            with self._lock:
                self.processor = previous

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        self.processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self.processor, "_on_ending", None)
        if on_ending is not None:
            on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.processor.on_end(span)

    def shutdown(self) -> None:
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)


@dataclass
class DemoContext:
    """What a demo section works with."""

    client: Any
    server: FakeOpenAIServer
    spans: Callable[[], Sequence[ReadableSpan]]
    out: TextIO
    errors: List[str] = field(default_factory=list)
    cost_processor: Optional[_CostProcessor] = None  # the tracer provider's AICostSpanProcessor
    settings: Any = None  # otel_ai_cost.config.Settings of the demo's processors

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def wrap(self, text: str, indent: str = "  ", subsequent: Optional[str] = None) -> None:
        """Print ``text`` wrapped to the demo's width."""
        for line in textwrap.wrap(text, width=WIDTH - 4, initial_indent=indent,
                                  subsequent_indent=indent if subsequent is None else subsequent,
                                  break_on_hyphens=False, break_long_words=False):
            self.print(line)


def _money(value: Optional[float]) -> str:
    return DASH if value is None else f"{value:.6f}"


def _usd(value: Decimal) -> str:
    return f"${value:.6f}"


def _tokens(total: Optional[int], part: Optional[int]) -> str:
    if total is None:
        return DASH
    return f"{total} ({part or 0})"


def genai_spans(spans: Sequence[ReadableSpan]) -> List[ReadableSpan]:
    return [s for s in spans if s.attributes and sc.GEN_AI_OPERATION_NAME in s.attributes]


def layout(header: Sequence[Tuple[str, ...]], cells: Sequence[Sequence[str]], right: Sequence[int]) -> List[str]:
    """Aligned table lines. Each header cell is a tuple of lines, bottom-aligned; ``right``: right-aligned columns."""
    depth = max(len(h) for h in header)
    head = [("",) * (depth - len(h)) + tuple(h) for h in header]
    lines_of_header = [tuple(column[level] for column in head) for level in range(depth)]
    table = lines_of_header + [tuple(row) for row in cells]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return lines


def format_table(rows: Sequence[CallRow]) -> List[str]:
    header = [("#",), ("model",), ("input", "(cached)"), ("output", "(reasoning)"), ("estimate", "USD"),
              ("cost", "USD"), ("call",)]
    cells = [
        (str(r.number), r.model, _tokens(r.input_tokens, r.cached_tokens),
         _tokens(r.output_tokens, r.reasoning_tokens), _money(r.estimate), _money(r.cost), r.note)
        for r in rows
    ]
    return layout(header, cells, right=(0, 2, 3, 4, 5))


def calls_section(ctx: DemoContext) -> None:
    """Run the sample app's calls and print what each one cost."""
    rows: List[CallRow] = []
    for call in demo_calls():
        before = len(genai_spans(ctx.spans()))
        try:
            call.run(ctx.client)
        except Exception as exc:  # noqa: BLE001 - report every failed call, then exit 1
            ctx.errors.append(f"{call.description}: {type(exc).__name__}: {exc}")
        for span in genai_spans(ctx.spans())[before:]:
            rows.append(CallRow.from_span(len(rows) + 1, span, call.description))
    ctx.print()
    for line in format_table(rows):
        ctx.print("  " + line)
    priced = [r for r in rows if r.cost is not None]
    unpriced = len(rows) - len(priced)
    total = sum((Decimal(str(r.cost)) for r in priced), Decimal(0))
    ctx.print()
    line = f"  Total spend: ${total:.6f} over {len(priced)} priced calls"
    if unpriced:
        line += f" ({unpriced} not priced: model not in the catalog)"
    ctx.print(line)


# -- the budget section ---------------------------------------------------------------------------


def _significant(value: Decimal, digits: int = 3) -> Decimal:
    return value.quantize(Decimal(1).scaleb(value.adjusted() - digits + 1), rounding=ROUND_HALF_EVEN)


def estimate_call(processor: Any, call: BudgetCall) -> Optional[Decimal]:
    """What the processor will estimate for the call (worst case: its max_tokens), in USD, or None."""
    from .._request import LLMRequest
    from ..tokens import estimate_chat_input

    request = LLMRequest(provider="openai", operation="chat", model=call.model, max_output_tokens=call.max_tokens,
                         estimate_input=lambda: estimate_chat_input(call.model, call.messages))
    estimate = processor.estimate(request)
    return estimate.amount if estimate is not None else None


def size_budget(processor: Any, calls: Sequence[BudgetCall]) -> Tuple[Optional[Decimal], str]:
    """The budget's limit, from the catalog price of the call meant to be downgraded, or (None, why not)."""
    number, call = next((i, c) for i, c in enumerate(calls, start=1) if c.expect == "downgrade")
    estimate = estimate_call(processor, call)
    if estimate is None or estimate <= 0:
        return None, f"{call.model} has no price in the pricing catalog"
    return _significant(estimate / SIZED_SHARE), (
        f"sized at run time from the catalog price of {call.model}: call {number}'s worst case, "
        f"{_usd(estimate)}, is {SIZED_SHARE:.0%} of it"
    )


class _LogCapture(logging.Handler):
    """Collects what otel-ai-cost logs while the budget section runs (shown in the report instead)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def capturing(self, name: str = "otel_ai_cost") -> Iterator["_LogCapture"]:
        logger = logging.getLogger(name)
        propagate = logger.propagate
        logger.addHandler(self)
        logger.propagate = False
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.propagate = propagate


def format_budget_table(rows: Sequence[CallRow], shares: Sequence[Optional[Decimal]]) -> List[str]:
    header = [("#",), ("call",), ("model",), ("estimate", "USD"), ("cost", "USD"), ("spent+est.", "of limit"),
              ("budget",)]
    cells = [
        (str(r.number), r.description, r.asked_model, _money(r.estimate), _money(r.cost),
         DASH if share is None else f"{share:.0%}", r.decision_text)
        for r, share in zip(rows, shares)
    ]
    return layout(header, cells, right=(0, 3, 4, 5))


def budget_section(ctx: DemoContext) -> None:
    """Run the assistant for one tenant under a budget: allowed calls, a warning, a downgrade, a block."""
    from ..budgets import Budget, MemoryBudgetStore, calendar, downgrade, warn
    from ..config import OutputEstimate, Settings
    from ..processor import AICostSpanProcessor

    assert ctx.cost_processor is not None, "the budget section needs the demo's cost processor"
    # Worst-case estimates (max_tokens), whatever OTEL_AI_COST_OUTPUT_ESTIMATE says: the story depends on it.
    settings = (ctx.settings if ctx.settings is not None else Settings()).replace(
        output_estimate=OutputEstimate(), estimate=True, config_file=None)
    plain = AICostSpanProcessor(settings=settings)
    calls = budget_calls()
    ctx.print()
    limit, sizing = size_budget(plain, calls)
    if limit is None:
        ctx.wrap(f"Budgets: skipped, {sizing}.")
        return
    budget = Budget(
        BUDGET_ID, limit, calendar("day"), per="tenant.id",
        thresholds=[(WARN_AT, warn()), (DOWNGRADE_AT, downgrade(CHEAPER_MODEL))],  # + block at 100%
    )
    processor = AICostSpanProcessor(settings=settings, catalog=plain.catalog, budgets=[budget],
                                    budget_store=MemoryBudgetStore())
    ctx.wrap(f'Budgets: the same assistant, for tenant "{TENANT}" (user "{USER}"), under the per-tenant '
             f'budget "{BUDGET_ID}": {_usd(limit)} a day, {sizing}. Before each call is sent, the '
             "tenant's spend so far plus the call's worst-case estimate decides: warn from "
             f"{WARN_AT:.0%} of the limit, downgrade to {CHEAPER_MODEL} from {DOWNGRADE_AT:.0%}, block past 100%.")
    try:
        _run_budget_calls(ctx, processor, calls)
        _spend_report(ctx, processor.budget_book)
    finally:
        processor.shutdown()


def _run_budget_calls(ctx: DemoContext, processor: Any, calls: Sequence[BudgetCall]) -> None:
    """Make the calls for the tenant under the budget; print their table and what each decision did."""
    from .. import attribute
    from ..errors import BudgetExceededError

    assert ctx.cost_processor is not None
    book = processor.budget_book
    rows: List[CallRow] = []
    shares: List[Optional[Decimal]] = []
    notes: List[Tuple[str, List[str]]] = []  # (headline, details), printed under the table
    logs = _LogCapture()
    with ctx.cost_processor.using(processor), logs.capturing(), attribute(tenant=TENANT, user=USER):
        for number, call in enumerate(calls, start=1):
            before_spans = len(genai_spans(ctx.spans()))
            before_requests = len(ctx.server.requests)
            before_logs = len(logs.messages)
            usage = book.usage(BUDGET_ID, TENANT)
            blocked: Optional[BudgetExceededError] = None
            try:
                call.run(ctx.client)
            except BudgetExceededError as exc:
                blocked = exc
            except Exception as exc:  # noqa: BLE001 - report every failed call, then exit 1
                ctx.errors.append(f"budget call {number} ({call.description}): {type(exc).__name__}: {exc}")
            new = genai_spans(ctx.spans())[before_spans:]
            if not new:
                ctx.errors.append(f"budget call {number} ({call.description}) produced no span")
                continue
            row = CallRow.from_span(number, new[0], call.description)
            rows.append(row)
            estimate = Decimal(str(row.estimate)) if row.estimate is not None else None
            shares.append(None if estimate is None
                          else (usage.spent + usage.reserved + estimate) / usage.limit)
            if row.decision != call.expect:
                ctx.errors.append(f"budget call {number} ({call.description}): expected the budget to "
                                  f"{call.expect} it, it decided {row.decision or 'nothing'}")
            if row.warned:
                logged = logs.messages[before_logs:]
                headline = (f"Call {number}, warn: the span got the event {sc.AI_COST_BUDGET_WARNING}"
                            + (", and otel-ai-cost logged:" if logged else "."))
                notes.append((headline, [m.replace("otel-ai-cost: ", "", 1) for m in logged]))
            if row.decision == "downgrade":
                notes.append((f"Call {number}, downgrade: sent to {row.request_model} instead of "
                              f"{row.requested_model}; the span says so:",
                              [f"{sc.GEN_AI_REQUEST_MODEL}={row.request_model}, "
                               f"{sc.AI_COST_BUDGET_REQUESTED_MODEL}={row.requested_model}"]))
            if blocked is not None:
                sent = len(ctx.server.requests) - before_requests
                if sent:
                    ctx.errors.append(f"budget call {number} was blocked but {sent} request(s) were sent")
                received = "the fake API received nothing" if not sent else f"yet the fake API received {sent}"
                notes.append((f"Call {number}, BLOCKED: {BudgetExceededError.__name__} raised before sending, "
                              f"{received}:", [str(blocked)]))

    ctx.print()
    for line in format_budget_table(rows, shares):
        ctx.print("  " + line)
    ctx.print()
    for headline, details in notes:
        ctx.wrap(headline)
        for detail in details:
            ctx.wrap(detail, indent="    ")


def _spend_report(ctx: DemoContext, book: Any) -> None:
    """What the budget store recorded for the tenant: spend, limit, what is left, spend per model."""
    usage = book.usage(BUDGET_ID, TENANT)
    ledger = book.store.ledger(budget_id=BUDGET_ID, key=TENANT)
    ledger = [e for e in ledger if e.window_key == usage.window_key]
    by_model: Dict[str, List[Decimal]] = {}
    kinds: Dict[str, int] = {}
    for entry in ledger:
        kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        if entry.kind == "settle":
            model = str(entry.attributes.get(sc.GEN_AI_RESPONSE_MODEL) or "?")
            by_model.setdefault(model, []).append(entry.amount)
    share = usage.spent / usage.limit if usage.limit else Decimal(0)
    ctx.print()
    ctx.print(f'  Spend report from the budget store: budget "{BUDGET_ID}", tenant.id={TENANT}, '
              f"window {usage.window_key}")
    held = f", {_usd(usage.reserved)} held by calls in flight" if usage.reserved else ""
    ctx.print(f"    spent {_usd(usage.spent)} of {_usd(usage.limit)} ({share:.0%}), "
              f"{_usd(usage.remaining)} remaining{held}")
    models = ", ".join(f"{model} {_usd(sum(amounts, Decimal(0)))} ({len(amounts)} call"
                       f"{'' if len(amounts) == 1 else 's'})"
                       for model, amounts in sorted(by_model.items(), key=lambda kv: -sum(kv[1], Decimal(0))))
    ctx.wrap(f"by model: {models or 'no spend'}", indent="    ", subsequent="      ")
    decided = ", ".join(f"{kinds.get(kind, 0)} {kind}" for kind in ("warn", "downgrade", "block"))
    ctx.wrap(f"ledger: {kinds.get('reserve', 0)} holds placed, {kinds.get('settle', 0)} settled; decisions "
             f"logged: {decided}", indent="    ")


# The demo's sections, in order.
SECTIONS: Tuple[Callable[[DemoContext], None], ...] = (calls_section, budget_section)

_HINT = """\
  These are ordinary OpenTelemetry spans. To see them in Jaeger:
    docker run --rm -p 16686:16686 -p 4317:4317 jaegertracing/jaeger:latest
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 otel-ai-cost demo
  then open http://localhost:16686 (service "{service}").
  In your own app, no code change:
    pip install './otel-ai-cost[openai]' && opentelemetry-instrument python app.py   # from a clone
  and every OpenAI call carries gen_ai.usage.* tokens and gen_ai.usage.cost.amount in USD."""


def _otlp_processor(out: TextIO) -> Any:
    """A batch OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set, else None."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    try:
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    except ImportError as exc:
        package = "opentelemetry-exporter-otlp-proto-http" if protocol.startswith("http") else "'otel-ai-cost[otlp]'"
        print(f"  (not exporting to {endpoint}: {exc}; pip install {package})", file=out)
        return None
    print(f"  Also exporting the spans over OTLP ({protocol}) to {endpoint}", file=out)
    return BatchSpanProcessor(OTLPSpanExporter())


def print_console_span(spans: Sequence[ReadableSpan], out: TextIO) -> None:
    """Print the first priced GenAI span in full, as OpenTelemetry's ConsoleSpanExporter prints it (JSON)."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    priced = [s for s in genai_spans(spans) if (s.attributes or {}).get(sc.AI_COST_PRICING_STATUS) == "priced"]
    if not priced:
        print("  (no priced span to print)", file=out)
        return
    print("", file=out)
    print(f"  The first priced span ({priced[0].name}), as ConsoleSpanExporter prints it:", file=out)
    ConsoleSpanExporter(out=out).export([priced[0]])
    out.flush()


def run_demo(out: Optional[TextIO] = None, console: bool = False) -> int:
    """Run the demo, print its report to ``out`` (standard output); 0 when every call went as expected.

    With ``console``, also print the first priced span in full (ConsoleSpanExporter's JSON).
    """
    out = out if out is not None else sys.stdout
    try:
        from openai import DefaultHttpxClient, OpenAI
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from ..config import Settings
        from ..instrumentation.openai import OpenAIInstrumentor
        from ..processor import AICostSpanProcessor
    except ImportError as exc:
        print(f"otel-ai-cost: error: the demo cannot start: {exc}. "
              "Install the OpenAI extra from the checkout: pip install './otel-ai-cost[openai]'", file=out)
        return 1

    # The demo brings its own budgets: a budget configuration file (OTEL_AI_COST_CONFIG) is not used,
    # so the demo never writes to its budget store.
    settings = Settings.from_env().replace(config_file=None)
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    tracer_provider = TracerProvider(resource=resource)
    cost_processor = _CostProcessor(AICostSpanProcessor(settings=settings))
    tracer_provider.add_span_processor(cost_processor)
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(resource=resource)

    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # e.g. under opentelemetry-instrument
        instrumentor.uninstrument()
    errors: List[str] = []
    with FakeOpenAIServer() as server:
        print(f"otel-ai-cost demo: a support assistant calling a fake OpenAI API at {server.base_url}", file=out)
        print("  (no account, no network: the fake API answers like the real one, with realistic usage)", file=out)
        otlp = _otlp_processor(out)
        if otlp is not None:
            tracer_provider.add_span_processor(otlp)
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        # trust_env=False: a proxy set in the environment must not intercept loopback traffic.
        client = OpenAI(base_url=server.base_url, api_key="sk-demo-not-a-real-key",
                        max_retries=0, http_client=DefaultHttpxClient(trust_env=False))
        try:
            ctx = DemoContext(client=client, server=server, spans=exporter.get_finished_spans, out=out,
                              cost_processor=cost_processor, settings=settings)
            for section in SECTIONS:
                section(ctx)
            errors = ctx.errors
        finally:
            client.close()
            instrumentor.uninstrument()
            tracer_provider.force_flush()
            tracer_provider.shutdown()
            meter_provider.shutdown()
    print("", file=out)
    print(f"  Spans exported: {len(exporter.get_finished_spans())}", file=out)
    if console:
        print_console_span(exporter.get_finished_spans(), out)
    print("", file=out)
    print(_HINT.format(service=resource.attributes.get("service.name", SERVICE_NAME)), file=out)
    for error in errors:
        print(f"otel-ai-cost: error: demo call failed: {error}", file=out)
    return 1 if errors else 0
