"""Every attribute and metric name the package writes or reads is spelled once, in the generated
module (src/otel_ai_cost/_semconv.py, from semconv/*.yaml and semconv/upstream/gen_ai.yaml): no
other module of the package may spell a `gen_ai.*`, `ai_cost.*`, `server.*` or `error.type` name."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "otel_ai_cost"
sys.path.insert(0, str(ROOT / "scripts"))
import generate_semconv as generator  # noqa: E402

# A string that is exactly an attribute or metric name of these namespaces (prose, log messages and
# f-strings are not names and contain spaces or other characters).
NAME = re.compile(r"^(gen_ai|ai_cost|server|error)\.[a-z0-9_]+(\.[a-z0-9_]+)*$")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _spelled_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every string constant of ``path`` that is exactly a semconv name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        and NAME.match(node.value)
    ]


def test_no_module_spells_a_semconv_name():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted(SRC.rglob("*.py")) if path.name != "_semconv.py"
        for line, name in _spelled_names(path)
    ]
    assert found == [], "use the constants of otel_ai_cost._semconv instead:\n" + "\n".join(found)


def test_the_scan_finds_a_spelled_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""gen_ai.request.model in a docstring is prose."""\nx = {"gen_ai.request.model": 1}\n')
    assert _spelled_names(module) == [(2, "gen_ai.request.model")]



def test_upstream_names_are_generated_with_their_values():
    from otel_ai_cost import _semconv as sc

    doc = yaml.safe_load((ROOT / "semconv" / "upstream" / "gen_ai.yaml").read_text(encoding="utf-8"))
    for attr in doc["attributes"]:
        assert getattr(sc, generator.constant_name(attr["key"])) == attr["key"]
        for value in attr.get("values") or []:
            values = getattr(sc, generator.class_name(attr["key"]))
            assert getattr(values, generator.constant_name(value)) == value
    for metric in doc["metrics"]:
        assert getattr(sc, generator.constant_name(metric["name"])) == metric["name"]
    assert sc.GenAiProviderNameValues.AWS_BEDROCK == "aws.bedrock"
    assert sc.GEN_AI_CLIENT_TOKEN_USAGE_UNIT == "{token}"


def test_an_upstream_name_clashing_with_ours_is_refused(tmp_path):
    for path in (ROOT / "semconv").glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "upstream").mkdir()
    (tmp_path / "upstream" / "gen_ai.yaml").write_text(
        "attributes:\n  - {key: gen_ai.usage.cost.amount, brief: A clash.}\n", encoding="utf-8"
    )
    try:
        generator.render(tmp_path)
    except generator.RegistryError as exc:
        assert "GEN_AI_USAGE_COST_AMOUNT" in str(exc)
    else:
        raise AssertionError("a clash between an upstream name and ours was not refused")
