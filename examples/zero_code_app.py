"""A plain OpenAI app with no OpenTelemetry code: otel-ai-cost instruments it from outside.

    pip install "otel-ai-cost[openai]"
    export OPENAI_API_KEY=sk-...                 # and OPENAI_BASE_URL for an OpenAI-compatible endpoint
    export OTEL_SERVICE_NAME=zero-code-app
    export OTEL_TRACES_EXPORTER=otlp             # spans, with tokens and cost
    export OTEL_METRICS_EXPORTER=otlp            # the ai_cost.client.cost counter
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
    export OTEL_AI_COST_PRICING_FILES=prices.json  # optional: your own prices (negotiated, private models)
    export OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=openai  # if another OpenAI instrumentation is installed
    opentelemetry-instrument python zero_code_app.py
"""
import os

import openai

client = openai.OpenAI()  # reads OPENAI_API_KEY and OPENAI_BASE_URL
response = client.chat.completions.create(
    model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
    messages=[{"role": "user", "content": "Name three colours of the rainbow."}],
    max_tokens=50,
)
print(response.choices[0].message.content)
