"""Streams that end with an error the provider sent: one rule for every provider.

A stream ends *failed* when the provider says so inside it: an error event the SDK raises while the
user reads (OpenAI-compatible ``event: error`` / a chunk's ``error`` object, Anthropic's ``error``
event, a Gemini / Vertex error chunk, a Bedrock exception event, a Mistral error event), or a final
event that reports the failure without raising (OpenAI Responses ``response.failed`` / ``error``,
Cohere ``message-end`` with ``finish_reason`` ERROR or TIMEOUT). Then the span is an error with
``error.type`` = the provider's error type, and it carries usage and cost only if the provider
reported usage in the stream before or with the error (exactly that, source ``provider``): a count
of what was received is an estimate, kept off the ``gen_ai.usage.*`` names (the estimate made at the
start stays under ``ai_cost.estimate.*``). The budget settles what the provider reported (nothing
reported: the hold is released, zero spent).

A stream broken by anything else (a dropped connection, a timeout, a cancellation) is not a provider
error: it keeps the usage read or counted so far, as an abandoned stream does.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional

from ... import _semconv as sc
from ._operation import Outcome


def _kind(error: Any) -> str:
    """The type of a provider error object (``{"type": ...}``, ``{"error": {"type": ...}}``, ...)."""
    inner = error.get("error")
    if isinstance(inner, Mapping):
        error = inner
    for key in ("type", "status", "code"):
        value = error.get(key)
        if isinstance(value, str) and value and value != "error":
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return "error"


def provider_error_type(error: BaseException) -> Optional[str]:
    """The provider's error type when ``error`` is what the SDK raised, while the user read an open
    stream, for an error the provider sent inside it; None for anything else."""
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        # openai, groq (APIError: the body is the event's error object), anthropic (the whole
        # ``{"type": "error", "error": {...}}`` event).
        return _kind(body)
    if isinstance(body, str):
        # mistralai: an error event is not a CompletionEvent; the SDK raises ResponseValidationError
        # with the event it could not read (``{"event": ..., "data": {...}}``).
        try:
            event = json.loads(body)
        except ValueError:
            return None
        data = event.get("data") if isinstance(event, Mapping) else None
        if isinstance(data, Mapping) and (data.get("object") == "error" or isinstance(data.get("error"), Mapping)
                                          or event.get("event") == "error"):
            return _kind(data)
        return None
    details = getattr(error, "details", None)
    if isinstance(details, Mapping) and isinstance(details.get("error"), Mapping):
        # google-genai APIError for a stream chunk ``{"error": {"code", "message", "status"}}`` (its
        # response is the stream's, status 200); not one for the HTTP status of a stream that the SDK
        # sends only when first read.
        http_status = getattr(getattr(error, "response", None), "status_code", None)
        if isinstance(http_status, int) and http_status >= 400:
            return None
        status = getattr(error, "status", None)
        return status if isinstance(status, str) and status else _kind(details)
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        # botocore EventStreamError: the exception event's ``:exception-type`` (throttlingException, ...).
        code = response.get("Error", {}).get("Code") if isinstance(response.get("Error"), Mapping) else None
        if isinstance(code, str) and code:
            return code
    return None


def error_event_type(chunk: Any) -> Optional[str]:
    """The error type of a stream chunk that is an error object (``{"error": {...}}``, Anthropic's
    ``{"type": "error", "error": {...}}``), read from a body the user read raw; None for any other."""
    if isinstance(chunk, Mapping) and isinstance(chunk.get("error"), Mapping):
        return _kind(chunk)
    return None


def failed_outcome(outcome: Outcome, kind: str) -> Outcome:
    """``outcome`` of a stream that ended with the provider's error ``kind``: an error, and no usage
    but what the provider reported."""
    outcome.error_type = kind
    if outcome.usage is not None and outcome.usage_source != sc.AiCostUsageSourceValues.PROVIDER:
        outcome.usage = None
    return outcome
