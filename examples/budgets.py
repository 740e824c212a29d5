"""Budgets set up in code: a monthly budget per tenant, and a cap on each agent run.

    pip install "otel-ai-cost[openai]"
    export OPENAI_API_KEY=sk-...        # and OPENAI_BASE_URL for an OpenAI-compatible endpoint
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    python budgets.py

Each call is checked *before it is sent*: its worst-case cost (max_tokens) is held against every
budget it matches, and settled with the actual cost when the response arrives. The spend is kept
in a SQLite file (``budgets.db`` here), so it survives restarts and is shared by the processes on
this host; use ``RedisBudgetStore("rediss://...")`` to share it across hosts. See
``otel-ai-cost.yaml`` for the same budgets as a configuration file (``OTEL_AI_COST_CONFIG``).
"""
import os
from decimal import Decimal

import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_ai_cost
from otel_ai_cost import AICostSpanProcessor
from otel_ai_cost.budgets import Budget, SQLiteBudgetStore, Threshold, calendar, downgrade, lifetime, warn
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o")

BUDGETS = [
    # "tenant acme may spend $500 this month; warn at 80%, switch to the small model at 90%".
    Budget(
        "tenant-monthly",
        limit_usd=os.environ.get("TENANT_BUDGET_USD", "500"),
        window=calendar("month", tz="Europe/Paris"),
        per="tenant.id",
        thresholds=[
            Threshold(Decimal("0.8"), warn()),
            Threshold(Decimal("0.9"), downgrade("gpt-4o-mini")),
        ],  # a hard stop at 100% is always added
    ),
    # "each agent run may spend $0.50": per="trace" counts each trace on its own.
    Budget("agent-run", limit_usd=os.environ.get("AGENT_RUN_BUDGET_USD", "0.50"), window=lifetime(), per="trace"),
]


def on_warning(span, decision):
    print(f"warning: budget {decision.budget.id!r} passed a threshold (spent ${decision.deciding.spent})")


def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        AICostSpanProcessor(budgets=BUDGETS, budget_store=SQLiteBudgetStore("budgets.db"), on_warning=on_warning)
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()
    tracer = trace.get_tracer("budgets-example")
    client = openai.OpenAI()

    # Attribution is baggage: it reaches every span in the block, here and in downstream services.
    with otel_ai_cost.attribute(tenant="acme", user="dana"), tracer.start_as_current_span("invoke_agent triage"):
        for step in range(1, 21):
            try:
                reply = client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"Step {step}: what should the agent do next?"}],
                    max_tokens=300,
                )
            except otel_ai_cost.BudgetExceededError as exc:
                print(f"step {step}: not sent: {exc}")
                break
            print(f"step {step}: {reply.choices[0].message.content}")
    provider.shutdown()  # flush the spans and close the budget store


if __name__ == "__main__":
    main()
