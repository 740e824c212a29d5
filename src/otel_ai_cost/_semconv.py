# Generated from semconv/ by scripts/generate_semconv.py. Do not edit.
"""Attribute, event and metric names declared in semconv/."""

from typing import Final


# --- semconv/anomaly.yaml

# The kind of anomaly the operation triggered, the most severe when it triggered several.
AI_COST_ANOMALY_TYPE: Final = "ai_cost.anomaly.type"


class AiCostAnomalyTypeValues:
    """Values of ``ai_cost.anomaly.type``."""

    # Cost per call rose well above its baseline while the token counts did not explain it.
    COST_SPIKE: Final = "cost_spike"
    # Input or output tokens per call rose well above their baseline.
    TOKEN_SPIKE: Final = "token_spike"
    # Calls per minute rose well above their (seasonal) baseline.
    VOLUME_SPIKE: Final = "volume_spike"
    # One trace (agent run) made more calls or spent more than its baseline allows.
    RUNAWAY_TRACE: Final = "runaway_trace"
    # The same request was sent again and again within a short time.
    RETRY_STORM: Final = "retry_storm"
    # A model never seen before for an established attribution key.
    NEW_MODEL: Final = "new_model"
    # The error rate rose well above its baseline.
    ERROR_SPIKE: Final = "error_spike"


# How serious the anomaly is.
AI_COST_ANOMALY_SEVERITY: Final = "ai_cost.anomaly.severity"


class AiCostAnomalySeverityValues:
    """Values of ``ai_cost.anomaly.severity``."""

    # Worth knowing; no action needed.
    INFO: Final = "info"
    # Probably wasteful; look at it.
    WARNING: Final = "warning"
    # Spending far above normal; act now.
    CRITICAL: Final = "critical"


# How far beyond its threshold the anomaly is, from 0 to 1 (0.63 at the threshold).
AI_COST_ANOMALY_SCORE: Final = "ai_cost.anomaly.score"

# The root cause, as `<dimension>=<value>`, the attribution value that contributes most to the
# anomaly.
AI_COST_ANOMALY_CAUSE: Final = "ai_cost.anomaly.cause"

# The share (0 to 1) of the anomaly's excess that the cause accounts for.
AI_COST_ANOMALY_CAUSE_SHARE: Final = "ai_cost.anomaly.cause_share"

# What was measured, in the unit of `ai_cost.anomaly.observed` and `ai_cost.anomaly.baseline`.
AI_COST_ANOMALY_METRIC: Final = "ai_cost.anomaly.metric"

# The value observed for `ai_cost.anomaly.metric` when the anomaly was found.
AI_COST_ANOMALY_OBSERVED: Final = "ai_cost.anomaly.observed"

# The baseline `ai_cost.anomaly.observed` was compared with.
AI_COST_ANOMALY_BASELINE: Final = "ai_cost.anomaly.baseline"

# The baseline the anomaly was found on, as `<model>/<dimension>=<value>` (`*` for every model).
AI_COST_ANOMALY_KEY: Final = "ai_cost.anomaly.key"

# The operation triggered an anomaly finding; one event per finding. Span event.
AI_COST_ANOMALY: Final = "ai_cost.anomaly"

# Anomaly findings, by type and severity. Instrument: counter.
AI_COST_ANOMALIES: Final = "ai_cost.anomalies"
AI_COST_ANOMALIES_UNIT: Final = "{finding}"


# --- semconv/budget.yaml

# What the budgets decided for the operation, the strictest decision of the matching budgets.
AI_COST_BUDGET_DECISION: Final = "ai_cost.budget.decision"


class AiCostBudgetDecisionValues:
    """Values of ``ai_cost.budget.decision``."""

    # Every matching budget let the call go ahead unchanged.
    ALLOW: Final = "allow"
    # The call went ahead; a budget passed a warning threshold.
    WARN: Final = "warn"
    # The call was delayed because a budget passed a throttle threshold.
    THROTTLE: Final = "throttle"
    # The call was sent to a cheaper model because a budget passed a downgrade threshold.
    DOWNGRADE: Final = "downgrade"
    # The call was refused before it was sent because a budget would be exceeded.
    BLOCK: Final = "block"


# The id of the budget that made the decision.
AI_COST_BUDGET_ID: Final = "ai_cost.budget.id"

# The partition of the budget the operation counts in, the value of the budget's `per` attribute.
AI_COST_BUDGET_KEY: Final = "ai_cost.budget.key"

# The budget window the operation counts in.
AI_COST_BUDGET_WINDOW: Final = "ai_cost.budget.window"

# The budget's limit in USD for the window.
AI_COST_BUDGET_LIMIT: Final = "ai_cost.budget.limit"

# The settled spend in USD in the window before the operation.
AI_COST_BUDGET_SPENT: Final = "ai_cost.budget.spent"

# The amount in USD held by operations in flight in the window before the operation.
AI_COST_BUDGET_RESERVED: Final = "ai_cost.budget.reserved"

# Whether the deciding budget is a shadow budget, whose decisions are recorded but not enforced.
AI_COST_BUDGET_SHADOW: Final = "ai_cost.budget.shadow"

# Why the budgets decided what they did, when the decision is not `allow`.
AI_COST_BUDGET_REASON: Final = "ai_cost.budget.reason"


class AiCostBudgetReasonValues:
    """Values of ``ai_cost.budget.reason``."""

    # A budget's threshold decided.
    THRESHOLD: Final = "threshold"
    # The budget is frozen (`otel-ai-cost budget freeze`) and refuses every call.
    FROZEN: Final = "frozen"
    # The budget store could not be reached; the decision is the configured fail-open or fail-
    # closed one.
    STORE_ERROR: Final = "store_error"
    # The `before_request` hook decided, and the budgets were not asked.
    HOOK: Final = "hook"
    # The model is not in the pricing catalog and a budget's `on_unknown_model` policy is `block`.
    UNKNOWN_MODEL: Final = "unknown_model"
    # An anomaly finding (a runaway trace, a retry storm, a cost or token spike) and the
    # configuration's `on_anomaly` policy decided; the message names the finding and its cause.
    ANOMALY: Final = "anomaly"


# The request model is not in the pricing catalog: what the budgets did with the call (the
# `on_unknown_model` policy of the budgets that cover it; the strictest when they differ).
AI_COST_BUDGET_UNKNOWN_MODEL: Final = "ai_cost.budget.unknown_model"


class AiCostBudgetUnknownModelValues:
    """Values of ``ai_cost.budget.unknown_model``."""

    # The call was refused before it was sent.
    BLOCK: Final = "block"
    # The call went ahead and counts $0 against the budgets (unmetered, as configured).
    ALLOW: Final = "allow"
    # The call counts against the budgets at the price `ai_cost.budget.priced_as` names.
    PRICE_AS: Final = "price_as"


# The price an unknown model's call is counted at by the budgets: a catalog model, or the per-
# million-token prices of the policy or of the stated default fallback.
AI_COST_BUDGET_PRICED_AS: Final = "ai_cost.budget.priced_as"

# The model the caller asked for, when a downgrade decision sent the call to another model.
AI_COST_BUDGET_REQUESTED_MODEL: Final = "ai_cost.budget.requested_model"

# The delay in seconds a throttle decision added before the call was sent.
AI_COST_BUDGET_DELAY: Final = "ai_cost.budget.delay"

# The cost center an operation is attributed to, copied from the baggage entry of the same name.
AI_COST_COST_CENTER: Final = "ai_cost.cost_center"

# A budget passed a warning threshold with this operation; the operation went ahead. Span event.
AI_COST_BUDGET_WARNING: Final = "ai_cost.budget.warning"

# A shadow budget would have decided something other than allow for this operation. Span event.
AI_COST_BUDGET_SHADOW_DECISION: Final = "ai_cost.budget.shadow_decision"

# Budget decisions made before GenAI client operations, by budget and decision. Instrument:
# counter.
AI_COST_BUDGET_DECISIONS: Final = "ai_cost.budget.decisions"
AI_COST_BUDGET_DECISIONS_UNIT: Final = "{decision}"


# --- semconv/content.yaml

# Whether message content captured on the span was cut to otel-ai-cost's bounds.
AI_COST_CONTENT_TRUNCATED: Final = "ai_cost.content.truncated"


# --- semconv/cost.yaml

# Cost of this one GenAI operation, in the currency given by `gen_ai.usage.cost.currency`.
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"

# ISO 4217 code of the currency of `gen_ai.usage.cost.amount`.
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"

# Where the value of `gen_ai.usage.cost.amount` came from.
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"


class GenAiUsageCostSourceValues:
    """Values of ``gen_ai.usage.cost.source``."""

    # The cost was reported in the response, by the provider or a gateway.
    PROVIDER: Final = "provider"
    # The cost was computed by the emitter from token usage and its own price catalog.
    LOCAL: Final = "local"


# Cost in USD of the uncached input tokens.
AI_COST_COST_INPUT: Final = "ai_cost.cost.input"

# Cost in USD of the input tokens read from the prompt cache (text and images; cached audio apart).
AI_COST_COST_CACHE_READ: Final = "ai_cost.cost.cache_read"

# Cost in USD of the audio input tokens read from the prompt cache.
AI_COST_COST_CACHE_READ_AUDIO: Final = "ai_cost.cost.cache_read_audio"

# Cost in USD of the input tokens written to the prompt cache.
AI_COST_COST_CACHE_WRITE: Final = "ai_cost.cost.cache_write"

# Cost in USD of the output tokens, excluding those counted in `ai_cost.cost.reasoning`.
AI_COST_COST_OUTPUT: Final = "ai_cost.cost.output"

# Cost in USD of the reasoning output tokens, when the model prices them apart from output.
AI_COST_COST_REASONING: Final = "ai_cost.cost.reasoning"

# Cost in USD of the audio input tokens.
AI_COST_COST_AUDIO_INPUT: Final = "ai_cost.cost.audio_input"

# Cost in USD of the audio output tokens.
AI_COST_COST_AUDIO_OUTPUT: Final = "ai_cost.cost.audio_output"

# Cost in USD of image tokens priced apart from text and of images priced per image.
AI_COST_COST_IMAGE: Final = "ai_cost.cost.image"

# Fixed cost in USD charged per request, for models priced per call.
AI_COST_COST_REQUEST: Final = "ai_cost.cost.request"

# Cost in USD of the web searches the provider ran server-side for the operation.
AI_COST_COST_WEB_SEARCH: Final = "ai_cost.cost.web_search"


# --- semconv/estimate.yaml

# Number of input tokens estimated before the request was sent.
AI_COST_ESTIMATE_INPUT_TOKENS: Final = "ai_cost.estimate.input_tokens"

# Number of output tokens assumed before the request was sent.
AI_COST_ESTIMATE_OUTPUT_TOKENS: Final = "ai_cost.estimate.output_tokens"

# Cost in USD estimated before the request was sent, from the estimated token counts.
AI_COST_ESTIMATE_AMOUNT: Final = "ai_cost.estimate.amount"

# How `ai_cost.estimate.input_tokens` was counted.
AI_COST_ESTIMATE_METHOD: Final = "ai_cost.estimate.method"


class AiCostEstimateMethodValues:
    """Values of ``ai_cost.estimate.method``."""

    # Counted with the model's tiktoken encoding and the chat message overhead.
    TIKTOKEN: Final = "tiktoken"
    # Approximated from the text: for models without a public tokenizer, and for OpenAI models
    # while their tokenizer is still loading (the first calls of a process, when no budget or hook
    # needs the estimate) or when it cannot be loaded.
    HEURISTIC: Final = "heuristic"
    # At least the tiktoken count: each text counted as its UTF-8 bytes (a token is never less than
    # one byte), with the same message overhead. Only for a call that a budget or hook decides on
    # while its OpenAI tokenizer is parsed for the first time on the machine, so that the money
    # held is never under-estimated.
    UPPER_BOUND: Final = "upper_bound"


# What `ai_cost.estimate.output_tokens` is based on.
AI_COST_ESTIMATE_OUTPUT_BASIS: Final = "ai_cost.estimate.output_basis"


class AiCostEstimateOutputBasisValues:
    """Values of ``ai_cost.estimate.output_basis``."""

    # The maximum number of output tokens set in the request.
    MAX_TOKENS: Final = "max_tokens"
    # The model's maximum output tokens, from the pricing catalog.
    MODEL_LIMIT: Final = "model_limit"
    # The configured default, used when neither a request nor a model limit is known.
    DEFAULT: Final = "default"


# --- semconv/ledger.yaml

# Why call ledger rows were dropped.
AI_COST_LEDGER_DROP_REASON: Final = "ai_cost.ledger.drop_reason"


class AiCostLedgerDropReasonValues:
    """Values of ``ai_cost.ledger.drop_reason``."""

    # The ledger's queue was full (the writer fell behind the calls).
    QUEUE_FULL: Final = "queue_full"
    # The ledger file could not be written (disk full, read-only, locked past the timeout).
    WRITE_FAILED: Final = "write_failed"
    # A call span could not be turned into a row.
    UNREADABLE_SPAN: Final = "unreadable_span"


# Rows of the call ledger (`LedgerSpanExporter`) dropped instead of written, by reason. Instrument:
# counter.
AI_COST_LEDGER_DROPPED_ROWS: Final = "ai_cost.ledger.dropped_rows"
AI_COST_LEDGER_DROPPED_ROWS_UNIT: Final = "{row}"


# --- semconv/metrics.yaml

# Cost in USD of GenAI client operations. Instrument: counter.
AI_COST_CLIENT_COST: Final = "ai_cost.client.cost"
AI_COST_CLIENT_COST_UNIT: Final = "{USD}"

# Cost in USD of GenAI client operations, counted by the collector from their spans. Instrument:
# counter.
AI_COST_SPANS_COST: Final = "ai_cost.spans.cost"
AI_COST_SPANS_COST_UNIT: Final = "{USD}"

# GenAI operations the collector could not price because the catalog does not know their model.
# Instrument: counter.
AI_COST_SPANS_UNKNOWN_MODEL_OPERATIONS: Final = "ai_cost.spans.unknown_model_operations"
AI_COST_SPANS_UNKNOWN_MODEL_OPERATIONS_UNIT: Final = "{operation}"

# Spend in USD settled in a budget window before an operation, from the collector's view of the
# spans. Instrument: gauge.
AI_COST_SPANS_BUDGET_SPENT: Final = "ai_cost.spans.budget.spent"
AI_COST_SPANS_BUDGET_SPENT_UNIT: Final = "{USD}"

# The limit in USD of a budget window, from the collector's view of the spans. Instrument: gauge.
AI_COST_SPANS_BUDGET_LIMIT: Final = "ai_cost.spans.budget.limit"
AI_COST_SPANS_BUDGET_LIMIT_UNIT: Final = "{USD}"


# --- semconv/pricing.yaml

# Whether and how the cost of the operation was determined.
AI_COST_PRICING_STATUS: Final = "ai_cost.pricing.status"


class AiCostPricingStatusValues:
    """Values of ``ai_cost.pricing.status``."""

    # The cost was computed from the usage and the pricing catalog.
    PRICED: Final = "priced"
    # The model is not in the pricing catalog, so no cost was set.
    UNKNOWN_MODEL: Final = "unknown_model"
    # The response carried no token usage, so no cost was set.
    NO_USAGE: Final = "no_usage"
    # The cost reported by the provider was used as is.
    PROVIDER: Final = "provider"
    # Part of the usage has no price in the catalog (e.g. image output of a model priced per
    # pixel); the amount covers only the priced part and is a lower bound.
    PARTIAL: Final = "partial"
    # The model is in the catalog but none of this usage has a price there, so no cost was set
    # (never a silent zero).
    UNPRICED: Final = "unpriced"


# Version of the pricing catalog used to compute the cost.
AI_COST_PRICING_CATALOG_VERSION: Final = "ai_cost.pricing.catalog_version"

# Identifier of the pricing catalog entry used to compute the cost.
AI_COST_PRICING_MODEL: Final = "ai_cost.pricing.model"

# Service tier whose prices were used to compute the cost.
AI_COST_PRICING_SERVICE_TIER: Final = "ai_cost.pricing.service_tier"

# Input token threshold of the context tier whose prices were used.
AI_COST_PRICING_CONTEXT_TIER: Final = "ai_cost.pricing.context_tier"

# The span ID (16 lowercase hex digits) of the span otel-ai-cost prices this call on; the cost of
# the call is on that span, not on this one.
AI_COST_PRICING_PRICED_ON: Final = "ai_cost.pricing.priced_on"


# --- semconv/usage.yaml

# Where the token counts used for the cost came from.
AI_COST_USAGE_SOURCE: Final = "ai_cost.usage.source"


class AiCostUsageSourceValues:
    """Values of ``ai_cost.usage.source``."""

    # The token counts were read from the provider's response.
    PROVIDER: Final = "provider"
    # The provider reported no usage; the token counts were estimated locally.
    ESTIMATED: Final = "estimated"


# Input tokens a provider's token-counting endpoint reported (a free call, not usage).
AI_COST_COUNT_TOKENS_INPUT_TOKENS: Final = "ai_cost.count_tokens.input_tokens"

# Web searches the provider ran server-side for the operation, billed per search.
AI_COST_USAGE_WEB_SEARCH_REQUESTS: Final = "ai_cost.usage.web_search_requests"

# The usage counts the response reported that could not be true and were bounded before pricing and
# budgets: the `gen_ai.usage.*` attribute of each count lowered, or, for counts without one, its
# name (`audio_input_tokens`, `image_output_tokens`, `images`, ...).
AI_COST_USAGE_CLAMPED: Final = "ai_cost.usage.clamped"


# --- semconv/upstream/gen_ai.yaml (OpenTelemetry semantic conventions, not ours)

# The name of the operation being performed.
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"


class GenAiOperationNameValues:
    """Values of ``gen_ai.operation.name``."""

    CHAT: Final = "chat"
    TEXT_COMPLETION: Final = "text_completion"
    GENERATE_CONTENT: Final = "generate_content"
    EMBEDDINGS: Final = "embeddings"
    CREATE_AGENT: Final = "create_agent"
    INVOKE_AGENT: Final = "invoke_agent"
    EXECUTE_TOOL: Final = "execute_tool"


# The Generative AI provider as identified by the client instrumentation.
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"


class GenAiProviderNameValues:
    """Values of ``gen_ai.provider.name``."""

    OPENAI: Final = "openai"
    ANTHROPIC: Final = "anthropic"
    AWS_BEDROCK: Final = "aws.bedrock"
    AZURE_AI_INFERENCE: Final = "azure.ai.inference"
    AZURE_AI_OPENAI: Final = "azure.ai.openai"
    COHERE: Final = "cohere"
    DEEPSEEK: Final = "deepseek"
    GCP_GEMINI: Final = "gcp.gemini"
    GCP_GEN_AI: Final = "gcp.gen_ai"
    GCP_VERTEX_AI: Final = "gcp.vertex_ai"
    GROQ: Final = "groq"
    IBM_WATSONX_AI: Final = "ibm.watsonx.ai"
    MISTRAL_AI: Final = "mistral_ai"
    PERPLEXITY: Final = "perplexity"
    X_AI: Final = "x_ai"


# The name of the model a request is being made to.
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"

# The maximum number of tokens the model generates for a request.
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"

# The temperature setting for the request.
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"

# The top_p sampling setting for the request.
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"

# The top_k sampling setting for the request.
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"

# The sequences the model stops generating at.
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"

# The seed of the request.
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"

# The number of candidate completions to return.
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"

# The frequency penalty setting for the request.
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"

# The presence penalty setting for the request.
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"

# Whether the response was requested as a stream.
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"

# The encoding formats requested in an embeddings operation.
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"

# The number of dimensions the embeddings should have.
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"

# The content type requested by the client (text
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"

# The name of the model that generated the response.
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"

# The unique identifier of the completion.
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"

# The reasons the model stopped generating tokens
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"

# Seconds from the request to the first chunk of a streamed response.
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"

# The number of tokens used in the input (prompt).
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"

# The number of tokens used in the output (completion).
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"

# The number of input tokens served from a provider-managed cache.
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"

# The number of input tokens written to a provider-managed cache.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"

# The number of output tokens used for reasoning.
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

# The type of token being counted (metric attribute).
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"


class GenAiTokenTypeValues:
    """Values of ``gen_ai.token.type``."""

    INPUT: Final = "input"
    OUTPUT: Final = "output"


# The chat history provided to the model as input (opt-in content).
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"

# The messages returned by the model (opt-in content).
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"

# The system message or instructions provided to the model (opt-in content).
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"

# Human-readable name of the GenAI agent.
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"

# The unique identifier of a conversation (session or thread).
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"

# The name of the prompt template used.
GEN_AI_PROMPT_NAME: Final = "gen_ai.prompt.name"

# The OpenAI API used (chat_completions or responses).
OPENAI_API_TYPE: Final = "openai.api.type"


class OpenaiApiTypeValues:
    """Values of ``openai.api.type``."""

    CHAT_COMPLETIONS: Final = "chat_completions"
    RESPONSES: Final = "responses"


# The service tier requested.
OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"

# The service tier used for the response.
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"

# A fingerprint of the backend configuration that served the request.
OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"

# GenAI server address.
SERVER_ADDRESS: Final = "server.address"

# GenAI server port.
SERVER_PORT: Final = "server.port"

# The class of error the operation ended with.
ERROR_TYPE: Final = "error.type"

# The provider name before v1.37.0. Deprecated: read from other instrumentations, never written;
# use gen_ai.provider.name.
GEN_AI_SYSTEM: Final = "gen_ai.system"

# The input tokens before v1.27.0. Deprecated: read from other instrumentations, never written; use
# gen_ai.usage.input_tokens.
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"

# The output tokens before v1.27.0. Deprecated: read from other instrumentations, never written;
# use gen_ai.usage.output_tokens.
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"

# The cache-write input tokens in v1.41.0. Deprecated: read from other instrumentations, never
# written; use gen_ai.usage.cache_write.input_tokens.
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"

# The service tier of an OpenAI response before v1.37.0. Deprecated: read from other
# instrumentations, never written; use openai.response.service_tier.
GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: Final = "gen_ai.openai.response.service_tier"

# Number of input and output tokens used. Instrument: histogram.
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GEN_AI_CLIENT_TOKEN_USAGE_UNIT: Final = "{token}"

# GenAI operation duration. Instrument: histogram.
GEN_AI_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GEN_AI_CLIENT_OPERATION_DURATION_UNIT: Final = "s"

# Time to receive the first chunk of a streamed response. Instrument: histogram.
GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK_UNIT: Final = "s"
