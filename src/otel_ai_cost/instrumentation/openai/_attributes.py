"""Request attributes, the provider from the client, ``stream_options``, usage and outcomes of
the ``openai`` SDK's calls."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from ... import _semconv as sc
from ...cost import Usage
from .. import _chat
from .._chat import (
    chat_request_attributes,
    max_tokens,
    output_type_from_format,
    request_attributes,
    sampling_attributes,
)
from .._core import Outcome, as_int, as_num, as_str, get, get_extra, given, host_port

_PROVIDER_BY_HOST = {
    "api.openai.com": "openai",
    "openrouter.ai": "openrouter",
    "api.groq.com": "groq",
    "api.together.xyz": "together_ai",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
}



# ---------------------------------------------------------------------------------------------
# Small pure helpers


def provider_from_client(client: Any, server: Optional[Tuple[Optional[str], Optional[int]]] = None) -> str:
    """``gen_ai.provider.name`` for an OpenAI client, from its class and base URL (``server``: its
    ``host_port``, when the caller already read it)."""
    if type(client).__name__ in ("AzureOpenAI", "AsyncAzureOpenAI"):
        return "azure.ai.openai"
    host = (server if server is not None else host_port(client))[0] or ""
    return provider_from_host(host)


def provider_from_host(host: str) -> str:
    host = host.lower()
    if host in _PROVIDER_BY_HOST:
        return _PROVIDER_BY_HOST[host]
    if host.endswith(".openai.azure.com") or host.endswith(".cognitiveservices.azure.com"):
        return "azure.ai.openai"
    return "openai"


# Azure OpenAI accepts ``stream_options`` from this API version on; older versions answer 400.
_AZURE_STREAM_OPTIONS_SINCE = "2024-09-01"
# Providers known to reject unknown request fields, so no ``stream_options`` is added for them.
_NO_STREAM_OPTIONS = {"mistral_ai"}


def may_add_stream_options(provider: str, client: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether ``stream_options.include_usage`` can be added without changing what the API accepts."""
    if provider in _NO_STREAM_OPTIONS:
        return False
    extra_body = kwargs.get("extra_body")
    if isinstance(extra_body, Mapping) and "stream_options" in extra_body:
        return False  # the caller set it their own way
    if provider == "azure.ai.openai":
        version = as_str(get(client, "_api_version"))
        if version is None:
            query = get(client, "default_query") or get(client, "_custom_query")
            version = as_str(get(query, "api-version"))
        return version is not None and version[:10] >= _AZURE_STREAM_OPTIONS_SINCE
    return True


def add_include_usage(call_kwargs: Dict[str, Any]) -> bool:
    """Ask for the final usage chunk unless the caller decided; True when we added it."""
    options = call_kwargs.get("stream_options")
    options = options if given(options) and isinstance(options, Mapping) else {}
    if "include_usage" in options:
        return False
    call_kwargs["stream_options"] = {**options, "include_usage": True}
    return True


def usage_requested(call_kwargs: Mapping[str, Any]) -> bool:
    """Whether the request (as sent) asks for the final usage chunk of a stream."""
    for holder in (call_kwargs, call_kwargs.get("extra_body")):
        if isinstance(holder, Mapping):
            options = holder.get("stream_options")
            if given(options) and isinstance(options, Mapping) and options.get("include_usage") is True:
                return True
    return False


def completions_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any],
                                   server: Optional[Tuple[Optional[str], Optional[int]]] = None) -> Dict[str, Any]:
    """Legacy ``completions.create``: the chat attributes, operation ``text_completion``."""
    attrs = chat_request_attributes(provider, client, kwargs, server)
    attrs[sc.GEN_AI_OPERATION_NAME] = "text_completion"
    attrs.pop(sc.OPENAI_API_TYPE, None)
    return attrs


def responses_request_attributes(provider: str, client: Any, kwargs: Mapping[str, Any],
                                 server: Optional[Tuple[Optional[str], Optional[int]]] = None) -> Dict[str, Any]:
    attrs = request_attributes("chat", "responses", provider, kwargs.get("model"), client, kwargs, server)
    max_out = max_tokens(kwargs, "max_output_tokens")
    if max_out is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_out
    sampling_attributes(kwargs, attrs)
    text = kwargs.get("text")
    if given(text):
        output_type = output_type_from_format(get(text, "format"))
        if output_type:
            attrs[sc.GEN_AI_OUTPUT_TYPE] = output_type
    if kwargs.get("stream") is True:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


# ---------------------------------------------------------------------------------------------
# Usage and response attributes


def responses_usage(usage: Any) -> Optional[Usage]:
    """Usage from a Responses API ``usage`` object; cache reads (``input_tokens_details.cached_tokens``)
    and writes (``input_tokens_details.cache_write_tokens``, of which ``cache_write_tokens_details.
    ttl_12h_tokens`` were written with 12-hour retention) are parts of ``input_tokens``."""
    inp = as_int(get(usage, "input_tokens"))
    out = as_int(get(usage, "output_tokens"))
    if inp is None and out is None:
        return None
    input_details = get(usage, "input_tokens_details")
    return Usage(
        input_tokens=inp or 0,
        output_tokens=out or 0,
        cache_read_input_tokens=as_int(get(input_details, "cached_tokens")) or 0,
        cache_write_input_tokens=as_int(get_extra(input_details, "cache_write_tokens")) or 0,
        cache_write_12h_input_tokens=as_int(get(get_extra(input_details, "cache_write_tokens_details"),
                                                "ttl_12h_tokens")) or 0,
        reasoning_output_tokens=as_int(get(get(usage, "output_tokens_details"), "reasoning_tokens")) or 0,
    )


def provider_cost(usage: Any) -> Optional[float]:
    """The cost a gateway reported in the usage (OpenRouter's ``usage.cost``, USD)."""
    return as_num(get_extra(usage, "cost"))


def chat_outcome(completion: Any) -> Outcome:
    """The chat format's outcome, plus OpenAI's service tier, system fingerprint and a gateway's cost."""
    outcome = _chat.chat_outcome(completion)
    attrs = outcome.attributes if outcome.attributes is not None else {}
    attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = outcome.service_tier
    attrs[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = as_str(get(completion, "system_fingerprint"))
    outcome.attributes = attrs
    outcome.provider_cost = provider_cost(get(completion, "usage"))
    return outcome


def responses_outcome(response: Any) -> Outcome:
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: as_str(get(response, "id"))}
    status = as_str(get(response, "status"))
    if status == "incomplete":
        reason = as_str(get(get(response, "incomplete_details"), "reason"))
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason or status]
    elif status:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [status]
    tier = as_str(get(response, "service_tier"))
    attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = tier
    usage_obj = get(response, "usage")
    return Outcome(
        usage=responses_usage(usage_obj),
        response_model=as_str(get(response, "model")),
        service_tier=tier,
        provider_cost=provider_cost(usage_obj),
        attributes=attrs,
    )


def embeddings_outcome(response: Any) -> Outcome:
    outcome = _chat.embeddings_outcome(response)
    outcome.provider_cost = provider_cost(get(response, "usage"))
    return outcome


OUTCOMES = {
    "chat": chat_outcome,
    "completions": chat_outcome,
    "responses": responses_outcome,
    "embeddings": embeddings_outcome,
}


