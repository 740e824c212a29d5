"""How far the Anthropic input-token estimate is from what the real API reported.

Reads the recorded Anthropic Messages API requests in ``tests/fixtures/recorded`` (the cassettes
listed in ``PROVENANCE-anthropic.json``), estimates the input tokens of each request with
``otel_ai_cost.instrumentation.anthropic.estimate_messages_input`` (Claude has no public tokenizer:
a heuristic), and compares it with the usage the recorded response reports: all input tokens,
i.e. ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` (from the Message,
or for a stream from ``message_start`` / ``message_delta``, the later totals replacing the earlier).
Prints one row per request and the mean absolute and the maximum error. Writes nothing.

    python benchmarks/estimation_error_anthropic.py
"""
from __future__ import annotations

import gzip
import json
import statistics
from pathlib import Path
from typing import Any, Dict, Iterator

import yaml

from otel_ai_cost.instrumentation.anthropic import estimate_messages_input

RECORDED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "recorded"


def _body(raw: Any, headers: Dict[str, Any]) -> bytes:
    if isinstance(raw, dict):
        raw = raw.get("string", b"")
    data = raw if isinstance(raw, bytes) else str(raw or "").encode()
    encoding = [str(v).lower() for k, vs in (headers or {}).items() if k.lower() == "content-encoding"
                for v in (vs if isinstance(vs, list) else [vs])]
    return gzip.decompress(data) if "gzip" in encoding else data


def reported_input(content: bytes) -> int:
    """All input tokens the response reports (Anthropic's input_tokens excludes the cache)."""
    text = content.decode("utf-8")
    usage: Dict[str, int] = {}
    if text.lstrip().startswith("{"):
        usage = json.loads(text)["usage"]
    else:
        for line in text.splitlines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event.get("type") == "message_start":
                usage.update({k: v for k, v in event["message"]["usage"].items() if isinstance(v, int)})
            elif event.get("type") == "message_delta":
                usage.update({k: v for k, v in (event.get("usage") or {}).items() if isinstance(v, int)})
    return sum(usage.get(k) or 0 for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))


def recorded_requests(root: Path = RECORDED) -> Iterator[Dict[str, Any]]:
    files = sorted(json.loads((root / "PROVENANCE-anthropic.json").read_text(encoding="utf-8")))
    for file in files:
        cassette = yaml.safe_load((root / file).read_text(encoding="utf-8"))
        for index, interaction in enumerate(cassette["interactions"]):
            request, response = interaction["request"], interaction["response"]
            body = json.loads(_body(request.get("body"), {}))
            if "model" not in body:  # Bedrock: the model is in the URL
                body["model"] = request["uri"].split("/model/", 1)[1].split("/", 1)[0]
            yield {
                "file": file, "index": index, "body": body,
                "reported": reported_input(_body(response.get("body"), response.get("headers") or {})),
            }


def estimate(body: Dict[str, Any]) -> int:
    return estimate_messages_input(body.get("model"), body.get("messages") or [], body.get("system"),
                                   body.get("tools"), body.get("tool_choice"), body.get("thinking")).tokens


def main() -> None:
    errors = []
    print(f"{'recording':<62} {'model':<30} {'reported':>8} {'estimate':>8} {'error':>7}")
    for row in recorded_requests():
        est = estimate(row["body"])
        error = (est - row["reported"]) / row["reported"] * 100
        errors.append(abs(error))
        name = row["file"].rsplit("/", 1)[-1][:55] + f"[{row['index']}]"
        print(f"{name:<62} {row['body']['model'][:30]:<30} {row['reported']:>8} {est:>8} {error:>+6.1f}%")
    print(f"\n{len(errors)} requests, method heuristic: mean absolute error {statistics.mean(errors):.1f}%, "
          f"median {statistics.median(errors):.1f}%, max {max(errors):.1f}%")


if __name__ == "__main__":
    main()
