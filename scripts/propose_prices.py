#!/usr/bin/env python3
"""Propose changes to the catalog source (pricing/*.yaml) from a LiteLLM price table; never writes.

    python scripts/propose_prices.py litellm-model-prices.json --litellm-version 1.110.0 > proposal.diff
    git apply proposal.diff   # after reviewing it; then: python scripts/build_catalog.py

Prints a unified diff of pricing/<provider>.yaml: models LiteLLM has and we do not (added, citing
"litellm <version>"), and prices, tiers, limits or mode LiteLLM gives differently from ours (changed,
with a dated history entry saying what changed and from where). A field the YAML's history set
deliberately (one of our reviewed corrections) is never proposed back; it is listed on stderr as
kept. Fields LiteLLM lacks are never proposed for removal, and models LiteLLM lacks are listed on
stderr only. LiteLLM is a lead to check against the provider's pricing_url, not a source of truth.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import difflib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from otel_ai_cost.errors import CatalogError
from otel_ai_cost.pricing._litellm import import_litellm


def _build_catalog() -> Any:
    spec = importlib.util.spec_from_file_location("build_catalog", Path(__file__).with_name("build_catalog.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


build_catalog = _build_catalog()
COMPARED = ("mode", "prices", "service_tiers", "context_tiers", "max_input_tokens", "max_output_tokens")


def dump_provider(doc: Dict[str, Any], comments: str) -> str:
    """The text form the provider files are kept in (what the one-off conversion wrote)."""
    return comments + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def _leading_comments(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def _set_by_history(model: Dict[str, Any]) -> Dict[str, str]:
    """Fields (and price keys, as ``prices.input``) our reviewed history set, with the change's date."""
    out: Dict[str, str] = {}
    for change in model.get("history", []):
        if str(change.get("source", "")).startswith("litellm"):
            continue  # an earlier proposal taken from LiteLLM is no reviewed correction
        if change.get("action") == "add":
            return {field: change["date"] for field in COMPARED}
        for field, value in (change.get("set") or {}).items():
            if field in ("prices", "service_tiers") and isinstance(value, dict):
                out.update({f"{field}.{k}": change["date"] for k in value})
            else:
                out[field] = change["date"]
    return out


def _fmt(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip() if value is not None else "(none)"


def propose_model(ours: Dict[str, Any], theirs: Dict[str, Any], label: str, today: str,
                  kept: List[str]) -> Optional[Dict[str, Any]]:
    """Our model updated with what LiteLLM gives differently, or None if nothing would change."""
    protected = _set_by_history(ours)
    name = f"{theirs['provider']}/{ours['id']}"
    new = copy.deepcopy(ours)
    changes: List[str] = []
    for field in COMPARED:
        if field not in theirs:
            continue
        if field in ("prices", "service_tiers"):
            # Merged key by key (a price, or a whole tier): what LiteLLM lacks is kept.
            for key, value in theirs[field].items():
                old = ours.get(field, {}).get(key)
                if old == value:
                    continue
                if f"{field}.{key}" in protected or field in protected:
                    kept.append(f"kept: {name}: {field}.{key} {_fmt(old)} set by our history "
                                f"{protected.get(f'{field}.{key}') or protected[field]}; LiteLLM {_fmt(value)}")
                    continue
                new.setdefault(field, {})[key] = copy.deepcopy(value)
                changes.append(f"{field}.{key} {_fmt(old)} -> {_fmt(value)}")
        elif ours.get(field) != theirs[field]:
            if field in protected:
                kept.append(f"kept: {name}: {field} set by our history {protected[field]}; "
                            f"LiteLLM {_fmt(theirs[field])}")
                continue
            new[field] = copy.deepcopy(theirs[field])
            changes.append(f"{field} {_fmt(ours.get(field))} -> {_fmt(theirs[field])}")
    if not changes:
        return None
    source = ours.get("source", "")
    if not source or source.startswith("litellm"):
        new["source"] = label
    elif label not in source.split("; "):
        new["source"] = f"{source}; {label}"
    new["effective_date"] = today
    new["prices_checked"] = today
    reason = (f"{label} gives " + "; ".join(changes)
              + " (proposed by scripts/propose_prices.py; check against pricing_url)")
    entry = {"date": today, "action": "update", "source": label, "reason": reason}
    new["history"] = list(new.get("history", [])) + [entry]
    return new


def propose(litellm_file: Path, *, source: Path, litellm_version: str, today: str,
            verbose: bool = False) -> Tuple[str, List[str]]:
    """Return (unified diff of the provider files, notes for stderr)."""
    label = f"litellm {litellm_version}"
    imported = import_litellm(litellm_file, source_label=label, effective_date=today).document["models"]
    by_provider: Dict[str, List[Dict[str, Any]]] = {}
    for model in imported:
        by_provider.setdefault(model["provider"], []).append(model)
    notes: List[str] = []
    diff: List[str] = []
    missing = 0
    for path in sorted(p for p in source.glob("*.yaml") if p.name != build_catalog.HEADER):
        build_catalog.read_provider(path)  # a proposal starts from a valid source
        text = path.read_text(encoding="utf-8")
        doc = yaml.load(text, Loader=build_catalog._Loader)
        provider = doc["provider"]
        theirs = {m["id"]: m for m in by_provider.pop(provider, [])}
        names = {}
        for i, model in enumerate(doc["models"]):
            for name in [model["id"], *model.get("aliases", [])]:
                names[name] = i
        for model_id, entry in sorted(theirs.items()):
            i = names.get(model_id)
            if i is None:
                added = {k: v for k, v in entry.items() if k != "provider"}
                added["prices_checked"] = today
                doc["models"].append(added)
                notes.append(f"new: {provider}/{model_id}")
            elif doc["models"][i]["id"] == model_id:
                changed = propose_model(doc["models"][i], entry, label, today, notes)
                if changed is not None:
                    doc["models"][i] = changed
                    notes.append(f"changed: {provider}/{model_id}")
            # else: LiteLLM's id is one of our aliases; the model is priced under its own id.
        for model in doc["models"]:
            if model["id"] not in theirs and not (set(model.get("aliases", [])) & set(theirs)):
                missing += 1
                if verbose:
                    notes.append(f"not in {label}: {provider}/{model['id']} (kept)")
        doc["models"].sort(key=lambda m: m["id"])
        proposed = dump_provider(doc, _leading_comments(text))
        rel = path.relative_to(source.parent) if source.parent in path.parents else path
        diff.extend(difflib.unified_diff(text.splitlines(keepends=True), proposed.splitlines(keepends=True),
                                         fromfile=f"a/{rel}", tofile=f"b/{rel}"))
    if missing:
        notes.append(f"{missing} of our models are not in {label} (kept; --verbose lists them)")
    for provider in sorted(by_provider):
        no_file = source / (provider + ".yaml")
        notes.append(f"no file {no_file}: {len(by_provider[provider])} {provider} models not proposed")
    return "".join(diff), notes


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("litellm_file", type=Path, help="LiteLLM model_prices_and_context_window.json")
    parser.add_argument("--litellm-version", required=True, help="version of the LiteLLM file (cited as the source)")
    parser.add_argument("--source", type=Path, default=build_catalog.SOURCE, help="folder of provider YAML files")
    parser.add_argument("--date", default=_dt.datetime.now(_dt.timezone.utc).date().isoformat(),
                        help="date written into proposed entries, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list our models LiteLLM lacks")
    args = parser.parse_args(argv)
    try:
        diff, notes = propose(args.litellm_file, source=args.source, litellm_version=args.litellm_version,
                              today=args.date, verbose=args.verbose)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(note, file=sys.stderr)
    sys.stdout.write(diff)
    print(f"{sum(n.startswith('new:') for n in notes)} new, {sum(n.startswith('changed:') for n in notes)} changed; "
          "nothing written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
