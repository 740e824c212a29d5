"""How far the input-token estimate is from what the real APIs reported.

Reads the recorded OpenAI / Azure OpenAI requests in ``tests/fixtures/recorded`` (VCR cassettes;
``usage.jsonl`` gives the reported usage of each interaction), estimates the input tokens of every
chat, responses and embeddings request with ``otel_ai_cost.tokens`` using the model named in the
request (what an instrumentor sees: for Azure that is the deployment name), and prints one row
per request and a summary. Writes nothing.

    python benchmarks/estimation_error.py            # error table
    python benchmarks/estimation_error.py --timing   # also time the estimate of a ~200-token chat
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any, Iterator, Optional

import yaml

from otel_ai_cost import _tiktoken_offline, tokens
from otel_ai_cost._request import TokenCount

RECORDED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "recorded"


def recorded_requests(root: Path = RECORDED) -> Iterator[dict[str, Any]]:
    """Each successful chat / responses / embeddings interaction: usage.jsonl row + request body."""
    cassettes: dict[str, Any] = {}
    with open(root / "usage.jsonl", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if row["usage"] is None or row["endpoint"] not in ESTIMATORS:
                continue
            if row["file"] not in cassettes:
                with open(root / row["file"], encoding="utf-8") as f:
                    cassettes[row["file"]] = yaml.safe_load(f)
            body = cassettes[row["file"]]["interactions"][row["index"]]["request"]["body"]
            row["body"] = json.loads(body)
            yield row


def _chat(body: dict) -> TokenCount:
    return tokens.estimate_chat_input(
        body.get("model"), body["messages"], body.get("tools"), body.get("tool_choice")
    )


def _responses(body: dict) -> TokenCount:
    return tokens.estimate_responses_input(
        body.get("model"), body["input"], body.get("instructions"), body.get("tools"),
        body.get("tool_choice"),
    )


def _embeddings(body: dict) -> TokenCount:
    return tokens.estimate_embedding_input(body.get("model"), body["input"])


# What estimate_* assumes for a model name it cannot place (an Azure deployment name).
_DEFAULT_ENCODING = {"chat.completions": "o200k_base", "responses": "o200k_base",
                     "embeddings": "cl100k_base"}
ESTIMATORS = {"chat.completions": _chat, "responses": _responses, "embeddings": _embeddings}


def reported_input_tokens(usage: dict) -> int:
    return int(usage["prompt_tokens"] if "prompt_tokens" in usage else usage["input_tokens"])


def estimate(row: dict) -> TokenCount:
    return ESTIMATORS[row["endpoint"]](row["body"])


def error_table(root: Path = RECORDED) -> list[dict[str, Any]]:
    rows = []
    for row in recorded_requests(root):
        estimated = estimate(row)
        actual = reported_input_tokens(row["usage"])
        rows.append({
            "file": "/".join(row["file"].split("/")[-2:]),
            "index": row["index"],
            "endpoint": row["endpoint"],
            "request_model": row["body"].get("model"),
            "model": row["model"],
            "encoding": tokens.encoding_for_model(row["body"].get("model"), _DEFAULT_ENCODING[
                row["endpoint"]]) or "heuristic",
            "estimated": estimated.tokens,
            "method": estimated.method,
            "actual": actual,
            "error": (estimated.tokens - actual) / actual,
        })
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'file':<62} {'#':>2} {'request model -> served':<42} {'enc':<11} "
          f"{'est':>5} {'actual':>6} {'error':>7}")
    for r in rows:
        models = f"{r['request_model']} -> {r['model']}"
        print(f"{r['file'][:62]:<62} {r['index']:>2} {models[:42]:<42} {r['encoding']:<11} "
              f"{r['estimated']:>5} {r['actual']:>6} {r['error']:>+7.1%}")
    errors = [r["error"] for r in rows]
    print()
    print(f"requests: {len(rows)}  mean absolute error: {statistics.mean(abs(e) for e in errors):.2%}  "
          f"max: {max(errors, key=abs):+.2%}  bias (mean signed error): {statistics.mean(errors):+.2%}")
    exact = sum(1 for r in rows if r["estimated"] == r["actual"])
    print(f"exact: {exact}/{len(rows)}")


def _chat_of_about_200_tokens() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a concise assistant for a travel company. Answer in "
         "plain English, cite the policy section you rely on, and never invent prices."},
        {"role": "user", "content": "I booked a flight from Seattle to Boston on March 3rd and "
         "need to change it to March 5th. My booking reference is QX7Z2P. What fees apply?"},
        {"role": "assistant", "content": "Under section 4.2, changes made more than 48 hours "
         "before departure cost $75 plus any fare difference. Your new date is eligible."},
        {"role": "user", "content": "And if I cancel instead? I'd like a refund to my card, not "
         "a travel credit, if that's possible. Please list the steps I need to take."},
    ]


def _timing() -> None:
    base = _chat_of_about_200_tokens()
    runs = 2000
    for model in ("gpt-4o-mini", "gpt-4", "claude-sonnet-4"):
        _tiktoken_offline.reset()
        start = timeit.default_timer()
        counted = tokens.estimate_chat_input(model, base)
        cold = timeit.default_timer() - start
        repeated = min(timeit.repeat(lambda model=model: tokens.estimate_chat_input(model, base),
                                     number=runs, repeat=5)) / runs
        # Every string new (nothing from the count cache): a distinct copy of the chat per call.
        fresh_chats = [[{**m, "content": f"{m['content']} #{i}"} for m in base]
                       for i in range(5 * runs)]
        chats = iter(fresh_chats)
        fresh = min(timeit.repeat(lambda model=model, chats=chats: tokens.estimate_chat_input(model, next(chats)),
                                  number=runs, repeat=5)) / runs
        print(f"{model:<16} {counted.tokens:>4} tokens ({counted.method:<9}) first call "
              f"{cold * 1e3:6.1f} ms; then per estimate: "
              f"{fresh * 1e6:6.1f} µs all text new, {repeated * 1e6:5.1f} µs same chat again")
    # The floor: tiktoken itself (its Rust encoder, ~70 MB) and our compact encoder (~5 MB) counting
    # the same message texts.
    texts = [m["content"] for m in base]
    for label, encoding in (("(tiktoken)", _tiktoken_offline.build_tiktoken_encoding("o200k_base")),
                            ("(compact BPE)", _tiktoken_offline.get_encoding("o200k_base"))):
        floor = min(timeit.repeat(lambda encoding=encoding: [encoding.encode_ordinary(t) for t in texts],
                                  number=runs, repeat=5)) / runs
        fresh_texts = iter([f"{t} #{i}" for i in range(5 * runs) for t in texts])
        fresh = min(timeit.repeat(lambda encoding=encoding, fresh_texts=fresh_texts: [
            encoding.encode_ordinary(next(fresh_texts)) for _ in texts],
                                  number=runs, repeat=5)) / runs
        print(f"{label:<16} encode_ordinary of the 4 message texts: {floor * 1e6:6.1f} µs; "
              f"new texts each time: {fresh * 1e6:6.1f} µs")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true", help="also time a ~200-token chat estimate")
    args = parser.parse_args(argv)
    _print_table(error_table())
    if args.timing:
        print()
        _timing()
    return 0


if __name__ == "__main__":
    sys.exit(main())
