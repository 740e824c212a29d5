#!/usr/bin/env python3
"""Build the bundled pricing catalog from its reviewed source: pricing/*.yaml -> catalog.json.

    python scripts/build_catalog.py            # write src/otel_ai_cost/pricing/data/catalog.json
    python scripts/build_catalog.py --check    # exit 1 if catalog.json is not what the YAML gives

pricing/catalog.yaml holds the catalog header; every other pricing/<provider>.yaml holds one
provider: ``provider``, ``pricing_url`` and ``models``. Each model is a catalog entry (id, mode,
aliases, prices, service_tiers, context_tiers, limits, source, effective_date, and dated prices:
effective_from with price_history, see src/otel_ai_cost/pricing/_history.py) plus review fields
that stay in the YAML: ``prices_checked`` (date someone last checked the price against its source)
and ``history`` (dated changes, each with source and reason). Models are written sorted by
(provider, id), so the same YAML always gives the same bytes. Proposals from LiteLLM's table:
scripts/propose_prices.py.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from otel_ai_cost.errors import CatalogError
from otel_ai_cost.pricing._catalog import dump_document, validate_document

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "pricing"
OUTPUT = ROOT / "src" / "otel_ai_cost" / "pricing" / "data" / "catalog.json"
HEADER = "catalog.yaml"
PROVIDER_KEYS = {"provider", "pricing_url", "models"}
REVIEW_KEYS = ("prices_checked", "history")
HISTORY_REQUIRED = ("date", "source", "reason")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except OSError as exc:
        raise CatalogError(f"{path}: (file): cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "(file)"
        raise CatalogError(f"{path}: {where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc


def _date(value: Any) -> bool:
    try:
        _dt.date.fromisoformat(value)
        return isinstance(value, str)
    except (TypeError, ValueError):
        return False


def read_provider(path: Path) -> List[Dict[str, Any]]:
    """One provider file -> its catalog entries; CatalogError names file, key path and reason."""
    file = str(path)
    raw = _load(path)
    if not isinstance(raw, dict):
        raise CatalogError(f"{file}: (top level): expected a mapping with provider, pricing_url and models")
    for key in sorted(PROVIDER_KEYS - set(raw)):
        raise CatalogError(f"{file}: {key}: required")
    for key in sorted(set(raw) - PROVIDER_KEYS):
        raise CatalogError(f"{file}: {key}: unknown key (allowed: {', '.join(sorted(PROVIDER_KEYS))})")
    provider, url, models = raw["provider"], raw["pricing_url"], raw["models"]
    if not isinstance(provider, str) or path.stem != provider:
        raise CatalogError(f"{file}: provider: must be the file's name {path.stem!r}, got {provider!r}")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise CatalogError(f"{file}: pricing_url: must be an https:// URL, got {url!r}")
    if not isinstance(models, list) or not models:
        raise CatalogError(f"{file}: models: expected a non-empty list")
    entries = []
    for i, model in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(model, dict):
            raise CatalogError(f"{file}: {where}: expected a mapping")
        if "provider" in model:
            raise CatalogError(f"{file}: {where}.provider: not allowed here (the file's provider applies)")
        source = model.get("source")
        if not isinstance(source, str) or not source.startswith(("https://", "litellm ")):
            raise CatalogError(f"{file}: {where}.source: required, where the price comes from: an https:// URL "
                               f"or \"litellm <version>\", got {source!r}")
        if not _date(model.get("prices_checked")):
            raise CatalogError(f"{file}: {where}.prices_checked: required, a date YYYY-MM-DD as a string, "
                               f"got {model.get('prices_checked')!r}")
        history = model.get("history", [])
        if not isinstance(history, list):
            raise CatalogError(f"{file}: {where}.history: expected a list of dated changes")
        for j, change in enumerate(history):
            if not isinstance(change, dict):
                raise CatalogError(f"{file}: {where}.history[{j}]: expected a mapping")
            for key in HISTORY_REQUIRED:
                if not isinstance(change.get(key), str) or not change[key]:
                    raise CatalogError(f"{file}: {where}.history[{j}].{key}: required (every change has a date, "
                                       "a source and a reason)")
            if not _date(change["date"]):
                raise CatalogError(f"{file}: {where}.history[{j}].date: must be YYYY-MM-DD, got {change['date']!r}")
        entry: Dict[str, Any] = {}
        for key, value in model.items():
            if key in REVIEW_KEYS:
                continue
            entry[key] = value
            if key == "id":
                entry["provider"] = provider
        entries.append(entry)
    # The catalog's own checks (schema, unique ids/aliases, ascending tiers), on this file's entries so
    # an error's models[i] is the i-th model of this file.
    validate_document({"schema_version": 1, "currency": "USD", "models": entries}, file)
    # User price files may give prices as JSON numbers; the reviewed source keeps them as decimal
    # strings, exactly as reviewed (a YAML float would be re-read) and as the collector's loader reads them.
    for i, entry in enumerate(entries):
        for where, prices in _price_sets(entry):
            for name, value in prices.items():
                if not isinstance(value, str):
                    raise CatalogError(f"{file}: models[{i}].{where}{name}: price must be a decimal string "
                                       f"(quote it: '{value}'), not {type(value).__name__}")
    return entries


def _price_sets(entry: Dict[str, Any]):
    periods = [("", entry)] + [(f"price_history[{k}].", p) for k, p in enumerate(entry.get("price_history", ()))]
    for base, period in periods:
        yield f"{base}prices.", period.get("prices", {})
        for tier, prices in period.get("service_tiers", {}).items():
            yield f"{base}service_tiers.{tier}.", prices
        for j, tier in enumerate(period.get("context_tiers", ())):
            yield f"{base}context_tiers[{j}].prices.", tier.get("prices", {})
            for name, prices in tier.get("service_tiers", {}).items():
                yield f"{base}context_tiers[{j}].service_tiers.{name}.", prices


def build(source: Path = SOURCE) -> Dict[str, Any]:
    header = _load(source / HEADER)
    if not isinstance(header, dict) or "models" in header:
        raise CatalogError(f"{source / HEADER}: (top level): expected the catalog header "
                           "(schema_version, catalog_version, currency, imported_from) without models")
    document: Dict[str, Any] = dict(header)
    models: List[Dict[str, Any]] = []
    files = sorted(p for p in source.glob("*.yaml") if p.name != HEADER)
    if not files:
        raise CatalogError(f"{source}: (directory): no provider files")
    for path in files:
        models.extend(read_provider(path))
    models.sort(key=lambda m: (m["provider"], m["id"]))
    document["models"] = models
    validate_document(document, str(source))
    return document


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder of provider YAML files (default: pricing/)")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if OUTPUT differs from what would be written")
    args = parser.parse_args(argv)
    try:
        document = build(args.source)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = dump_document(document)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date with {args.source}: run scripts/build_catalog.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {len(document['models'])} models, {len(text.encode())} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
