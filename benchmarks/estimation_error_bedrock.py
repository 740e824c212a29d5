"""How far the Bedrock input-token estimate is from what Bedrock reported.

Reads the recorded Bedrock requests in ``tests/fixtures/recorded`` (the files listed in
``PROVENANCE-bedrock.json``), estimates the input tokens of each successful request the way the
instrumentor does before sending it (``otel_ai_cost.instrumentation.bedrock``: the calibrated
heuristic, no public tokenizer exists for these models), and prints one row per request and a
summary (mean absolute error in %, max). Writes nothing.

The reported input is the total input (uncached + cache read + cache write) as the recordings
give it (the shared ``usage.jsonl``). ``test_prompt_cache.yaml`` is left out: its recorded request
body is not the one sent (the 18k-token system prompt was replaced by a placeholder).

    python benchmarks/estimation_error_bedrock.py
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import unquote, urlsplit

import yaml

from otel_ai_cost.instrumentation import bedrock

RECORDED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "recorded"

# (file name, interaction index) -> input tokens Bedrock reported (usage.jsonl).
REPORTED = {
    ("TestConverseStream.test_invoke_tool_message.yaml", 0): 353,
    ("test_converse_stream_with_content.yaml", 0): 8,
    ("test_converse_stream_with_content_tool_call.yaml", 0): 415,
    ("test_converse_stream_with_content_tool_call.yaml", 1): 565,
    ("test_converse_tool_call_with_content.yaml", 0): 415,
    ("test_converse_tool_call_with_content.yaml", 1): 553,
    ("test_converse_with_content.yaml", 0): 8,
    ("test_invoke_model_with_content[amazon.nova].yaml", 0): 5,
    ("test_invoke_model_with_content[amazon.titan].yaml", 0): 5,
    ("test_invoke_model_with_content[anthropic.claude].yaml", 0): 14,
    ("test_invoke_model_with_content[cohere.command-r].yaml", 0): 5,
    ("test_invoke_model_with_content[meta.llama].yaml", 0): 5,
    ("test_invoke_model_with_content[mistral.mistral].yaml", 0): 6,
    ("test_invoke_model_with_response_stream_with_content[amazon.nova].yaml", 0): 5,
    ("test_invoke_model_with_response_stream_with_content[amazon.titan].yaml", 0): 5,
    ("test_invoke_model_with_response_stream_with_content[anthropic.claude].yaml", 0): 14,
    ("test_invoke_model_with_response_stream_with_content_tool_call[anthropic.claude].yaml", 0): 392,
    ("test_invoke_model_with_response_stream_with_content_tool_call[anthropic.claude].yaml", 1): 603,
    ("test_async_anthropic_bedrock_regular_create.yaml", 0): 17,
}


def recorded_requests(root: Path = RECORDED) -> Iterator[dict[str, Any]]:
    provenance = json.loads((root / "PROVENANCE-bedrock.json").read_text(encoding="utf-8"))
    for file in sorted(provenance):
        name = file.rsplit("/", 1)[-1]
        data = yaml.safe_load((root / file).read_text(encoding="utf-8"))
        for index, interaction in enumerate(data["interactions"]):
            reported = REPORTED.get((name, index))
            if reported is None:
                continue
            request = interaction["request"]
            body = request["body"]
            body = body.get("string") if isinstance(body, dict) else body
            _, _, model, endpoint = unquote(urlsplit(request["uri"]).path).split("/", 3)
            yield {"file": name, "index": index, "model": model, "endpoint": endpoint,
                   "body": json.loads(body), "reported": reported}


def estimate(row: dict[str, Any]) -> int:
    if row["endpoint"].startswith("converse"):
        return bedrock.estimate_converse_input(row["model"], row["body"]).tokens
    return bedrock.estimate_invoke_input(row["model"], row["body"]).tokens


def main(argv: Optional[list[str]] = None) -> int:
    errors = []
    print(f"{'recording':<84} {'model':<46} {'reported':>8} {'estimate':>8} {'error':>8}")
    for row in recorded_requests():
        guess = estimate(row)
        error = (guess - row["reported"]) / row["reported"] * 100
        errors.append(abs(error))
        label = f"{row['file']}[{row['index']}]"
        print(f"{label:<84} {row['model']:<46} {row['reported']:>8} {guess:>8} {error:>7.1f}%")
    print(f"\n{len(errors)} requests: mean absolute error {statistics.mean(errors):.1f}%, "
          f"median {statistics.median(errors):.1f}%, max {max(errors):.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
