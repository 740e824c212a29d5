"""OpenTelemetry instrumentor for the ``google-genai`` SDK (Gemini API and Vertex AI).

Instruments ``client.models.generate_content``, ``generate_content_stream`` and ``embed_content``,
sync (``client.models``) and async (``client.aio.models``). Every request sent to the API becomes a
GenAI span with its token usage and its cost in USD; ``gen_ai.provider.name`` is ``gcp.vertex_ai``
for a client made with ``vertexai=True`` and ``gcp.gemini`` otherwise.

One span per HTTP request: the wrappers sit on the SDK's per-request methods (``_generate_content``,
``_generate_content_stream``, ``_embed_content``), below the SDK's automatic function calling and
automatic continuation loops, so each request of such a loop gets its own span, its own usage (the
API reports usage per request) and its own budget check. Chats (``client.chats``) go through the
same methods.

Usage (the traps of ``usageMetadata``):

- ``thoughtsTokenCount`` is NOT part of ``candidatesTokenCount``: output = candidates + thoughts,
  and the thoughts are the reasoning tokens (billed at the output price).
- ``toolUsePromptTokenCount`` (the prompt of a built-in tool such as code execution or search) is
  NOT part of ``promptTokenCount``: input = prompt + tool-use prompt, billed as input.
- ``cachedContentTokenCount`` IS part of ``promptTokenCount``: it is the cache-read subset.
- Input modalities (``promptTokensDetails`` / ``cacheTokensDetails``, per modality): uncached AUDIO
  at the audio input price, cached AUDIO at the cached-audio price (else the cache-read price);
  IMAGE and VIDEO at the image / video input price where the catalog has one (multimodal embedding
  models), else, as Google prices them for generate_content, at the text price, like TEXT.
  Audio / image output tokens (``candidatesTokensDetails``) at theirs where the catalog has one.
- The input total (prompt + tool-use prompt, cache included) selects the "> 200k tokens" context
  tier of the catalog, as Google bills long prompts.
- A stream reports the running usage on every chunk: the last one reported is the call's.

Estimates for budgets: Gemini has no public offline tokenizer, so the input is estimated with the
heuristic of ``otel_ai_cost.tokens`` on the text the model reads: the contents' text, function call
arguments and results (keys and values), the system instruction, and the function declarations
(name, description, parameter names, descriptions and enum values; types cost nothing), plus fixed
overheads per request, turn and declaration calibrated on the recorded requests (see
``benchmarks/estimation_error_google_genai.py``). Images count 258 tokens per 768x768 tile (258 when
both sides are at most 384 px or the size is unknown), other media 258 tokens per part. The prompt
of a server-side tool (``toolUsePromptTokenCount``) cannot be known before the call and is not
estimated. The SDK's own tokenizer (``google.genai.local_tokenizer``) downloads its model at run
time, so it is not used.

Message content (system instruction, input and output messages of generate_content) is recorded
only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (see ``_core._content``).

Modules: ``_attributes`` (SDK readers, request attributes, usage and outcomes), ``_estimate`` (the
input estimate), ``_streams`` (the stream state and the public stream proxies), ``_calls`` (one
request and the method wrappers), ``_content`` (message content in the GenAI JSON structure).
"""
from __future__ import annotations

from typing import List, Tuple

from .. import _core as c
from ._attributes import (
    EMBEDDINGS,
    GEMINI,
    GENERATE_CONTENT,
    VERTEX_AI,
    bare_model,
    embed_outcome,
    generate_outcome,
    provider_of,
    request_attributes,
    usage_from_metadata,
)
from ._calls import async_wrapper, sync_wrapper
from ._estimate import estimate_embed_input, estimate_generate_input
from ._streams import (
    AsyncPublicStreamProxy,
    GenerateStreamState,
    PublicStreamProxy,
    async_public_stream_wrapper,
    public_stream_wrapper,
)

__all__ = [
    "EMBEDDINGS", "GEMINI", "GENERATE_CONTENT", "VERTEX_AI",
    "AsyncPublicStreamProxy", "GenerateStreamState", "GoogleGenAIInstrumentor", "PublicStreamProxy",
    "bare_model", "embed_outcome", "estimate_embed_input", "estimate_generate_input", "generate_outcome",
    "provider_of", "request_attributes", "usage_from_metadata",
]

# 1.20.0 is the oldest version checked: older ones drop thoughtsTokenCount / toolUsePromptTokenCount
# from the response (1.0.0 does), so their thinking and tool-use tokens could not be billed.
_INSTRUMENTS = ("google-genai >= 1.20.0, < 4",)

_MODULE = "google.genai.models"
# kind -> candidate (class.method) paths, first found is wrapped (the public method on SDKs that
# have no per-request private one).
_METHODS: List[Tuple[str, bool, Tuple[str, ...]]] = [
    ("generate", False, ("Models._generate_content", "Models.generate_content")),
    ("stream", False, ("Models._generate_content_stream", "Models.generate_content_stream")),
    ("embed", False, ("Models._embed_content", "Models.embed_content")),
    ("generate", True, ("AsyncModels._generate_content", "AsyncModels.generate_content")),
    ("stream", True, ("AsyncModels._generate_content_stream", "AsyncModels.generate_content_stream")),
    ("embed", True, ("AsyncModels._embed_content", "AsyncModels.embed_content")),
]


class GoogleGenAIInstrumentor(c.ProviderInstrumentor):
    """Instruments the ``google-genai`` SDK (``google.genai.Client``): generate_content (sync, async,
    streamed) and embed_content, on the Gemini API and on Vertex AI.

    ``instrument()`` keyword arguments: ``tracer_provider``, ``meter_provider`` and ``catalog`` (a
    pricing catalog; default: the packaged one).
    """

    instruments = _INSTRUMENTS
    scope = "otel_ai_cost.instrumentation.google_genai"

    def wrap_methods(self, config: c.WrapContext) -> None:
        for kind, is_async, paths in _METHODS:
            for path in paths:
                if c.resolve(_MODULE, path) is None:
                    continue
                factory = async_wrapper if is_async else sync_wrapper
                c.wrap(_MODULE, path, factory(config, kind), self._wrapped)
                if kind == "stream" and path.endswith("._generate_content_stream"):
                    public = path.replace("._generate_content_stream", ".generate_content_stream")
                    if c.resolve(_MODULE, public) is not None:
                        c.wrap(_MODULE, public, async_public_stream_wrapper if is_async else public_stream_wrapper,
                               self._wrapped)
                break
