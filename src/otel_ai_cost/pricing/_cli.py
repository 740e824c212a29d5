"""``otel-ai-cost prices ...``: look up, list, validate and import price files."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from typing import Any, List, Optional, TextIO

from ..errors import CatalogError, ConfigError
from ._catalog import (
    Catalog,
    default_catalog,
    document_errors,
    dump_document,
    model_to_dict,
    parse_document,
    read_document,
)
from ._litellm import import_litellm
from ._model import PRICE_FIELDS, ModelPrice, PriceSet


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``prices`` command to the CLI's subparsers."""
    prices = subparsers.add_parser("prices", help="look up, list, validate and import model prices")
    sub = prices.add_subparsers(dest="prices_command", metavar="{show,list,validate,import}")
    sub.required = True

    show = sub.add_parser("show", help="show the price entry a model name resolves to")
    show.add_argument("model")
    show.add_argument("--provider", help="gen_ai.provider.name value, e.g. openai, aws.bedrock")
    show.set_defaults(func=_show)

    listing = sub.add_parser("list", help="list the models in the catalog")
    listing.add_argument("--provider")
    listing.add_argument("--json", action="store_true", help="print the entries in catalog JSON format")
    listing.set_defaults(func=_list)

    validate = sub.add_parser("validate", help="check a pricing file (our format)")
    validate.add_argument("file")
    validate.set_defaults(func=_validate)

    imp = sub.add_parser("import", help="convert a LiteLLM price file to our format")
    imp.add_argument("file")
    imp.add_argument("-o", "--output", help="write the catalog here (default: standard output)")
    imp.add_argument("--source", default="litellm", help="source recorded on entries without a URL (default: litellm)")
    imp.set_defaults(func=_import)


def _error(problem: object) -> None:
    print(f"otel-ai-cost: error: {problem}", file=sys.stderr)


def _catalog() -> Optional[Catalog]:
    """The catalog the environment configures, or None once a bad OTEL_AI_COST_PRICING_FILES file or
    value (bad input: exit code 2) is reported."""
    try:
        return default_catalog()
    except ConfigError as exc:
        _error(exc)
        return None


def _format_prices(prices: PriceSet) -> str:
    parts = []
    for name in PRICE_FIELDS:
        value = getattr(prices, name)
        if value is not None:
            unit = "" if name in ("per_image", "per_request", "web_search") else "/1M"
            parts.append(f"{name}=${value}{unit}")
    return ", ".join(parts)


def _describe(model: ModelPrice, out: TextIO) -> None:
    print(f"{model.provider}/{model.id} ({model.mode})", file=out)
    if model.aliases:
        print(f"  aliases: {', '.join(model.aliases)}", file=out)
    print(f"  prices (USD): {_format_prices(model.prices)}", file=out)
    for tier, prices in model.service_tiers.items():
        print(f"  {tier}: {_format_prices(prices)}", file=out)
    for ctx in model.context_tiers:
        print(f"  above {ctx.above_input_tokens} input tokens: {_format_prices(ctx.prices)}", file=out)
        for tier, prices in ctx.service_tiers.items():
            print(f"    {tier}: {_format_prices(prices)}", file=out)
    if model.max_input_tokens is not None or model.max_output_tokens is not None:
        print(f"  max tokens: input {model.max_input_tokens}, output {model.max_output_tokens}", file=out)
    print(f"  source: {model.source or '(none)'}", file=out)
    print(f"  effective date: {model.effective_date or '(none)'}", file=out)
    if model.price_history:
        print(f"  prices above in force from {model.effective_from}; before (a call is priced by its UTC day):",
              file=out)
        for period in reversed(model.price_history):
            print(f"    from {period.effective_from}: {_format_prices(period.prices)} ({period.source})", file=out)
            for tier, prices in period.service_tiers.items():
                print(f"      {tier}: {_format_prices(prices)}", file=out)
            for ctx in period.context_tiers:
                print(f"      above {ctx.above_input_tokens} input tokens: {_format_prices(ctx.prices)}", file=out)


def _show(args: argparse.Namespace) -> int:
    catalog = _catalog()
    if catalog is None:
        return 2
    model = catalog.resolve(args.model, args.provider)
    if model is None:
        where = f" for provider {args.provider!r}" if args.provider else ""
        print(f"error: no price for model {args.model!r}{where} in catalog {catalog.version}; "
              "add it with a pricing file (OTEL_AI_COST_PRICING_FILES)", file=sys.stderr)
        return 1
    _describe(model, sys.stdout)
    return 0


def _list(args: argparse.Namespace) -> int:
    catalog = _catalog()
    if catalog is None:
        return 2
    models = [m for m in catalog.entries() if args.provider is None or m.provider == args.provider]
    if args.json:
        from ._catalog import SCHEMA_VERSION

        # A catalog document: `prices validate` accepts it, OTEL_AI_COST_PRICING_FILES can load it.
        document = {"schema_version": SCHEMA_VERSION, "catalog_version": catalog.version, "currency": "USD",
                    "models": [model_to_dict(m) for m in models]}
        json.dump(document, sys.stdout, indent=1)
        print()
        return 0
    print("PROVIDER\tMODEL\tMODE\tINPUT_USD_PER_1M_TOKENS\tOUTPUT_USD_PER_1M_TOKENS")
    for m in models:
        price_in = "-" if m.prices.input is None else m.prices.input
        price_out = "-" if m.prices.output is None else m.prices.output
        print(f"{m.provider}\t{m.id}\t{m.mode}\t{price_in}\t{price_out}")
    print(f"{len(models)} models (catalog {catalog.version}); prices in USD per 1,000,000 tokens "
          "(`prices show MODEL` for every price of one model)", file=sys.stderr)
    return 0


def _validate(args: argparse.Namespace) -> int:
    # Every problem, one per line (file: key: reason), so a file is fixed in one pass; loading at
    # run time stops at the first of them, with the same message.
    try:
        doc = read_document(args.file)
    except CatalogError as exc:
        _error(exc)
        return 2
    errors = document_errors(doc, args.file)
    if errors:
        for error in errors:
            _error(error)
        print(f"{len(errors)} error{'s' if len(errors) != 1 else ''} in {args.file}", file=sys.stderr)
        return 2
    _, models = parse_document(doc, args.file)
    print(f"ok: {len(models)} models")
    return 0


def _import(args: argparse.Namespace) -> int:
    today = _dt.datetime.now(_dt.timezone.utc).date()
    try:
        result = import_litellm(args.file, source_label=args.source, effective_date=today.isoformat(),
                                catalog_version=today.strftime("%Y.%m.%d"))
    except CatalogError as exc:
        _error(exc)
        return 2
    text = dump_document(result.document)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(result.summary())
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
        print(result.summary(), file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``prices`` command alone (the package CLI normally calls ``register``)."""
    parser = argparse.ArgumentParser(prog="otel-ai-cost")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
