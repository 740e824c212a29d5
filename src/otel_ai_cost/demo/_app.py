"""``otel-ai-cost demo``: a small instrumented app against the local fake OpenAI API.

Runs a support assistant's calls (chat, a cached long prompt, a stream, a reasoning model,
embeddings, the Responses API, an unpriced self-hosted model) through the real OpenAI SDK,
instrumented by otel-ai-cost, and prints what each call cost from the spans it produced.
Nothing leaves the machine unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from .. import _semconv as sc
from ._fake_openai import FakeOpenAIServer

SERVICE_NAME = "otel-ai-cost-demo"
# A self-hosted model behind an OpenAI-compatible endpoint: not in the pricing catalog.
UNKNOWN_MODEL = "acme-support-llm"
DASH = "\u2014"

_TICKET = (
    "Hi, I was charged twice for my March invoice (INV-20931) and the second charge still shows "
    "as pending on my card. Can you refund it? Thanks, Dana"
)


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
    user = {"role": "user", "content": _TICKET}
    return [
        DemoCall("classify the ticket", lambda c: c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=20,
            messages=[{"role": "system", "content": "Classify the ticket: billing, technical or other."}, user])),
        DemoCall("answer from the handbook (prompt cache)", lambda c: c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=300, messages=[{"role": "system", "content": handbook}, user])),
        DemoCall("draft the reply", lambda c: c.chat.completions.create(
            model="gpt-4o", max_tokens=400,
            messages=[{"role": "system", "content": "Write a short, friendly reply."}, user])),
        DemoCall("stream the reply", lambda c: _consume(c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=400, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": "Rewrite the reply for a chat widget."}, user]))),
        DemoCall("check the refund policy (reasoning)", lambda c: c.chat.completions.create(
            model="o4-mini", max_completion_tokens=2000, reasoning_effort="medium",
            messages=[{"role": "user", "content": "Is a double charge refundable under policy 7? " + _TICKET}])),
        DemoCall("embed for search", lambda c: c.embeddings.create(
            model="text-embedding-3-small", input=[_TICKET, "double charge refund", "pending card charge"])),
        DemoCall("summarise for the CRM (Responses API)", lambda c: c.responses.create(
            model="gpt-5-mini", max_output_tokens=1000, reasoning={"effort": "low"},
            instructions="Summarise the ticket in one line.", input=_TICKET)),
        DemoCall("tag sentiment (self-hosted model)", lambda c: c.chat.completions.create(
            model=UNKNOWN_MODEL, max_tokens=10,
            messages=[{"role": "user", "content": "Sentiment of this ticket? " + _TICKET}])),
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

    @classmethod
    def from_span(cls, number: int, span: ReadableSpan, description: str = "") -> "CallRow":
        a: Dict[str, Any] = dict(span.attributes or {})
        return cls(
            number=number,
            operation=str(a.get(gen_ai.GEN_AI_OPERATION_NAME, "")),
            model=str(a.get(gen_ai.GEN_AI_RESPONSE_MODEL) or a.get(gen_ai.GEN_AI_REQUEST_MODEL) or "?"),
            input_tokens=a.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS),
            cached_tokens=a.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            output_tokens=a.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS),
            reasoning_tokens=a.get(gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
            estimate=a.get(sc.AI_COST_ESTIMATE_AMOUNT),
            cost=a.get(sc.GEN_AI_USAGE_COST_AMOUNT),
            pricing_status=a.get(sc.AI_COST_PRICING_STATUS),
            description=description,
        )

    @property
    def note(self) -> str:
        status = self.pricing_status
        if status == sc.AiCostPricingStatusValues.UNKNOWN_MODEL:
            return f"{self.description}: unknown model, not priced".lstrip(": ")
        if status and status not in (sc.AiCostPricingStatusValues.PRICED, sc.AiCostPricingStatusValues.PROVIDER):
            return f"{self.description}: {status}".lstrip(": ")
        return self.description


@dataclass
class DemoContext:
    """What a demo section works with."""

    client: Any
    server: FakeOpenAIServer
    spans: Callable[[], Sequence[ReadableSpan]]
    out: TextIO
    errors: List[str] = field(default_factory=list)


def _money(value: Optional[float]) -> str:
    return DASH if value is None else f"{value:.6f}"


def _tokens(total: Optional[int], part: Optional[int]) -> str:
    if total is None:
        return DASH
    return f"{total} ({part or 0})"


def genai_spans(spans: Sequence[ReadableSpan]) -> List[ReadableSpan]:
    return [s for s in spans if s.attributes and gen_ai.GEN_AI_OPERATION_NAME in s.attributes]


def format_table(rows: Sequence[CallRow]) -> List[str]:
    header = ("#", "operation", "model", "input (cached)", "output (reasoning)", "estimate $", "cost $", "call")
    cells = [header] + [
        (str(r.number), r.operation, r.model, _tokens(r.input_tokens, r.cached_tokens),
         _tokens(r.output_tokens, r.reasoning_tokens), _money(r.estimate), _money(r.cost), r.note)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    right = {0, 3, 4, 5, 6}
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return lines


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
    print("", file=ctx.out)
    for line in format_table(rows):
        print("  " + line, file=ctx.out)
    priced = [r for r in rows if r.cost is not None]
    unpriced = len(rows) - len(priced)
    total = sum((Decimal(str(r.cost)) for r in priced), Decimal(0))
    print("", file=ctx.out)
    line = f"  Total spend: ${total:.6f} over {len(priced)} priced calls"
    if unpriced:
        line += f" ({unpriced} not priced: model not in the catalog)"
    print(line, file=ctx.out)


# The demo's sections, in order. Budgets (warn at 80%, downgrade, block at 100%) come next as a
# section of their own, appended here.
SECTIONS: Tuple[Callable[[DemoContext], None], ...] = (calls_section,)

_HINT = """\
  These are ordinary OpenTelemetry spans. To see them in Jaeger:
    docker run --rm -p 16686:16686 -p 4317:4317 jaegertracing/jaeger:latest
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 otel-ai-cost demo
  then open http://localhost:16686 (service "{service}"). In your own app, no code change:
    pip install 'otel-ai-cost[openai]' && opentelemetry-instrument python app.py
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
        print(f"  (not exporting to {endpoint}: {exc}; install opentelemetry-exporter-otlp)", file=out)
        return None
    print(f"  Also exporting the spans over OTLP ({protocol}) to {endpoint}", file=out)
    return BatchSpanProcessor(OTLPSpanExporter())


def run_demo(out: Optional[TextIO] = None) -> int:
    """Run the demo, print its report to ``out`` (standard output); 0 when every call went as expected."""
    out = out if out is not None else sys.stdout
    try:
        from openai import DefaultHttpxClient, OpenAI
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from ..instrumentation.openai import OpenAIInstrumentor
        from ..processor import AICostSpanProcessor
    except ImportError as exc:
        print(f"otel-ai-cost: error: the demo cannot start: {exc}. "
              "Install the OpenAI extra: pip install 'otel-ai-cost[openai]'", file=out)
        return 1

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(AICostSpanProcessor())
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(resource=resource)

    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # e.g. under opentelemetry-instrument
        instrumentor.uninstrument()
    errors: List[str] = []
    with FakeOpenAIServer() as server:
        print(f"otel-ai-cost demo: a support assistant calling a local fake OpenAI API at {server.base_url}",
              file=out)
        print("  (no account, no network: the fake API answers like the real one, with realistic usage)", file=out)
        otlp = _otlp_processor(out)
        if otlp is not None:
            tracer_provider.add_span_processor(otlp)
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        # trust_env=False: a proxy set in the environment must not intercept loopback traffic.
        client = OpenAI(base_url=server.base_url, api_key="sk-demo-not-a-real-key",
                        max_retries=0, http_client=DefaultHttpxClient(trust_env=False))
        try:
            ctx = DemoContext(client=client, server=server, spans=exporter.get_finished_spans, out=out)
            for section in SECTIONS:
                section(ctx)
            errors = ctx.errors
        finally:
            client.close()
            instrumentor.uninstrument()
            tracer_provider.force_flush()
            tracer_provider.shutdown()
            meter_provider.shutdown()
    print(f"  Spans exported: {len(exporter.get_finished_spans())}", file=out)
    print("", file=out)
    print(_HINT.format(service=resource.attributes.get("service.name", SERVICE_NAME)), file=out)
    for error in errors:
        print(f"otel-ai-cost: error: demo call failed: {error}", file=out)
    return 1 if errors else 0
