"""How far the Gemini input-token estimate is from what the real APIs reported.

Reads the recorded Gemini API / Vertex AI generateContent requests in ``tests/fixtures/recorded``
(the cassettes listed in ``PROVENANCE-google-genai.json``), turns each recorded REST body into the
SDK's arguments (contents + GenerateContentConfig), estimates the prompt with
``otel_ai_cost.instrumentation.google_genai.estimate_generate_input`` (heuristic: Gemini has no
offline tokenizer) and compares it with the ``promptTokenCount`` the API reported for that request
(read from the recorded response; for a stream, its last chunk). ``toolUsePromptTokenCount`` (the
prompt of a server-side tool, decided by the server) cannot be known before the call and is not
part of the comparison. Prints one row per request and a summary. Writes nothing.

    python benchmarks/estimation_error_google_genai.py
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import yaml

from otel_ai_cost.instrumentation.google_genai import estimate_generate_input

RECORDED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "recorded"
PROVENANCE = RECORDED / "PROVENANCE-google-genai.json"

# REST request fields that the SDK takes in GenerateContentConfig (generationConfig is merged in).
CONFIG_FIELDS = ("tools", "toolConfig", "systemInstruction", "safetySettings", "cachedContent")


def sdk_arguments(body: Dict[str, Any]) -> Tuple[Any, Dict[str, Any]]:
    """(contents, config dict) for the SDK from a recorded REST generateContent body."""
    config = dict(body.get("generationConfig") or {})
    for name in CONFIG_FIELDS:
        if name in body:
            config[name] = body[name]
    return body.get("contents"), config


def _body_text(body: Any) -> str:
    if isinstance(body, dict):
        body = body.get("string", "")
    if isinstance(body, bytes):
        import gzip

        try:
            body = gzip.decompress(body)
        except OSError:
            pass
        body = body.decode("utf-8")
    return body or ""


def reported_usage(response_body: str) -> Optional[Dict[str, Any]]:
    """The last ``usageMetadata`` of a recorded response (JSON body or SSE stream)."""
    text = response_body.strip()
    if not text:
        return None
    events = []
    if text.startswith("data:"):
        for line in text.splitlines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    else:
        parsed = json.loads(text)
        events = parsed if isinstance(parsed, list) else [parsed]
    usage = None
    for event in events:
        usage = event.get("usageMetadata") or usage
    return usage


def recorded_requests() -> Iterator[Dict[str, Any]]:
    for relative in sorted(json.loads(PROVENANCE.read_text(encoding="utf-8"))):
        data = yaml.safe_load((RECORDED / relative).read_text(encoding="utf-8"))
        for index, interaction in enumerate(data["interactions"]):
            if int(interaction["response"]["status"]["code"]) != 200:
                continue
            usage = reported_usage(_body_text(interaction["response"]["body"]))
            if not usage or "promptTokenCount" not in usage:
                continue
            body = json.loads(_body_text(interaction["request"]["body"]))
            yield {"file": relative, "index": index, "body": body, "usage": usage}


def main() -> None:
    from google.genai import types

    errors = []
    print(f"{'recording':70} {'#':>2} {'reported':>8} {'estimate':>8} {'error %':>8}")
    for row in recorded_requests():
        contents, config = sdk_arguments(row["body"])
        count = estimate_generate_input(contents, types.GenerateContentConfig.model_validate(config))
        reported = row["usage"]["promptTokenCount"]
        error = (count.tokens - reported) / reported * 100
        errors.append(error)
        print(f"{row['file'][-70:]:70} {row['index']:>2} {reported:>8} {count.tokens:>8} {error:>+8.1f}")
    absolute = [abs(e) for e in errors]
    print(f"\n{len(errors)} requests, method heuristic: mean absolute error {statistics.mean(absolute):.1f}%, "
          f"max {max(absolute):.1f}%, mean signed {statistics.mean(errors):+.1f}%")


if __name__ == "__main__":
    main()
