"""The semconv/ registry is valid Weaver definition/2, and the code only uses names it declares."""
from __future__ import annotations

import ast
import copy
import importlib.util
import json
from pathlib import Path
from typing import Dict, List, Set

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SEMCONV = ROOT / "semconv"
SRC = ROOT / "src" / "otel_ai_cost"
SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "weaver-schemas"
REGISTRY_FILES = sorted(p for p in SEMCONV.glob("*.yaml") if p.name != "manifest.yaml")


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_semconv", ROOT / "scripts" / "generate_semconv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


def _validator(schema: dict) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator, instance) -> List[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


@pytest.fixture(scope="module")
def registry_validator():
    return _validator(json.loads((SCHEMAS / "semconv.schema.v2.json").read_text()))


def _manifest_schema(patched: bool) -> dict:
    schema = json.loads((SCHEMAS / "definition-manifest.v2.json").read_text())
    if patched:
        # Weaver reads schema_url from a plain string; the published JSON schema says object (see LICENSE-NOTE.md).
        schema = copy.deepcopy(schema)
        schema["$defs"]["SchemaUrl"] = {"type": "string", "pattern": r"^https?://[^/\s]+(/[^/\s]+)+$"}
    return schema


def _docs() -> Dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in REGISTRY_FILES}


def _attributes() -> List[dict]:
    return [a for doc in _docs().values() for a in doc.get("attributes") or []]


def _metrics() -> List[dict]:
    return [m for doc in _docs().values() for m in doc.get("metrics") or []]


def _declared_names() -> Set[str]:
    events = {e["name"] for doc in _docs().values() for e in doc.get("events") or []}
    return {a["key"] for a in _attributes()} | {m["name"] for m in _metrics()} | events


# --- schema validation


def test_registry_has_files():
    assert {p.name for p in REGISTRY_FILES} >= {"cost.yaml", "estimate.yaml", "pricing.yaml", "metrics.yaml"}


@pytest.mark.parametrize("path", REGISTRY_FILES, ids=lambda p: p.name)
def test_registry_file_matches_weaver_schema(path, registry_validator):
    doc = yaml.safe_load(path.read_text())
    assert doc["file_format"] == "definition/2"
    assert _errors(registry_validator, doc) == []


def test_manifest_matches_weaver_schema():
    manifest = yaml.safe_load((SEMCONV / "manifest.yaml").read_text())
    assert _errors(_validator(_manifest_schema(patched=True)), manifest) == []


def test_unpatched_manifest_schema_still_wants_an_object():
    # When this fails, upstream fixed the schema: drop the patch in _manifest_schema.
    manifest = yaml.safe_load((SEMCONV / "manifest.yaml").read_text())
    assert _errors(_validator(_manifest_schema(patched=False)), manifest) != []


def test_manifest_schema_rejects_a_url_without_version():
    validator = _validator(_manifest_schema(patched=True))
    assert _errors(validator, {"schema_url": "https://example.com"}) != []


def _minimal_registry() -> dict:
    return {
        "file_format": "definition/2",
        "attributes": [{"key": "ai_cost.x", "type": "int", "brief": "X.", "stability": "development"}],
        "metrics": [
            {"name": "ai_cost.y", "instrument": "counter", "unit": "{USD}", "brief": "Y.", "stability": "development"}
        ],
    }


def test_schema_accepts_minimal_registry(registry_validator):
    assert _errors(registry_validator, _minimal_registry()) == []


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda d: d["attributes"][0].pop("stability"), id="attribute-without-stability"),
        pytest.param(lambda d: d["metrics"][0].pop("stability"), id="metric-without-stability"),
        pytest.param(lambda d: d["metrics"][0].update(instrument="summary"), id="bad-instrument"),
        pytest.param(lambda d: d["attributes"][0].update(type="float"), id="bad-type"),
        pytest.param(lambda d: d["attributes"][0].update(stabilty="development"), id="misspelt-field"),
        pytest.param(lambda d: d.update(file_format="definition/1"), id="bad-file-format"),
    ],
)
def test_schema_rejects_broken_registry(registry_validator, break_it):
    doc = _minimal_registry()
    break_it(doc)
    assert _errors(registry_validator, doc) != []


# --- registry content


def test_no_duplicate_names():
    names = [a["key"] for a in _attributes()] + [m["name"] for m in _metrics()]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_every_definition_is_in_development_and_documented():
    for attr in _attributes():
        assert attr["stability"] == "development", attr["key"]
        assert attr["brief"].strip(), attr["key"]
        assert attr.get("examples") is not None, f"{attr['key']} has no examples"
    for metric in _metrics():
        assert metric["stability"] == "development", metric["name"]


def _members(key: str) -> List[str]:
    (attr,) = [a for a in _attributes() if a["key"] == key]
    return [m["value"] for m in attr["type"]["members"]]


@pytest.mark.parametrize(
    "key, values",
    [
        ("gen_ai.usage.cost.source", ["provider", "local"]),
        ("ai_cost.estimate.method", ["tiktoken", "heuristic", "upper_bound"]),
        ("ai_cost.estimate.output_basis", ["max_tokens", "model_limit", "default"]),
        ("ai_cost.pricing.status", ["priced", "unknown_model", "no_usage", "provider", "partial", "unpriced"]),
        ("ai_cost.usage.source", ["provider", "estimated"]),
    ],
)
def test_enum_members(key, values):
    assert _members(key) == values


def test_examples_have_the_attribute_type():
    python_types = {"int": (int,), "double": (int, float), "string": (str,), "boolean": (bool,)}
    for attr in _attributes():
        examples = attr["examples"] if isinstance(attr["examples"], list) else [attr["examples"]]
        if isinstance(attr["type"], dict):
            assert set(examples) <= set(_members(attr["key"])), attr["key"]
            continue
        if attr["type"].endswith("[]"):  # an array attribute: each example is a list of the item type
            item_type = attr["type"][:-2]
            for example in examples:
                assert isinstance(example, list) and example, (attr["key"], example)
                assert all(isinstance(v, python_types[item_type]) for v in example), (attr["key"], example)
            continue
        for example in examples:
            # bool is an int in Python, but not in the registry.
            assert isinstance(example, python_types[attr["type"]]), (attr["key"], example)
            assert isinstance(example, bool) == (attr["type"] == "boolean"), (attr["key"], example)


def test_gen_ai_cost_attributes_say_they_follow_the_proposal():
    for attr in _attributes():
        if attr["key"].startswith("gen_ai."):
            assert attr["key"].startswith("gen_ai.usage.cost."), "only the PR #443 names may use gen_ai.*"
            assert "PR #443" in attr["note"], attr["key"]


def test_cost_metric():
    (metric,) = [m for m in _metrics() if m["name"] == "ai_cost.client.cost"]
    assert (metric["instrument"], metric["unit"]) == ("counter", "{USD}")
    refs = [a["ref"] for a in metric["attributes"]]
    assert set(refs) <= _declared_names(), "every ref must resolve inside this registry"
    upstream = metric["annotations"]["ai_cost"]["upstream_attributes"]
    assert set(refs) | set(upstream) == {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.cost.source",
        "ai_cost.pricing.status",
    }


# --- generated module


def test_generated_module_is_current():
    assert (SRC / "_semconv.py").read_text() == generator.render(), (
        "src/otel_ai_cost/_semconv.py is out of date: run `python scripts/generate_semconv.py`"
    )


def test_generated_module_exposes_the_names_code_imports():
    from otel_ai_cost import _semconv as sc

    assert sc.AI_COST_ESTIMATE_AMOUNT == "ai_cost.estimate.amount"
    assert sc.GEN_AI_USAGE_COST_SOURCE == "gen_ai.usage.cost.source"
    assert sc.AI_COST_CLIENT_COST == "ai_cost.client.cost"
    assert sc.AI_COST_CLIENT_COST_UNIT == "{USD}"
    assert sc.AiCostPricingStatusValues.UNKNOWN_MODEL == "unknown_model"
    assert sc.GenAiUsageCostSourceValues.LOCAL == "local"
    for key in _declared_names():
        assert getattr(sc, generator.constant_name(key)) == key


# Every name in the provisional module that other code was written against.
CONTRACT_NAMES = """
GEN_AI_USAGE_COST_AMOUNT GEN_AI_USAGE_COST_CURRENCY GEN_AI_USAGE_COST_SOURCE
AI_COST_COST_INPUT AI_COST_COST_CACHE_READ AI_COST_COST_CACHE_WRITE AI_COST_COST_OUTPUT
AI_COST_COST_REASONING AI_COST_COST_AUDIO_INPUT AI_COST_COST_AUDIO_OUTPUT AI_COST_COST_IMAGE
AI_COST_COST_REQUEST AI_COST_ESTIMATE_INPUT_TOKENS AI_COST_ESTIMATE_OUTPUT_TOKENS
AI_COST_ESTIMATE_AMOUNT AI_COST_ESTIMATE_METHOD AI_COST_ESTIMATE_OUTPUT_BASIS
AI_COST_PRICING_STATUS AI_COST_PRICING_CATALOG_VERSION AI_COST_PRICING_MODEL
AI_COST_PRICING_SERVICE_TIER AI_COST_PRICING_CONTEXT_TIER AI_COST_USAGE_SOURCE AI_COST_CLIENT_COST
""".split()


def test_contract_names_survive_generation():
    namespace: dict = {}
    exec(generator.render(), namespace)
    assert [n for n in CONTRACT_NAMES if n not in namespace] == []


def test_names_imported_from_semconv_exist():
    from otel_ai_cost import _semconv as sc

    missing = []
    for path in [*SRC.rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_semconv"):
                missing += [f"{path}: {a.name}" for a in node.names if a.name != "*" and not hasattr(sc, a.name)]
    assert missing == []


def test_check_mode(tmp_path, monkeypatch, capsys):
    out = tmp_path / "_semconv.py"
    table = tmp_path / "attributes.md"
    monkeypatch.setattr(generator, "ROOT", tmp_path)
    monkeypatch.setattr(generator, "OUTPUT", out)
    monkeypatch.setattr(generator, "OUTPUT_MD", table)
    out.write_text("# stale\n")
    assert generator.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    assert out.read_text() == generator.render()
    assert table.read_text() == generator.render_markdown()


def test_check_mode_fails_on_a_stale_markdown_table(tmp_path, monkeypatch, capsys):
    out = tmp_path / "_semconv.py"
    table = tmp_path / "attributes.md"
    monkeypatch.setattr(generator, "ROOT", tmp_path)
    monkeypatch.setattr(generator, "OUTPUT", out)
    monkeypatch.setattr(generator, "OUTPUT_MD", table)
    out.write_text(generator.render())
    table.write_text(generator.render_markdown().replace("| `ai_cost.usage.source` |", "| `ai_cost.usage.src` |"))
    assert generator.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "attributes.md is out of date" in err
    assert "_semconv.py is out of date" not in err


# --- generated Markdown table


def test_generated_markdown_table_is_current():
    assert (SEMCONV / "attributes.md").read_text() == generator.render_markdown(), (
        "semconv/attributes.md is out of date: run `python scripts/generate_semconv.py`"
    )


def _table_rows(text: str) -> Dict[str, List[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_markdown_table_lists_every_declared_name_once():
    text = generator.render_markdown()
    rows = _table_rows(text)
    assert set(rows) == _declared_names()
    assert len([line for line in text.splitlines() if line.startswith("| `")]) == len(_declared_names())
    for attr in _attributes():
        cells = rows[attr["key"]]
        assert " ".join(attr["brief"].split()) == cells[2].replace("\\|", "|")
        if isinstance(attr["type"], dict):
            assert cells[1] == "enum: " + ", ".join(f"`{m['value']}`" for m in attr["type"]["members"])
        else:
            assert cells[1] == f"`{attr['type']}`"
    for metric in _metrics():
        assert rows[metric["name"]][2] == f"`{metric['unit']}`"


def test_markdown_table_escapes_pipes(tmp_path):
    attr = {"key": "ai_cost.x", "type": "string", "brief": "A | B,\n  folded.", "stability": "development"}
    _write(tmp_path, "a.yaml", {"file_format": "definition/2", "attributes": [attr]})
    assert ("| `ai_cost.x` | `string` | A \\| B, folded. | development | `a.yaml` |"
            in generator.render_markdown(tmp_path))


def _write(directory: Path, name: str, doc: dict) -> None:
    (directory / name).write_text(yaml.safe_dump(doc))


def test_generator_rejects_a_key_declared_twice(tmp_path):
    attr = {"key": "ai_cost.x", "type": "int", "brief": "X.", "stability": "development"}
    _write(tmp_path, "a.yaml", {"file_format": "definition/2", "attributes": [attr]})
    _write(tmp_path, "b.yaml", {"file_format": "definition/2", "attributes": [attr]})
    with pytest.raises(generator.RegistryError, match=r"semconv/b.yaml: ai_cost.x and semconv/a.yaml"):
        generator.render(tmp_path)


def test_generator_names_file_and_key_of_an_incomplete_attribute(tmp_path):
    _write(tmp_path, "a.yaml", {"file_format": "definition/2", "attributes": [{"key": "ai_cost.x", "type": "int"}]})
    with pytest.raises(generator.RegistryError, match=r"semconv/a.yaml: attribute ai_cost.x has no `brief`"):
        generator.render(tmp_path)


def test_generator_ignores_the_manifest(tmp_path):
    (tmp_path / "manifest.yaml").write_text("schema_url: https://example.com/x/0.1.0\n")
    _write(tmp_path, "a.yaml", _minimal_registry())
    text = generator.render(tmp_path)
    assert 'AI_COST_X: Final = "ai_cost.x"' in text
    assert 'AI_COST_Y_UNIT: Final = "{USD}"' in text
    assert "manifest" not in text


# --- no undeclared names in the code


def undeclared_names(source: str, declared: Set[str]) -> List[str]:
    """ai_cost.* / gen_ai.usage.cost.* string literals in ``source`` that the registry does not declare.

    A literal ending in "." or the leading text of an f-string is a prefix: some declared name must start with it.
    """
    namespaces = ("ai_cost.", "gen_ai.usage.cost.")
    tree = ast.parse(source)
    f_string_parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            head = node.values[0] if node.values else None
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value.startswith(namespaces):
                if not any(name.startswith(head.value) for name in declared):
                    found.append(head.value + "{...}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in f_string_parts:
            text = node.value
            if not text.startswith(namespaces) or any(c.isspace() for c in text):
                continue  # not a name (e.g. a docstring that mentions one)
            ok = any(n.startswith(text) for n in declared) if text.endswith(".") else text in declared
            if not ok:
                found.append(text)
    return found


def test_scanner_reports_undeclared_names():
    source = 'A = "ai_cost.tenant"\nB = f"ai_cost.budget.{x}"\nC = "ai_cost.cost."\nD = "gen_ai.usage.cost.amount"\n'
    assert undeclared_names(source, {"ai_cost.cost.input", "gen_ai.usage.cost.amount"}) == [
        "ai_cost.tenant",
        "ai_cost.budget.{...}",
    ]


def test_code_uses_only_declared_names():
    declared = _declared_names()
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "_semconv.py":
            continue
        problems += [f"{path.relative_to(ROOT)}: {name}" for name in undeclared_names(path.read_text(), declared)]
    assert problems == [], "declare these in semconv/ and run scripts/generate_semconv.py"
