"""OpenTelemetry instrumentor for AWS Bedrock through ``botocore`` (``boto3``) and ``aiobotocore``.

The ``bedrock-runtime`` operations ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream`` become GenAI spans (provider ``aws.bedrock``) with the token
usage and its cost in USD. The hook is ``BaseClient._make_api_call`` (and
``AioBaseClient._make_api_call``): every other service and operation goes straight through.

Where the usage comes from (Bedrock reports it differently per API):

- ``Converse``: ``usage`` (``inputTokens`` is the uncached remainder: the total input is
  ``inputTokens + cacheReadInputTokens + cacheWriteInputTokens``; ``cacheDetails`` splits the
  writes by TTL, the ``1h`` ones priced apart).
- ``ConverseStream``: the same ``usage`` in the last ``metadata`` event.
- ``InvokeModel``: the ``X-Amzn-Bedrock-Input-Token-Count`` / ``-Output-Token-Count`` /
  ``-Cache-Read-Input-Token-Count`` / ``-Cache-Write-Input-Token-Count`` response headers,
  Bedrock's own metering, the same for every model family (the input count is again the uncached
  remainder). The body is family-specific (Anthropic ``usage``, Nova ``usage``, Titan
  ``inputTextTokenCount`` / ``results[].tokenCount``, Llama ``prompt_token_count`` /
  ``generation_token_count``; Cohere and Mistral report none): it is the fallback when the headers
  are missing, and gives the response id, model and finish reasons. The sync client's body (a
  ``StreamingBody`` of a response that is not streamed: Bedrock sends it whole once generated)
  is read once and handed back to the user as an identical ``StreamingBody``; the async client's
  body is left untouched (usage from the headers only).
- ``InvokeModelWithResponseStream``: the last chunk's ``amazon-bedrock-invocationMetrics``
  (Bedrock's metering again), else the family's own stream events.

Streams are returned behind a transparent proxy that observes the events as the user reads them
(never ahead) and ends the span exactly once: exhaustion, ``close()``, an error, or garbage
collection of an abandoned stream.

Message content is never recorded: content capture is not supported for bedrock; with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` the instrumentor says so once (in the log).

The package: ``_attributes`` (request attributes, response readers, usage and outcomes),
``_estimate`` (the input estimate), ``_streams`` (stream states and event-stream proxies),
``_calls`` (one call and the ``_make_api_call`` wrappers); here, the instrumentor.
"""
from __future__ import annotations

from .. import _core as c
from .._core import _content
from ._attributes import (
    body_attributes,
    body_usage,
    converse_attributes,
    converse_outcome,
    converse_usage,
    header_usage,
    invoke_attributes,
    invoke_operation,
    invoke_outcome,
    is_embedding_model,
    model_family,
)
from ._calls import (
    CONVERSE,
    CONVERSE_STREAM,
    INVOKE,
    INVOKE_STREAM,
    PROVIDER,
    SERVICE,
    BedrockCall,
    async_wrapper,
    sync_wrapper,
)
from ._estimate import estimate_converse_input, estimate_invoke_input
from ._streams import AsyncEventStreamProxy, ConverseStreamState, EventStreamProxy, InvokeStreamState

__all__ = [
    "CONVERSE", "CONVERSE_STREAM", "INVOKE", "INVOKE_STREAM", "PROVIDER", "SERVICE",
    "AsyncEventStreamProxy", "BedrockCall", "BedrockInstrumentor", "ConverseStreamState", "EventStreamProxy",
    "InvokeStreamState",
    "body_attributes", "body_usage", "converse_attributes", "converse_outcome", "converse_usage",
    "estimate_converse_input", "estimate_invoke_input", "header_usage", "invoke_attributes", "invoke_operation",
    "invoke_outcome", "is_embedding_model", "model_family",
]

# Converse / ConverseStream appeared in botocore 1.34.116 (May 2024).
_INSTRUMENTS = ("botocore >= 1.34.116, < 2",)

_TARGETS = (
    ("botocore.client", "BaseClient._make_api_call", False),
    ("aiobotocore.client", "AioBaseClient._make_api_call", True),
)


class BedrockInstrumentor(c.ProviderInstrumentor):
    """Instruments the ``bedrock-runtime`` client of ``botocore`` / ``boto3`` (and of
    ``aiobotocore`` when installed): Converse, ConverseStream, InvokeModel and
    InvokeModelWithResponseStream.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider`` and ``catalog``
    (a pricing catalog; default: the packaged one).
    """

    instruments = _INSTRUMENTS
    scope = "otel_ai_cost.instrumentation.bedrock"

    def wrap_methods(self, config: c.WrapContext) -> None:
        _content.not_supported("bedrock")  # says so once when content capture is asked for
        for module, path, is_async in _TARGETS:
            if c.resolve(module, path) is None:
                continue
            factory = async_wrapper if is_async else sync_wrapper
            c.wrap(module, path, factory(config), self._wrapped)
