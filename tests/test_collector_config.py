"""`otel-ai-cost collector-config` (the stock-collector OTTL config) and the Go processor's golden file
agree with the Python engine. The OTTL config is run in a real transform processor by the Go parity
test (collector/ottlparity); here: the committed file is the generator's current output."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict

import yaml

from otel_ai_cost import _semconv as sc
from otel_ai_cost._span_pricing import span_cost_attributes
from otel_ai_cost.cli import main
from otel_ai_cost.collector_config import LIMITATIONS, generate, render
from otel_ai_cost.cost import usage_from_attributes
from otel_ai_cost.pricing import Catalog

ROOT = Path(__file__).resolve().parent.parent
STOCK = ROOT / "collector" / "stock-collector.yaml"
GOLDEN = ROOT / "collector" / "processor" / "aicostprocessor" / "testdata" / "golden"


def test_committed_stock_config_is_the_generators_output() -> None:
    assert STOCK.read_text(encoding="utf-8") == render(), (
        "collector/stock-collector.yaml is stale: "
        "run `otel-ai-cost collector-config -o collector/stock-collector.yaml`")


def test_cli_writes_the_config(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "stock.yaml"
    assert main(["collector-config", "--provider", "anthropic", "-o", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    group = doc["processors"]["transform/ai_cost"]["trace_statements"][0]
    table = [s for s in group["statements"] if s.startswith('set(span.cache["p"], {')]
    assert table and all('span.cache["prov"] == "anthropic"' in s for s in table)
    assert any('"id": "claude-sonnet-4-20250514"' in s and '"claude-sonnet-4-0"' in s for s in table)
    assert main(["collector-config", "--provider", "anthropic"]) == 0
    assert capsys.readouterr().out == out.read_text()


def test_prices_are_integer_femto_dollars_with_the_engines_fallbacks(tmp_path: Path) -> None:
    user = tmp_path / "p.json"
    user.write_text(json.dumps({"schema_version": 1, "models": [
        {"id": "m1", "provider": "openai", "prices": {"input": "2.5", "output": "10"}},
        {"id": "m2", "provider": "openai", "prices": {"input": "0.0000000001"}},  # too precise for femto
    ]}))
    catalog = Catalog.load(user, include_default=False)
    statements = generate(catalog)["transform/ai_cost"]["trace_statements"][0]["statements"]
    table = [s for s in statements if s.startswith('set(span.cache["p"], {')]
    # cache_read and cache_write fall back to input, reasoning to output.
    assert table == ['set(span.cache["p"], {"id": "m1", "i": 2500000000, "o": 10000000000, "cr": 2500000000, '
                     '"cw": 2500000000, "r": 10000000000}) '
                     'where span.cache["prov"] == "openai" and (span.cache["m"] == "m1")']


def test_limitations_are_in_the_readme() -> None:
    readme = (ROOT / "collector" / "README.md").read_text(encoding="utf-8")
    for line in LIMITATIONS:
        assert line in readme, line


def _inputs() -> Dict[str, Any]:
    return json.loads((GOLDEN / "spans_in.json").read_text())


def test_go_golden_spans_agree_with_the_python_engine() -> None:
    """Every golden span the Python package can price (semconv names) has the Go processor's exact numbers."""
    doc = _inputs()
    expected = json.loads((GOLDEN / "spans_out.json").read_text())
    catalog = Catalog.load()
    catalog.add_azure_deployments(doc["azure_deployments"])
    checked = 0
    for span in doc["spans"]:
        attrs = span["attributes"]
        if attrs.get("gen_ai.operation.name") not in ("chat", "text_completion", "generate_content", "embeddings"):
            continue
        if sc.GEN_AI_USAGE_COST_AMOUNT in attrs:
            continue
        if sc.AI_COST_PRICING_PRICED_ON in attrs:  # priced on another span: neither adds a cost
            assert expected[span["name"]] == attrs, span["name"]
            continue
        usage = usage_from_attributes(attrs)
        if usage is None:
            continue
        python = span_cost_attributes(attrs, usage, catalog)
        go = {k: v for k, v in expected[span["name"]].items() if k not in attrs}
        assert python.keys() == go.keys(), span["name"]
        for key, value in python.items():
            if isinstance(value, float):
                assert math.isclose(value, go[key], rel_tol=0, abs_tol=0), (span["name"], key, value, go[key])
            else:
                assert value == go[key], (span["name"], key)
        checked += 1
    assert checked >= 15
