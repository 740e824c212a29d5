"""OpenTelemetry instrumentor for the ``anthropic`` SDK: the Messages API (``messages.create``,
``messages.parse``, the ``messages.stream()`` helpers, ``with_raw_response`` /
``with_streaming_response``, the beta Messages API) and token counting (``count_tokens``).

Every call becomes a GenAI span carrying the token usage and its cost in USD. The same SDK's
Bedrock (``AnthropicBedrock``, provider ``aws.bedrock``) and Vertex AI (``AnthropicVertex``,
provider ``gcp.vertex_ai``) clients use the same resource classes and are covered too.

Usage normalisation (the trap): Anthropic's ``usage.input_tokens`` EXCLUDES the cache reads
(``cache_read_input_tokens``) and the cache writes (``cache_creation_input_tokens``), while
``Usage.input_tokens`` (and ``gen_ai.usage.input_tokens``) is every input token. So
``Usage.input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens``.
Cache writes are split into the 5-minute and the 1-hour price from ``usage.cache_creation``
(``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``) when the API reports it. Extended
thinking is billed as output and is part of ``output_tokens``; when the API reports
``output_tokens_details.thinking_tokens`` it becomes ``reasoning_output_tokens`` (a subset of the
output, priced at the output price unless the catalog prices reasoning). Server-side web searches
(``usage.server_tool_use.web_search_requests``) are priced per search.

Streams: usage comes from ``message_start`` (input side, an early output count) and
``message_delta`` (the final totals); a field the later event reports replaces the earlier value.
A stream that ends without usage (closed before ``message_start`` was read) was still sent: it is
charged the input estimate (``ai_cost.usage.source=estimated``). A raw response
(``with_raw_response`` / ``with_streaming_response``) closed or dropped without ``parse()`` takes
its usage from the body the HTTP response already holds (read by ``.json()``, ``.text()``,
``.read()``; nothing more is read), else the input estimate.

``count_tokens`` is free: its span (``count_tokens {model}``) carries no ``gen_ai.operation.name``,
no usage and no cost, so neither budgets nor cost enrichment count it; the counted tokens are
recorded as ``ai_cost.count_tokens.input_tokens`` once the semconv registry declares that name.

Message content (system, input and output messages) is recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (see ``_content``).
"""
from __future__ import annotations

from typing import Any, Collection, List, Tuple

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _core as c
from .._core import safe
from ._attributes import (
    PROVIDER,
    PROVIDER_BEDROCK,
    PROVIDER_VERTEX,
    message_outcome,
    message_usage,
    provider_from_client,
    request_attributes,
    usage_from_fields,
)
from ._calls import AI_COST_COUNT_TOKENS_INPUT_TOKENS, WRAPPERS
from ._estimate import estimate_messages_input
from ._raw import is_ours, patch_raw_responses, unpatch_raw_responses
from ._streams import MessageStreamState

__all__ = [
    "AI_COST_COUNT_TOKENS_INPUT_TOKENS", "PROVIDER", "PROVIDER_BEDROCK", "PROVIDER_VERTEX",
    "AnthropicInstrumentor", "MessageStreamState", "estimate_messages_input", "message_outcome",
    "message_usage", "provider_from_client", "request_attributes", "usage_from_fields",
]

_INSTRUMENTS = ("anthropic >= 0.40.0, < 3",)

_MESSAGES = "anthropic.resources.messages"
_BETA = "anthropic.resources.beta.messages"
# Bedrock / Vertex beta resources copy the first-party functions at class creation
# (``create = FirstPartyMessagesAPI.create``): they are wrapped on their own classes.
_BEDROCK_BETA = "anthropic.lib.bedrock._beta_messages"
_VERTEX_BETA = "anthropic.lib.vertex._beta_messages"

# (module, attribute path, kind, is_async). Missing ones (older SDKs) are skipped.
_TARGETS: List[Tuple[str, str, str, bool]] = []
for _module in (_MESSAGES, _BETA, _BEDROCK_BETA, _VERTEX_BETA):
    _TARGETS += [
        (_module, "Messages.create", "create", False),
        (_module, "AsyncMessages.create", "create", True),
        (_module, "Messages.parse", "create", False),
        (_module, "AsyncMessages.parse", "create", True),
        (_module, "Messages.stream", "stream", False),
        (_module, "AsyncMessages.stream", "stream", True),
        (_module, "Messages.count_tokens", "count_tokens", False),
        (_module, "AsyncMessages.count_tokens", "count_tokens", True),
    ]


class AnthropicInstrumentor(BaseInstrumentor):
    """Instruments the ``anthropic`` SDK (sync and async; ``messages.create`` / ``parse``, streams,
    the ``messages.stream()`` helpers, ``with_raw_response``, beta messages, ``count_tokens``;
    the Anthropic, Bedrock and Vertex AI clients).

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider`` and ``catalog`` (a
    pricing catalog; default: the packaged one).
    """

    # BaseInstrumentor is a singleton whose __init__ runs again on every AnthropicInstrumentor():
    # the list of wrapped methods must not be reset there, or uninstrument() would forget them.
    _wrapped: List[Any] = []
    _patched: List[Tuple[Any, str, Any]] = []  # (owner, name, original) of the raw-response factories and properties

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if c.switched_off(self):  # OTEL_AI_COST_ENABLED=false, or a bad OTEL_AI_COST_* value
            return
        telemetry = c.telemetry_from("otel_ai_cost.instrumentation.anthropic", kwargs)
        config = c.WrapContext(telemetry, kwargs.get("catalog"))
        # Resolve (import) every target first: the Bedrock / Vertex beta classes copy the
        # first-party functions when their module is imported, and must copy the unwrapped ones.
        targets = [(m, p, k, a) for m, p, k, a in _TARGETS if c.resolve(m, p) is not None]
        self._wrapped = []
        self._patched = []
        classes: List[Any] = []
        for module, path, kind, is_async in targets:
            owner_path, _, method = path.rpartition(".")
            owner = c.resolve(module, owner_path)
            if is_ours(vars(owner).get(method)):
                continue  # already wrapped (by another copy of this instrumentor)
            factory = WRAPPERS[kind](config, is_async)
            factory._otel_ai_cost = True  # type: ignore[attr-defined]  # the mark is_ours looks for
            c.wrap(module, path, factory, self._wrapped)
            if all(owner is not known for known in classes):
                classes.append(owner)
        safe("anthropic raw responses", patch_raw_responses, classes, self._patched)

    def _uninstrument(self, **kwargs: Any) -> None:
        unpatch_raw_responses(self._patched)
        self._patched = []
        c.unwrap_all(self._wrapped)
        self._wrapped = []
