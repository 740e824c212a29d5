"""The ``otel-ai-cost`` command: ``demo``, ``estimate``, ``prices``, ``budget``, ``report``, ``recommend``,
``dashboard``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

from . import _semconv as sc
from ._version import package_version
from .errors import ConfigError

PROG = "otel-ai-cost"

# How `estimate` names the basis of its output tokens (``OutputEstimate.tokens``).
_BASIS_TEXT = {
    sc.AiCostEstimateOutputBasisValues.MAX_TOKENS: "--max-tokens",
    sc.AiCostEstimateOutputBasisValues.MODEL_LIMIT: "the model's maximum output; bound it with --max-tokens",
    sc.AiCostEstimateOutputBasisValues.DEFAULT: "a default; bound it with --max-tokens",
}

def _read_messages(path: str) -> List[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            messages = json.load(f)
    except OSError as exc:
        raise ConfigError(f"--messages {path}: cannot read the file: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"--messages {path}: not valid JSON: {exc}") from exc
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise ConfigError(
            f"--messages {path}: expected a JSON list of chat messages, "
            'e.g. [{"role": "user", "content": "Hello"}]'
        )
    return messages


def _usd(value: Decimal) -> str:
    if 0 < value < Decimal("0.000001"):  # tiny amounts (a short embedding) would print as $0.000000
        return f"${value.normalize():f}"
    return f"${value:.6f}"


def _tokens(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"


def _estimate(args: argparse.Namespace) -> int:
    out = sys.stdout
    from .config import OutputEstimate
    from .cost import Usage, compute_cost
    from .pricing import default_catalog
    from .tokens import estimate_chat_input, estimate_embedding_input

    if args.max_tokens is not None and args.max_tokens < 0:
        raise ConfigError(f"--max-tokens {args.max_tokens}: must be 0 or more")
    catalog = default_catalog()
    price = catalog.resolve(args.model, args.provider)

    if args.messages is not None:
        counted = estimate_chat_input(args.model, _read_messages(args.messages))
        what = args.messages
    else:
        if args.text is None and sys.stdin.isatty():
            raise ConfigError("estimate: no prompt: give it with --text, --messages FILE.json or on standard input")
        text = args.text if args.text is not None else sys.stdin.read()
        if price is not None and price.mode == "embedding":
            counted = estimate_embedding_input(args.model, text)
        else:
            counted = estimate_chat_input(args.model, [{"role": "user", "content": text}])
        what = "the text" if args.text is not None else "standard input"

    print(f"model: {args.model}", file=out)
    print(f"input: {_tokens(counted.tokens)} ({counted.method}), counted from {what}", file=out)
    if price is None:
        provider = f" for provider {args.provider!r}" if args.provider else ""
        print(f"cost: unknown: model {args.model!r}{provider} is not in the pricing catalog "
              f"(version {catalog.version}); add it with a pricing file in OTEL_AI_COST_PRICING_FILES "
              f"or see `{PROG} prices list`", file=out)
        return 1

    price_line = (f"priced as: {price.provider}/{price.id} (catalog {catalog.version}): "
                  f"input ${price.prices.input}/1M, output ${price.prices.output}/1M")
    input_only = compute_cost(Usage(input_tokens=counted.tokens), price).total
    if price.mode == "embedding":
        print("output: none (embeddings have no output tokens)", file=out)
        print(price_line, file=out)
        print(f"estimated cost: {_usd(input_only)}", file=out)
        return 0

    output_tokens, basis = OutputEstimate().tokens(args.max_tokens, price.max_output_tokens)  # the worst case
    print(f"output: up to {_tokens(output_tokens)} ({_BASIS_TEXT[basis]})", file=out)
    worst = compute_cost(Usage(input_tokens=counted.tokens, output_tokens=output_tokens), price).total
    print(price_line, file=out)
    print(f"estimated cost: {_usd(input_only)} (input only) to {_usd(worst)} "
          f"(with {_tokens(output_tokens)} of output)", file=out)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(sys.stdout, console=args.console)


def _fake_openai(args: argparse.Namespace) -> int:
    import time

    from .demo import FakeOpenAIServer

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be between 0 and 65535")
    try:
        server = FakeOpenAIServer(port=args.port, keep_requests=False)
    except OSError as exc:
        raise ConfigError(f"--port {args.port}: cannot listen on 127.0.0.1:{args.port}: "
                          f"{exc.strerror or exc}") from exc
    with server:
        print(f"fake OpenAI API listening at {server.base_url} (loopback only; Ctrl-C stops it)")
        print("Point the OpenAI SDK at it (any API key is accepted):")
        print(f"  export OPENAI_BASE_URL={server.base_url} OPENAI_API_KEY=sk-fake", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return 0


def _one_line(message: str) -> str:
    """A message (e.g. a YAML parser's, with its caret lines) on one line."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip() and line.strip() != "^")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See, estimate and control what LLM calls cost, natively in OpenTelemetry.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(
        dest="command", metavar="{demo,fake-openai,estimate,prices,budget,report,recommend,dashboard,collector-config}"
    )
    commands.required = True

    demo = commands.add_parser("demo", help="run an instrumented sample app against a local fake OpenAI API")
    demo.add_argument("--console", action="store_true",
                      help="also print one priced span in full, as OpenTelemetry's ConsoleSpanExporter prints it")
    demo.set_defaults(func=_demo)

    fake = commands.add_parser(
        "fake-openai",
        help="run the demo's fake OpenAI-compatible API on loopback, for your own tries",
        description="Serve the demo's fake OpenAI API (chat completions, Responses, embeddings, streams; "
        "realistic usage) on 127.0.0.1 until Ctrl-C, and print the OPENAI_BASE_URL to use.",
    )
    fake.add_argument("--port", type=int, default=0, metavar="N", help="port to listen on (default: a free one)")
    fake.set_defaults(func=_fake_openai)

    estimate = commands.add_parser(
        "estimate",
        help="estimate what a request will cost before sending it",
        description="Count the input tokens of a request and price it: input only, and the worst case "
        "with --max-tokens (or the model's maximum output). Reads the text from standard input "
        "when neither --text nor --messages is given.",
    )
    estimate.add_argument("--model", required=True, help="model name as sent to the API, e.g. gpt-4o-mini")
    estimate.add_argument("--provider", help="gen_ai.provider.name value, e.g. openai (default: any)")
    source = estimate.add_mutually_exclusive_group()
    source.add_argument("--text", help="the prompt text (sent as one user message)")
    source.add_argument("--messages", metavar="FILE.json", help="a JSON list of chat messages")
    estimate.add_argument("--max-tokens", type=int, metavar="N", help="the request's maximum output tokens")
    estimate.set_defaults(func=_estimate)

    from .pricing._cli import register

    register(commands)

    from .budgets._cli import register as register_budgets  # `budget ...` and `report`

    register_budgets(commands)

    from .ledger._recommend_cli import register as register_recommend  # `recommend`

    register_recommend(commands)

    from .dashboard._cli import register as register_dashboard  # `dashboard`

    register_dashboard(commands)

    from .collector_config import register as register_collector_config  # `collector-config`

    register_collector_config(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on bad arguments (after printing usage), 0 on --help / --version
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args))
    except ConfigError as exc:  # CatalogError included
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which exited early
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter quiet at exit
        return 1
    except OSError as exc:  # a file named on the command line: missing, unreadable, unwritable
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - never a traceback: one line, and a non-zero exit code
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
