"""otel-ai-cost: see, estimate and control what LLM calls cost, natively in OpenTelemetry."""
