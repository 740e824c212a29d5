#!/usr/bin/env python3
"""Build the bundled pricing catalog: LiteLLM price file -> our format + our corrections.

    python scripts/build_catalog.py path/to/litellm-model-prices.json --litellm-version 1.109.1

Writes src/otel_ai_cost/pricing/data/catalog.json sorted by (provider, id), so the same inputs
always give the same bytes. ``--check`` compares instead of writing (exit 1 if out of date).
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from otel_ai_cost.errors import CatalogError
from otel_ai_cost.pricing._catalog import dump_document, validate_document
from otel_ai_cost.pricing._litellm import import_litellm

DATA = Path(__file__).resolve().parent.parent / "src" / "otel_ai_cost" / "pricing" / "data"
ACTIONS = ("add", "update", "add_aliases")


def apply_corrections(document: Dict[str, Any], corrections_path: Path) -> List[str]:
    """Apply corrections.json to an imported catalog document in place; return one line per correction."""
    file = str(corrections_path)
    try:
        raw = json.loads(corrections_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{file}: (file): cannot read corrections: {exc}") from exc
    items = raw.get("corrections") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise CatalogError(f"{file}: corrections: expected a list of corrections")
    index = {(m["provider"], m["id"]): m for m in document["models"]}
    log: List[str] = []
    for i, item in enumerate(items):
        where = f"corrections[{i}]"
        if not isinstance(item, dict):
            raise CatalogError(f"{file}: {where}: expected an object")
        for key in ("action", "provider", "id", "source", "date", "reason"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise CatalogError(f"{file}: {where}.{key}: required (every correction has a source, a date and a reason)")
        if item["action"] not in ACTIONS:
            raise CatalogError(f"{file}: {where}.action: must be one of {', '.join(ACTIONS)}, got {item['action']!r}")
        key = (item["provider"], item["id"])
        existing = index.get(key)
        if item["action"] == "add":
            if existing is not None:
                raise CatalogError(f"{file}: {where}: {key[0]}/{key[1]} is already in the import; "
                                   "use action update, or drop this correction if the import is now right")
            model = {"id": item["id"], "provider": item["provider"], **copy.deepcopy(item.get("model", {}))}
            document["models"].append(model)
            index[key] = model
        else:
            if existing is None:
                raise CatalogError(f"{file}: {where}: {key[0]}/{key[1]} is not in the import; use action add")
            model = existing
            if item["action"] == "update":
                for field, value in copy.deepcopy(item.get("set", {})).items():
                    if field == "prices":
                        model["prices"].update(value)
                    else:
                        model[field] = value
            else:
                model["aliases"] = list(model.get("aliases", [])) + list(item.get("aliases", []))
        if item["action"] == "add" or not model.get("source"):
            model["source"] = item["source"]
        elif item["source"] not in model["source"].split("; "):
            # An update changes some prices: the entry keeps the source of the others too.
            model["source"] = f"{model['source']}; {item['source']}"
        model["effective_date"] = item["date"]
        log.append(f"{item['action']} {key[0]}/{key[1]}: {item['reason']}")
    return log


def build(litellm_file: Path, *, corrections: Optional[Path], litellm_version: str, effective_date: str,
          catalog_version: str) -> Mapping[str, Any]:
    result = import_litellm(litellm_file, source_label=f"litellm {litellm_version}",
                            effective_date=effective_date, catalog_version=catalog_version)
    print(result.summary(), file=sys.stderr)
    document = result.document
    if corrections is not None:
        for line in apply_corrections(document, corrections):
            print(f"correction: {line}", file=sys.stderr)
    document["models"].sort(key=lambda m: (m["provider"], m["id"]))
    validate_document(document, str(corrections or litellm_file))
    return document


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("litellm_file", type=Path, help="LiteLLM model_prices_and_context_window.json")
    parser.add_argument("--litellm-version", default="1.109.1", help="version of the LiteLLM file (recorded as the source)")
    parser.add_argument("--effective-date", default=_dt.datetime.now(_dt.timezone.utc).date().isoformat(),
                        help="date the imported prices were taken, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--catalog-version", help="default: the effective date as YYYY.MM.DD")
    parser.add_argument("--corrections", type=Path, default=DATA / "corrections.json")
    parser.add_argument("--no-corrections", action="store_true")
    parser.add_argument("-o", "--output", type=Path, default=DATA / "catalog.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if OUTPUT differs from what would be written")
    args = parser.parse_args(argv)
    version = args.catalog_version or args.effective_date.replace("-", ".")
    try:
        document = build(args.litellm_file, corrections=None if args.no_corrections else args.corrections,
                         litellm_version=args.litellm_version, effective_date=args.effective_date,
                         catalog_version=version)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = dump_document(document)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run scripts/build_catalog.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {len(document['models'])} models, {len(text.encode())} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
