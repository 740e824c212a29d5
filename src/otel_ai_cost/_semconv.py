# PROVISIONAL: will be generated from semconv/ by scripts/generate_semconv.py. Do not edit by hand.
"""Attribute and metric names declared in semconv/."""

# Cost (names proposed to the GenAI conventions, genai PR #443)
GEN_AI_USAGE_COST_AMOUNT = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE = "gen_ai.usage.cost.source"          # "provider" | "local"

# Cost breakdown, USD (ours)
AI_COST_COST_INPUT = "ai_cost.cost.input"
AI_COST_COST_CACHE_READ = "ai_cost.cost.cache_read"
AI_COST_COST_CACHE_WRITE = "ai_cost.cost.cache_write"
AI_COST_COST_OUTPUT = "ai_cost.cost.output"
AI_COST_COST_REASONING = "ai_cost.cost.reasoning"
AI_COST_COST_AUDIO_INPUT = "ai_cost.cost.audio_input"
AI_COST_COST_AUDIO_OUTPUT = "ai_cost.cost.audio_output"
AI_COST_COST_IMAGE = "ai_cost.cost.image"
AI_COST_COST_REQUEST = "ai_cost.cost.request"

# Estimate made at span start (ours)
AI_COST_ESTIMATE_INPUT_TOKENS = "ai_cost.estimate.input_tokens"
AI_COST_ESTIMATE_OUTPUT_TOKENS = "ai_cost.estimate.output_tokens"
AI_COST_ESTIMATE_AMOUNT = "ai_cost.estimate.amount"
AI_COST_ESTIMATE_METHOD = "ai_cost.estimate.method"            # "tiktoken" | "heuristic"
AI_COST_ESTIMATE_OUTPUT_BASIS = "ai_cost.estimate.output_basis"  # "max_tokens" | "model_limit" | "default"

# Pricing (ours)
AI_COST_PRICING_STATUS = "ai_cost.pricing.status"              # "priced" | "unknown_model" | "no_usage" | "provider"
AI_COST_PRICING_CATALOG_VERSION = "ai_cost.pricing.catalog_version"
AI_COST_PRICING_MODEL = "ai_cost.pricing.model"                # catalog entry id used
AI_COST_PRICING_SERVICE_TIER = "ai_cost.pricing.service_tier"
AI_COST_PRICING_CONTEXT_TIER = "ai_cost.pricing.context_tier"  # threshold (input tokens) of the tier used

# Usage provenance (ours)
AI_COST_USAGE_SOURCE = "ai_cost.usage.source"                  # "provider" | "estimated"

# Metric (ours)
AI_COST_CLIENT_COST = "ai_cost.client.cost"                    # counter, unit "{USD}"
