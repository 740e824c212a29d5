"""``otel-ai-cost demo``: a small instrumented app against the local fake OpenAI API.

Runs a support assistant's calls (chat, a cached long prompt, a stream, a reasoning model,
embeddings, the Responses API, an unpriced self-hosted model) through the real OpenAI SDK,
instrumented by otel-ai-cost, and prints what each call cost from the spans it produced. Then runs
the assistant for one tenant under a per-tenant budget, sized at run time from the catalog prices,
so that its calls are allowed, warned about, downgraded to a cheaper model and finally blocked, and
prints what the budget store recorded. Then an agent loops, and the anomaly detector finds the
runaway run on the span that crossed its threshold, names the cause, and refuses its next call.
Nothing leaves the machine unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; the only file written is
the demo's call ledger (``demo_ledger_path``, made anew at each run; the budget store is in memory),
which the demo's last lines point ``otel-ai-cost dashboard`` and ``otel-ai-cost report`` at.
"""
from __future__ import annotations

import importlib
import os
import sys
from decimal import Decimal
from typing import Any, Callable, List, Optional, Sequence, TextIO, Tuple

from opentelemetry.sdk.trace import ReadableSpan

from .. import _semconv as sc
from ._anomaly import anomaly_section
from ._budget import budget_section
from ._context import CostProcessorSwitch, DemoContext
from ._fake_openai import FakeOpenAIServer
from ._ledger import demo_ledger as _demo_ledger
from ._ledger import ledger_hint

# ``name as name``: re-exported, the tests read the scenario from this module.
from ._scenario import BUDGET_ID as BUDGET_ID
from ._scenario import CHEAPER_MODEL as CHEAPER_MODEL
from ._scenario import TENANT as TENANT
from ._scenario import UNKNOWN_MODEL as UNKNOWN_MODEL
from ._scenario import budget_calls as budget_calls
from ._scenario import demo_calls
from ._table import CallRow, format_table, genai_spans

SERVICE_NAME = "otel-ai-cost-demo"


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



# The demo's sections, in order.
SECTIONS: Tuple[Callable[[DemoContext], None], ...] = (calls_section, budget_section, anomaly_section)

_HINT = """\
  These are ordinary OpenTelemetry spans. To see them in Jaeger:
    docker run --rm -p 16686:16686 -p 4317:4317 jaegertracing/jaeger:latest
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 otel-ai-cost demo
  then open http://localhost:16686 (service "{service}").
  In your own app, no code change (from a clone; the distro extra configures the SDK):
    pip install './otel-ai-cost[openai,distro]' && opentelemetry-instrument python app.py
  and every OpenAI call carries gen_ai.usage.* tokens and gen_ai.usage.cost.amount in USD."""


def _otlp_processor(out: TextIO) -> Any:
    """A batch OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set, else None."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"))
    http = protocol.startswith("http")
    try:  # the gRPC exporter is the `otlp` extra; the HTTP one is not a dependency at all
        transport = "http" if http else "grpc"
        exporter = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{transport}.trace_exporter")
    except ImportError as exc:
        package = "opentelemetry-exporter-otlp-proto-http" if http else "'otel-ai-cost[otlp]'"
        print(f"  (not exporting to {endpoint}: {exc}; pip install {package})", file=out)
        return None
    print(f"  Also exporting the spans over OTLP ({protocol}) to {endpoint}", file=out)
    return BatchSpanProcessor(exporter.OTLPSpanExporter())


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
    cost_processor = CostProcessorSwitch(AICostSpanProcessor(settings=settings))
    tracer_provider.add_span_processor(cost_processor)
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    ledger = _demo_ledger(out)
    if ledger is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(ledger))
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
    if ledger is not None:
        print(ledger_hint(), file=out)
    for error in errors:
        print(f"otel-ai-cost: error: demo call failed: {error}", file=out)
    return 1 if errors else 0

