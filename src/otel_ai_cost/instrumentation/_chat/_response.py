"""Usage and outcomes of OpenAI-shaped chat completions and embeddings responses (``openai``,
``groq``, ``mistralai``): what every one of them reports; a provider adds its own fields."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ... import _semconv as sc
from ...cost import Usage
from .._core import Outcome, as_int, as_str, get, get_extra


def _details(usage: Any, *names: str) -> Any:
    """The first of the ``names`` fields present (Mistral spells some ``prompt_token_details``)."""
    for name in names:
        value = get_extra(usage, name)
        if value is not None:
            return value
    return None


def chat_usage(usage: Any, audio: bool = True) -> Optional[Usage]:
    """Usage from a chat completion (or completions / embeddings) ``usage`` object; cached prompt,
    cache-write (``prompt_tokens_details.cache_write_tokens``) and reasoning tokens are parts of
    ``prompt_tokens`` / ``completion_tokens``. ``audio``: read the audio token details (OpenAI's
    audio models): ``audio_tokens`` counts all audio of the prompt, cached or not; the cached audio
    is read from ``cached_tokens_details.audio_tokens`` where the API reports it (the realtime
    shape), else the cost engine takes the cache to hold text first (see ``otel_ai_cost.cost``)."""
    prompt = as_int(get(usage, "prompt_tokens"))
    completion = as_int(get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        return None
    prompt_details = _details(usage, "prompt_tokens_details", "prompt_token_details")
    completion_details = _details(usage, "completion_tokens_details", "completion_token_details")
    cached_audio = as_int(get(get_extra(prompt_details, "cached_tokens_details"), "audio_tokens")) if audio else None
    return Usage(
        input_tokens=prompt or 0,
        output_tokens=completion or 0,
        cache_read_input_tokens=as_int(get(prompt_details, "cached_tokens")) or 0,
        cache_write_input_tokens=as_int(get_extra(prompt_details, "cache_write_tokens")) or 0,
        reasoning_output_tokens=as_int(get(completion_details, "reasoning_tokens")) or 0,
        audio_input_tokens=(as_int(get(prompt_details, "audio_tokens")) or 0) if audio else 0,
        cache_read_audio_input_tokens=cached_audio or 0,
        audio_output_tokens=(as_int(get(completion_details, "audio_tokens")) or 0) if audio else 0,
    )


def finish_reasons(choices: Any) -> Optional[List[str]]:
    """The finish reason of every choice (``error`` where a choice has none); None for no choices."""
    if not isinstance(choices, (list, tuple)) or not choices:
        return None
    return [r if isinstance(r, str) else "error" for r in (get(ch, "finish_reason") for ch in choices)]


UsageReader = Callable[[Any], Optional[Usage]]


def chat_outcome(completion: Any, read_usage: UsageReader = chat_usage) -> Outcome:
    """Id, finish reasons, model, service tier and usage of a chat completion."""
    attrs: Dict[str, Any] = {sc.GEN_AI_RESPONSE_ID: as_str(get(completion, "id"))}
    reasons = finish_reasons(get(completion, "choices"))
    if reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    return Outcome(
        usage=read_usage(get(completion, "usage")),
        response_model=as_str(get(completion, "model")),
        service_tier=as_str(get(completion, "service_tier")),
        attributes=attrs,
    )


def embeddings_outcome(response: Any) -> Outcome:
    """Model and usage (the prompt tokens, no output) of an embeddings response."""
    prompt = as_int(get(get(response, "usage"), "prompt_tokens"))
    return Outcome(
        usage=Usage(input_tokens=prompt, output_tokens=0) if prompt is not None else None,
        response_model=as_str(get(response, "model")),
    )
