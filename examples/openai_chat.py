"""One OpenAI chat call as an OpenTelemetry span with tokens and cost, set up in code.

    pip install "otel-ai-cost[openai]"
    export OPENAI_API_KEY=sk-...        # and OPENAI_BASE_URL for an OpenAI-compatible endpoint
    export OTEL_SERVICE_NAME=openai-chat-example
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    python openai_chat.py
"""
import os

import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_ai_cost import AICostSpanProcessor
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor


def main() -> None:
    provider = TracerProvider()
    # Estimates the cost (and checks budgets) when each GenAI span starts.
    provider.add_span_processor(AICostSpanProcessor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()

    client = openai.OpenAI()  # reads OPENAI_API_KEY and OPENAI_BASE_URL
    response = client.chat.completions.create(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        messages=[{"role": "user", "content": "Name three colours of the rainbow."}],
        max_tokens=50,
    )
    print(response.choices[0].message.content)
    provider.shutdown()  # flush the batch before the process exits


if __name__ == "__main__":
    main()
