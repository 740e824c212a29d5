"""Generate src/otel_ai_cost/_semconv.py and semconv/attributes.md from the registry in semconv/.

    python scripts/generate_semconv.py          # rewrite the module and the Markdown table
    python scripts/generate_semconv.py --check  # exit 1 if either file on disk is out of date

The registry (Weaver definition/2 files, semconv/*.yaml except manifest.yaml) is the single source
of truth for our attribute and metric names; Weaver cannot run here, so this small script stands in
for `weaver registry generate`. The upstream OpenTelemetry names the code reads or writes
(`gen_ai.*`, `server.*`, `error.type`, `openai.*`) are listed in semconv/upstream/gen_ai.yaml and
generated into the same module, so that no module spells one itself.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
SEMCONV_DIR = ROOT / "semconv"
OUTPUT = ROOT / "src" / "otel_ai_cost" / "_semconv.py"
OUTPUT_MD = ROOT / "semconv" / "attributes.md"
MANIFEST = "manifest.yaml"
UPSTREAM = Path("upstream") / "gen_ai.yaml"
SECTION = "# --- "

HEADER = '''\
# Generated from semconv/ by scripts/generate_semconv.py. Do not edit.
"""Attribute, event and metric names declared in semconv/."""

from typing import Final
'''


class RegistryError(Exception):
    """A registry file cannot be turned into constants; the message names the file and key."""


def constant_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def class_name(key: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", key)) + "Values"


def literal(value: Any) -> str:
    """A Python literal for a registry value, with double quotes as the rest of the code base."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def registry_files(semconv_dir: Path) -> List[Path]:
    return sorted(p for p in semconv_dir.glob("*.yaml") if p.name != MANIFEST)


def load_registry(semconv_dir: Path) -> List[Tuple[str, Dict[str, Any]]]:
    files = registry_files(semconv_dir)
    if not files:
        raise RegistryError(f"{semconv_dir}: no registry files (*.yaml besides {MANIFEST})")
    loaded = []
    for path in files:
        with path.open(encoding="utf-8") as f:
            loaded.append((path.name, yaml.safe_load(f) or {}))
    return loaded


def _comment(text: str, indent: str = "") -> List[str]:
    # Briefs may use YAML folding; collapse whitespace so the output does not depend on it.
    text = " ".join(text.split())
    return textwrap.wrap(text, width=99, initial_indent=indent + "# ", subsequent_indent=indent + "# ")


def _attribute_chunks(file: str, attr: Dict[str, Any]) -> List[str]:
    """The constant for one attribute, then the class of its values if it is an enum."""
    key = attr.get("key")
    for field in ("key", "type", "brief"):
        if not attr.get(field):
            raise RegistryError(f"semconv/{file}: attribute {key or '?'} has no `{field}`; add it")
    chunks = ["\n".join(_comment(attr["brief"]) + [f"{constant_name(key)}: Final = {literal(key)}"])]
    attr_type = attr["type"]
    if isinstance(attr_type, dict):
        members = attr_type.get("members") or []
        if not members:
            raise RegistryError(f"semconv/{file}: enum attribute {key} has no `members`; list them")
        chunks.append(_values_class(key, [(m["id"], m.get("value", m["id"]), m.get("brief")) for m in members]))
    return chunks


def _values_class(key: str, members: List[Tuple[str, Any, Any]]) -> str:
    """The class of the values of enum attribute ``key``: one constant per (id, value, brief)."""
    lines = [f"class {class_name(key)}:", f'    """Values of ``{key}``."""', ""]
    for member_id, value, brief in members:
        if brief:
            lines += _comment(brief, indent="    ")
        lines.append(f"    {constant_name(member_id)}: Final = {literal(value)}")
    return "\n".join(lines)


def _metric_chunk(file: str, metric: Dict[str, Any]) -> str:
    name = metric.get("name")
    for field in ("name", "brief", "unit", "instrument"):
        if not metric.get(field):
            raise RegistryError(f"semconv/{file}: metric {name or '?'} has no `{field}`; add it")
    const = constant_name(name)
    lines = _comment(f"{metric['brief']} Instrument: {metric['instrument']}.")
    lines.append(f"{const}: Final = {literal(name)}")
    lines.append(f"{const}_UNIT: Final = {literal(metric['unit'])}")
    return "\n".join(lines)


def _event_chunk(file: str, event: Dict[str, Any]) -> str:
    name = event.get("name")
    for field in ("name", "brief"):
        if not event.get(field):
            raise RegistryError(f"semconv/{file}: event {name or '?'} has no `{field}`; add it")
    lines = _comment(f"{event['brief']} Span event.")
    lines.append(f"{constant_name(name)}: Final = {literal(name)}")
    return "\n".join(lines)


def load_upstream(semconv_dir: Path) -> Dict[str, Any]:
    path = semconv_dir / UPSTREAM
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _upstream_chunks(doc: Dict[str, Any], claim: Any) -> List[str]:
    """Constants for the upstream names: one per attribute (a values class where the list gives
    values) and one per metric with its unit."""
    where = f"semconv/{UPSTREAM.as_posix()}"
    chunks = [f"{SECTION}{where} (OpenTelemetry semantic conventions, not ours)"]
    for attr in doc.get("attributes") or []:
        key = attr.get("key")
        if not key or not attr.get("brief"):
            raise RegistryError(f"{where}: attribute {key or '?'} needs a `key` and a `brief`")
        brief = attr["brief"]
        if attr.get("deprecated"):
            brief += f" Deprecated: read from other instrumentations, never written; use {attr['deprecated']}."
        claim(constant_name(key), f"{where}: {key}")
        chunks.append("\n".join(_comment(brief) + [f"{constant_name(key)}: Final = {literal(key)}"]))
        if attr.get("values"):
            claim(class_name(key), f"{where}: {key}")
            chunks.append(_values_class(key, [(v, v, None) for v in attr["values"]]))
    for metric in doc.get("metrics") or []:
        chunks.append(_metric_chunk(UPSTREAM.as_posix(), metric))
        claim(constant_name(metric["name"]), f"{where}: {metric['name']}")
    return chunks


def _join(chunks: List[str]) -> str:
    # PEP 8: two blank lines around a class (and, for readability, before a file's section).
    out = chunks[0]
    for before, chunk in zip(chunks, chunks[1:]):
        wide = before.startswith("class ") or chunk.startswith(("class ", SECTION))
        out += ("\n\n\n" if wide else "\n\n") + chunk
    return out


def render(semconv_dir: Path = SEMCONV_DIR) -> str:
    """Return the text of _semconv.py for the registry in ``semconv_dir``."""
    seen: Dict[str, str] = {}  # constant name -> "file: key", to reject duplicates and clashes

    def claim(const: str, where: str) -> None:
        if const in seen:
            raise RegistryError(f"{where} and {seen[const]} both define {const}; remove one")
        seen[const] = where

    chunks: List[str] = []
    for file, doc in load_registry(semconv_dir):
        chunks.append(f"{SECTION}semconv/{file}")
        for attr in doc.get("attributes") or []:
            chunks += _attribute_chunks(file, attr)
            claim(constant_name(attr["key"]), f"semconv/{file}: {attr['key']}")
            if isinstance(attr["type"], dict):
                claim(class_name(attr["key"]), f"semconv/{file}: {attr['key']}")
        for event in doc.get("events") or []:
            chunks.append(_event_chunk(file, event))
            claim(constant_name(event["name"]), f"semconv/{file}: {event['name']}")
        for metric in doc.get("metrics") or []:
            chunks.append(_metric_chunk(file, metric))
            claim(constant_name(metric["name"]), f"semconv/{file}: {metric['name']}")
            claim(constant_name(metric["name"]) + "_UNIT", f"semconv/{file}: {metric['name']}")
    upstream = load_upstream(semconv_dir)
    if upstream:
        chunks += _upstream_chunks(upstream, claim)
    return HEADER + "\n\n" + _join(chunks) + "\n"


def _cell(text: Any) -> str:
    """One Markdown table cell: whitespace (YAML folding) collapsed, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _type_cell(attr_type: Any) -> str:
    if isinstance(attr_type, dict):
        values = ", ".join(f"`{m.get('value', m['id'])}`" for m in attr_type.get("members") or [])
        return f"enum: {values}"
    return f"`{attr_type}`"


def _refs(item: Dict[str, Any]) -> str:
    refs = []
    for ref in item.get("attributes") or []:
        level = ref.get("requirement_level")
        level = level if isinstance(level, str) else next(iter(level), "") if isinstance(level, dict) else ""
        refs.append(f"`{ref.get('ref')}`" + (f" ({level})" if level else ""))
    upstream = ((item.get("annotations") or {}).get("ai_cost") or {}).get("upstream_attributes") or []
    refs += [f"`{name}` (GenAI registry)" for name in upstream]
    return ", ".join(refs)


def render_markdown(semconv_dir: Path = SEMCONV_DIR) -> str:
    """Return the text of semconv/attributes.md: every attribute, event and metric of the registry."""
    render(semconv_dir)  # the same checks as the module: complete definitions, no duplicates
    attributes, events, metrics = [], [], []
    for file, doc in load_registry(semconv_dir):
        for attr in doc.get("attributes") or []:
            attributes.append(f"| `{attr['key']}` | {_type_cell(attr['type'])} | {_cell(attr['brief'])} | "
                              f"{_cell(attr.get('stability', ''))} | `{file}` |")
        for event in doc.get("events") or []:
            events.append(f"| `{event['name']}` | {_cell(event['brief'])} | {_refs(event)} | `{file}` |")
        for metric in doc.get("metrics") or []:
            metrics.append(f"| `{metric['name']}` | {metric['instrument']} | `{metric['unit']}` | "
                           f"{_cell(metric['brief'])} | {_refs(metric)} | `{file}` |")
    lines = [
        "<!-- Generated from semconv/*.yaml by scripts/generate_semconv.py. Do not edit. -->",
        "# otel-ai-cost attributes, events and metrics",
        "",
        "Every name declared in this registry. The `gen_ai.*` names not listed here come from the",
        "OpenTelemetry GenAI semantic conventions.",
        "",
        f"## Attributes ({len(attributes)})",
        "",
        "| Attribute | Type | Description | Stability | File |",
        "|---|---|---|---|---|",
        *attributes,
    ]
    if events:
        lines += ["", f"## Span events ({len(events)})", "",
                  "| Event | Description | Attributes | File |", "|---|---|---|---|", *events]
    if metrics:
        lines += ["", f"## Metrics ({len(metrics)})", "",
                  "| Metric | Instrument | Unit | Description | Attributes | File |",
                  "|---|---|---|---|---|---|", *metrics]
    upstream = load_upstream(semconv_dir)
    if upstream:
        names = [f"`{a['key']}`" + (" (deprecated, read only)" if a.get("deprecated") else "")
                 for a in upstream.get("attributes") or []]
        names += [f"`{m['name']}` (metric)" for m in upstream.get("metrics") or []]
        lines += ["", f"## Upstream names the code uses ({len(names)})", "",
                  f"From the OpenTelemetry semantic conventions ({upstream.get('source', '')}), listed in "
                  f"`semconv/{UPSTREAM.as_posix()}`: " + ", ".join(names) + "."]
    return "\n".join(lines) + "\n"


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the generated module is out of date")
    args = parser.parse_args(argv)
    try:
        outputs = [(OUTPUT, render()), (OUTPUT_MD, render_markdown())]
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = 0
    for output, text in outputs:
        relative = output.relative_to(ROOT)
        if args.check:
            current = output.read_text(encoding="utf-8") if output.exists() else ""
            if current != text:
                print(
                    f"{relative} is out of date with semconv/; run `python scripts/generate_semconv.py`",
                    file=sys.stderr,
                )
                stale = 1
            else:
                print(f"{relative} is up to date")
        else:
            output.write_text(text, encoding="utf-8")
            print(f"wrote {relative}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
