"""The bundled pricing catalog (the data itself), resolution rules, malformed files, and the CLI."""
from __future__ import annotations

import argparse
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import jsonschema
import pytest

from otel_ai_cost.errors import CatalogError, ConfigError
from otel_ai_cost.pricing import PRICE_FIELDS, Catalog, ModelPrice, _catalog, _cli, default_catalog

DATA = resources.files("otel_ai_cost.pricing").joinpath("data")
REQUIRED_PROVIDERS = {
    "openai", "azure.ai.openai", "anthropic", "gcp.gemini", "gcp.vertex_ai", "aws.bedrock",
    "mistral_ai", "cohere", "groq", "deepseek", "x_ai",
}


@pytest.fixture(scope="module")
def bundled() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def raw() -> Dict[str, Any]:
    return json.loads(DATA.joinpath("catalog.json").read_text("utf-8"))


def _all_price_sets(entry: Dict[str, Any]):
    yield "prices", entry["prices"]
    for tier, prices in entry.get("service_tiers", {}).items():
        yield f"service_tiers.{tier}", prices
    for i, ctx in enumerate(entry.get("context_tiers", [])):
        yield f"context_tiers[{i}].prices", ctx["prices"]
        for tier, prices in ctx.get("service_tiers", {}).items():
            yield f"context_tiers[{i}].service_tiers.{tier}", prices


# --- the data ---------------------------------------------------------------------------------


def test_bundled_catalog_validates_against_schema(raw):
    schema = json.loads(DATA.joinpath("catalog.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(raw)
    # The bundled file is not validated at load time (too slow), so the full check lives here.
    _catalog.validate_document(raw, "catalog.json")
    assert raw["schema_version"] == 1 and raw["currency"] == "USD" and raw["catalog_version"]


def test_every_price_is_a_non_negative_decimal_string(raw):
    for entry in raw["models"]:
        for where, prices in _all_price_sets(entry):
            for name, value in prices.items():
                assert name in PRICE_FIELDS, (entry["id"], where, name)
                assert isinstance(value, str) and Decimal(value) >= 0, (entry["id"], where, name, value)
                assert "E" not in value.upper(), (entry["id"], where, value)  # written out, never exponent form


def test_every_entry_has_a_source_and_an_effective_date(raw):
    for entry in raw["models"]:
        assert entry.get("source"), entry["id"]
        assert entry.get("effective_date"), entry["id"]


def test_no_two_models_of_a_provider_share_an_id_or_alias(raw):
    seen: Dict[tuple, str] = {}
    for entry in raw["models"]:
        for name in [entry["id"], *entry.get("aliases", [])]:
            key = (entry["provider"], name)
            assert key not in seen, f"{key} used by {seen.get(key)} and {entry['id']}"
            seen[key] = entry["id"]


def test_context_tier_thresholds_ascend(raw):
    for entry in raw["models"]:
        thresholds = [t["above_input_tokens"] for t in entry.get("context_tiers", [])]
        assert thresholds == sorted(set(thresholds)), entry["id"]


def test_models_are_sorted_so_rebuilds_are_stable(raw):
    keys = [(m["provider"], m["id"]) for m in raw["models"]]
    assert keys == sorted(keys)


def test_every_required_provider_is_present_with_many_models(bundled):
    counts: Dict[str, int] = {}
    for m in bundled.entries():
        counts[m.provider] = counts.get(m.provider, 0) + 1
    assert REQUIRED_PROVIDERS <= set(counts)
    # Facts about LiteLLM 1.109.1, the import source: how many priced models each provider has there.
    minimums = {"openai": 200, "azure.ai.openai": 250, "aws.bedrock": 450, "gcp.vertex_ai": 150, "gcp.gemini": 60,
                "mistral_ai": 50, "x_ai": 40, "anthropic": 25, "cohere": 15, "deepseek": 5, "groq": 5}
    for provider, minimum in minimums.items():
        assert counts[provider] >= minimum, (provider, counts[provider])


def test_bundled_catalog_is_small_enough_to_ship():
    assert len(DATA.joinpath("catalog.json").read_bytes()) < 3_000_000


D = Decimal

# Published list prices, USD per 1M tokens, written down from the providers' pricing pages
# (openai.com/api/pricing, anthropic.com/pricing, ai.google.dev/gemini-api/docs/pricing,
# aws.amazon.com/bedrock/pricing) - not copied from the catalog file.
LIST_PRICES = [
    ("gpt-4o", "openai", {"input": D("2.50"), "output": D("10.00"), "cache_read": D("1.25")}),
    ("gpt-4o-mini", "openai", {"input": D("0.15"), "output": D("0.60"), "cache_read": D("0.075")}),
    ("gpt-4.1", "openai", {"input": D("2.00"), "output": D("8.00"), "cache_read": D("0.50")}),
    ("gpt-4.1-mini", "openai", {"input": D("0.40"), "output": D("1.60")}),
    ("gpt-5", "openai", {"input": D("1.25"), "output": D("10.00"), "cache_read": D("0.125")}),
    ("gpt-5-mini", "openai", {"input": D("0.25"), "output": D("2.00")}),
    ("gpt-5-nano", "openai", {"input": D("0.05"), "output": D("0.40")}),
    ("o1", "openai", {"input": D("15.00"), "output": D("60.00"), "cache_read": D("7.50")}),
    ("o3-mini", "openai", {"input": D("1.10"), "output": D("4.40")}),
    ("o3", "openai", {"input": D("2.00"), "output": D("8.00")}),
    ("text-embedding-3-small", "openai", {"input": D("0.02")}),
    ("text-embedding-3-large", "openai", {"input": D("0.13")}),
    ("claude-sonnet-4-20250514", "anthropic",
     {"input": D("3"), "output": D("15"), "cache_write": D("3.75"), "cache_write_1h": D("6"), "cache_read": D("0.30")}),
    ("claude-sonnet-4-5", "anthropic",
     {"input": D("3"), "output": D("15"), "cache_write": D("3.75"), "cache_write_1h": D("6"), "cache_read": D("0.30")}),
    ("claude-haiku-4-5", "anthropic",
     {"input": D("1"), "output": D("5"), "cache_write": D("1.25"), "cache_write_1h": D("2"), "cache_read": D("0.10")}),
    ("claude-opus-4-1-20250805", "anthropic", {"input": D("15"), "output": D("75"), "cache_read": D("1.50")}),
    ("gemini-2.5-pro", "gcp.gemini", {"input": D("1.25"), "output": D("10")}),
    ("gemini-2.5-flash", "gcp.gemini", {"input": D("0.30"), "output": D("2.50")}),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "aws.bedrock", {"input": D("3"), "output": D("15")}),
    ("gpt-4o", "azure.ai.openai", {"input": D("2.50"), "output": D("10.00")}),
]


@pytest.mark.parametrize("model,provider,expected", LIST_PRICES, ids=[f"{p}/{m}" for m, p, _ in LIST_PRICES])
def test_spot_check_against_published_list_prices(bundled, model, provider, expected):
    entry = bundled.resolve(model, provider)
    assert entry is not None and entry.provider == provider
    assert {name: getattr(entry.prices, name) for name in expected} == expected


def test_spot_check_tiers_against_published_list_prices(bundled):
    gemini = bundled.resolve("gemini-2.5-pro", "gcp.gemini")
    assert [(t.above_input_tokens, t.prices.input, t.prices.output) for t in gemini.context_tiers] == [
        (200000, D("2.50"), D("15"))]
    gpt5 = bundled.resolve("gpt-5", "openai")
    assert (gpt5.service_tiers["flex"].input, gpt5.service_tiers["flex"].output) == (D("0.625"), D("5"))
    assert (gpt5.service_tiers["batch"].input, gpt5.service_tiers["batch"].output) == (D("0.625"), D("5"))
    gpt4o = bundled.resolve("gpt-4o", "openai")
    assert (gpt4o.service_tiers["batch"].input, gpt4o.service_tiers["batch"].output) == (D("1.25"), D("5"))
    sonnet4 = bundled.resolve("claude-sonnet-4-20250514", "anthropic")
    assert (sonnet4.context_tiers[0].above_input_tokens, sonnet4.context_tiers[0].prices.input,
            sonnet4.context_tiers[0].prices.output) == (200000, D("6"), D("22.50"))


# --- resolution rules (on a small catalog so each rule is isolated) -----------------------------


def _entry(id: str, provider: str, input: str, **extra: Any) -> Dict[str, Any]:
    return {"id": id, "provider": provider, "prices": {"input": input, "output": "1"}, **extra}


def _write(path: Path, models: List[Dict[str, Any]], **top: Any) -> Path:
    path.write_text(json.dumps({"schema_version": 1, **top, "models": models}), encoding="utf-8")
    return path


@pytest.fixture()
def small(tmp_path) -> Catalog:
    models = [
        _entry("gpt-4o", "openai", "2.5"),
        _entry("gpt-4o-2024-08-06", "openai", "2.4"),
        _entry("o1-pro", "openai", "150"),
        _entry("gpt-4o", "azure.ai.openai", "2.75"),
        _entry("claude-3-5-sonnet-20241022", "anthropic", "3", aliases=["claude-3-5-sonnet-latest"]),
        _entry("claude-sonnet-4-5", "anthropic", "3"),
        _entry("claude-sonnet-4-5", "gcp.vertex_ai", "3.3"),
        _entry("anthropic.claude-sonnet-4-20250514-v1:0", "aws.bedrock", "3"),
        _entry("gemini-2.5-pro", "gcp.gemini", "1.25"),
        _entry("gemini-2.5-pro", "gcp.vertex_ai", "1.26"),
    ]
    return Catalog.load(_write(tmp_path / "small.json", models, catalog_version="t"), include_default=False)


def _key(price: Optional[ModelPrice]):
    return None if price is None else (price.provider, price.id)


@pytest.mark.parametrize("model,provider,expected", [
    # exact id, within the given provider or preferring the model maker's own API
    ("gpt-4o", "openai", ("openai", "gpt-4o")),
    ("gpt-4o", None, ("openai", "gpt-4o")),
    ("gpt-4o", "azure.ai.openai", ("azure.ai.openai", "gpt-4o")),
    ("claude-sonnet-4-5", None, ("anthropic", "claude-sonnet-4-5")),
    ("gemini-2.5-pro", None, ("gcp.gemini", "gemini-2.5-pro")),
    ("gemini-2.5-pro", "gcp.vertex_ai", ("gcp.vertex_ai", "gemini-2.5-pro")),
    ("gemini-2.5-pro", "gcp.gen_ai", ("gcp.gemini", "gemini-2.5-pro")),
    # aliases
    ("claude-3-5-sonnet-latest", None, ("anthropic", "claude-3-5-sonnet-20241022")),
    ("claude-3-5-sonnet-latest", "anthropic", ("anthropic", "claude-3-5-sonnet-20241022")),
    # provider/model prefixes
    ("openai/gpt-4o", None, ("openai", "gpt-4o")),
    ("azure/gpt-4o", None, ("azure.ai.openai", "gpt-4o")),
    ("bedrock/anthropic.claude-sonnet-4-20250514-v1:0", None,
     ("aws.bedrock", "anthropic.claude-sonnet-4-20250514-v1:0")),
    # Bedrock cross-region inference profiles and ARNs
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "aws.bedrock",
     ("aws.bedrock", "anthropic.claude-sonnet-4-20250514-v1:0")),
    ("eu.anthropic.claude-sonnet-4-20250514-v1:0", None, ("aws.bedrock", "anthropic.claude-sonnet-4-20250514-v1:0")),
    ("global.anthropic.claude-sonnet-4-20250514-v1:0", None,
     ("aws.bedrock", "anthropic.claude-sonnet-4-20250514-v1:0")),
    ("us-gov.anthropic.claude-sonnet-4-20250514-v1:0", None,
     ("aws.bedrock", "anthropic.claude-sonnet-4-20250514-v1:0")),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0", None,
     ("aws.bedrock", "anthropic.claude-sonnet-4-20250514-v1:0")),
    # dated snapshots: a priced snapshot is never collapsed; an unpriced one falls back to its model
    ("gpt-4o-2024-08-06", "openai", ("openai", "gpt-4o-2024-08-06")),
    ("gpt-4o-2024-11-20", "openai", ("openai", "gpt-4o")),
    ("claude-sonnet-4-5-20250929", "anthropic", ("anthropic", "claude-sonnet-4-5")),
    ("claude-sonnet-4-5@20250929", "gcp.vertex_ai", ("gcp.vertex_ai", "claude-sonnet-4-5")),
    ("openai/gpt-4o-2024-11-20", None, ("openai", "gpt-4o")),
    # Azure OpenAI falls back to OpenAI's entry when it has none of its own
    ("o1-pro", "azure.ai.openai", ("openai", "o1-pro")),
    ("gpt-4o-2024-11-20", "azure.ai.openai", ("azure.ai.openai", "gpt-4o")),
    # unknown: None, never a zero price
    ("no-such-model", None, None),
    ("no-such-model", "openai", None),
    ("gpt-4o", "groq", None),
    ("o1-pro", "aws.bedrock", None),
    ("", None, None),
])
def test_resolution_rules(small, model, provider, expected):
    assert _key(small.resolve(model, provider)) == expected


def test_only_azure_falls_back_to_openai(small):
    assert small.resolve("o1-pro", "gcp.vertex_ai") is None
    assert small.resolve("o1-pro", "aws.bedrock") is None


def test_azure_deployment_names(small):
    assert small.resolve("my-prod-deploy", "azure.ai.openai") is None
    small.add_azure_deployments({"my-prod-deploy": "gpt-4o", "reasoner": "o1-pro"})
    assert _key(small.resolve("my-prod-deploy", "azure.ai.openai")) == ("azure.ai.openai", "gpt-4o")
    assert _key(small.resolve("my-prod-deploy")) == ("azure.ai.openai", "gpt-4o")
    assert _key(small.resolve("reasoner", "azure.ai.openai")) == ("openai", "o1-pro")
    assert small.resolve("my-prod-deploy", "openai") is None  # deployment names are Azure's only


def test_azure_deployments_naming_each_other_do_not_loop(small):
    small.add_azure_deployments({"a": "b", "b": "a", "c": "d-2024-01-01", "d": "c-2024-01-01"})
    assert small.resolve("a", "azure.ai.openai") is None
    assert small.resolve("c", "azure.ai.openai") is None


def test_resolve_is_memoised_and_bounded(small, monkeypatch):
    monkeypatch.setattr(_catalog, "_MEMO_SIZE", 8)
    first = small.resolve("gpt-4o", "openai")
    assert small.resolve("gpt-4o", "openai") is first
    for i in range(50):
        small.resolve(f"unknown-{i}")
    assert len(small._memo) <= 8
    assert small.resolve("gpt-4o", "openai") is first


def test_bundled_resolution_of_real_names(bundled):
    assert _key(bundled.resolve("gpt-4o-2024-08-06")) == ("openai", "gpt-4o-2024-08-06")  # priced itself
    assert _key(bundled.resolve("gpt-4o-2099-01-01")) == ("openai", "gpt-4o")
    assert bundled.resolve("us.anthropic.claude-sonnet-4-20250514-v1:0").provider == "aws.bedrock"
    assert _key(bundled.resolve("openai/gpt-4o")) == ("openai", "gpt-4o")
    assert _key(bundled.resolve("claude-3-5-sonnet-latest")) == ("anthropic", "claude-3-5-sonnet-20241022")
    assert _key(bundled.resolve("gemini/gemini-2.5-pro")) == ("gcp.gemini", "gemini-2.5-pro")
    assert bundled.resolve("definitely-not-a-model") is None


# --- loading, overriding, environment ---------------------------------------------------------


def test_user_file_overrides_and_extends_by_provider_and_id(tmp_path):
    user = _write(tmp_path / "mine.json", [
        _entry("gpt-4o", "openai", "2.0", source="contract 2026-Q4", effective_date="2026-10-01"),
        _entry("my-finetune", "openai", "9"),
        _entry("llama-3-70b", "vllm", "0.5", mode="chat"),
    ])
    catalog = Catalog.load(user)
    assert catalog.version.endswith("+user") and catalog.version.startswith(Catalog.load().version)
    assert catalog.resolve("gpt-4o", "openai").prices.input == Decimal("2.0")
    assert catalog.resolve("gpt-4o", "openai").source == "contract 2026-Q4"
    assert catalog.resolve("gpt-4o", "azure.ai.openai").prices.input == Decimal("2.5")  # other provider untouched
    assert catalog.resolve("my-finetune").prices.input == Decimal("9")
    assert catalog.resolve("llama-3-70b", "vllm").mode == "chat"
    assert len(catalog) == len(Catalog.load()) + 2


def test_later_files_win(tmp_path):
    a = _write(tmp_path / "a.json", [_entry("m", "openai", "1")], catalog_version="a")
    b = _write(tmp_path / "b.json", [_entry("m", "openai", "2")])
    catalog = Catalog.load(a, b, include_default=False)
    assert catalog.resolve("m").prices.input == Decimal("2")
    assert catalog.version == "a"


def test_default_catalog_reads_environment(tmp_path, monkeypatch):
    user = _write(tmp_path / "mine.json", [_entry("house-model", "openai", "7")])
    monkeypatch.setenv("OTEL_AI_COST_PRICING_FILES", str(user))
    monkeypatch.setenv("OTEL_AI_COST_AZURE_DEPLOYMENTS", "prod-4o = gpt-4o, cheap=gpt-4o-mini")
    default_catalog.cache_clear()
    try:
        catalog = default_catalog()
        assert default_catalog() is catalog  # cached
        assert catalog.version.endswith("+user")
        assert catalog.resolve("house-model").prices.input == Decimal("7")
        assert _key(catalog.resolve("prod-4o", "azure.ai.openai")) == ("azure.ai.openai", "gpt-4o")
        assert _key(catalog.resolve("cheap", "azure.ai.openai")) == ("azure.ai.openai", "gpt-4o-mini")
    finally:
        default_catalog.cache_clear()


@pytest.mark.parametrize("value,bad", [("prod-4o", "prod-4o"), ("a=gpt-4o,=gpt-4o", "=gpt-4o"), ("a=", "a=")])
def test_malformed_azure_deployments_env_names_variable_and_item(monkeypatch, value, bad):
    monkeypatch.setenv("OTEL_AI_COST_AZURE_DEPLOYMENTS", value)
    monkeypatch.delenv("OTEL_AI_COST_PRICING_FILES", raising=False)
    default_catalog.cache_clear()
    try:
        with pytest.raises(ConfigError) as info:
            default_catalog()
    finally:
        default_catalog.cache_clear()
    assert "OTEL_AI_COST_AZURE_DEPLOYMENTS" in str(info.value) and repr(bad) in str(info.value)


def test_missing_pricing_file_in_env_is_a_config_error(monkeypatch, tmp_path):
    missing = str(tmp_path / "nope.json")
    monkeypatch.setenv("OTEL_AI_COST_PRICING_FILES", missing)
    default_catalog.cache_clear()
    try:
        with pytest.raises(ConfigError, match="OTEL_AI_COST_PRICING_FILES"):
            default_catalog()
    finally:
        default_catalog.cache_clear()


# --- malformed files: CatalogError naming the file, the key and the reason --------------------


def _doc(**model_changes: Any) -> Dict[str, Any]:
    model = {"id": "m", "provider": "openai", "prices": {"input": "1", "output": "2"}}
    model.update(model_changes)
    return {"schema_version": 1, "models": [_entry("ok", "openai", "1"), model]}


@pytest.mark.parametrize("doc,key,reason", [
    (_doc(prices={"input": "-1"}), "models[1].prices.input", "non-negative"),
    (_doc(prices={"input": -2.5}), "models[1].prices.input", "non-negative, got -2.5"),  # numbers are allowed
    (_doc(prices={"input": True}), "models[1].prices.input", "not true"),
    (_doc(prices={"input": float("nan")}), "models[1].prices.input", "finite"),
    (_doc(prices={"input": "2.5e-6"}), "models[1].prices.input", "non-negative decimal string"),
    (_doc(prices={"input": "cheap"}), "models[1].prices.input", "'cheap'"),
    (_doc(prices={"inptu": "1"}), "models[1].prices", "inptu"),
    (_doc(prices={}), "models[1].prices", "empty"),
    (_doc(id="ok"), "models[1].id", "already used"),
    (_doc(aliases=["ok"]), "models[1].aliases[0]", "already used"),
    (_doc(service_tiers={"turbo": {"input": "1"}}), "models[1].service_tiers", "turbo"),
    (_doc(context_tiers=[{"above_input_tokens": 200000, "prices": {"input": "2"}},
                         {"above_input_tokens": 128000, "prices": {"input": "3"}}]),
     "models[1].context_tiers[1].above_input_tokens", "ascending"),
    (_doc(effective_date="yesterday"), "models[1].effective_date", "yesterday"),
    ({"schema_version": 2, "models": []}, "schema_version", "1 was expected"),
    ({"models": []}, "(top level)", "schema_version"),
    ({"schema_version": 1, "models": [{"provider": "openai", "prices": {"input": "1"}}]}, "models[0]",
     "'id' is a required"),
])
def test_malformed_file_raises_catalog_error_with_file_key_and_reason(tmp_path, doc, key, reason):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        Catalog.load(path, include_default=False)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert reason in message, message


def test_malformed_price_names_the_model(tmp_path):
    path = _write(tmp_path / "bad.json", [_entry("m", "openai", "-1")])
    with pytest.raises(CatalogError, match=r"model openai/m"):
        Catalog.load(path, include_default=False)


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schema_version": 1,\n "models": [,]}', encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"^{path}: line 2 column \d+: invalid JSON"):
        Catalog.load(path, include_default=False)


def test_missing_file_is_a_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(tmp_path / "missing.json", include_default=False)


def test_catalog_error_is_a_value_error():
    assert issubclass(CatalogError, ConfigError) and issubclass(CatalogError, ValueError)


def test_model_round_trips_through_the_file_format(bundled):
    for model in bundled.entries():
        assert _catalog.model_from_dict(_catalog.model_to_dict(model)) == model


def test_format_price_has_no_exponent():
    assert _catalog.format_price(Decimal("1E+1")) == "10"
    assert _catalog.format_price(Decimal("0.0000025") * 1_000_000) == "2.5"
    assert _catalog.format_price(Decimal("0.000")) == "0"


# --- CLI --------------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="otel-ai-cost")
    _cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["prices", *argv])
    return args.func(args)


@pytest.fixture()
def clean_env(monkeypatch):
    monkeypatch.delenv("OTEL_AI_COST_PRICING_FILES", raising=False)
    monkeypatch.delenv("OTEL_AI_COST_AZURE_DEPLOYMENTS", raising=False)
    default_catalog.cache_clear()
    yield
    default_catalog.cache_clear()


def test_cli_show(clean_env, capsys):
    assert run_cli("show", "gemini-2.5-pro", "--provider", "gcp.gemini") == 0
    out = capsys.readouterr().out
    assert "gcp.gemini/gemini-2.5-pro (chat)" in out
    assert "input=$1.25/1M" in out and "output=$10/1M" in out
    assert "above 200000 input tokens: input=$2.5/1M" in out
    assert "source: https://" in out and "effective date: 20" in out


def test_cli_show_unknown_model_exits_1(clean_env, capsys):
    assert run_cli("show", "no-such-model") == 1
    assert "no price for model 'no-such-model'" in capsys.readouterr().err


def test_cli_list(clean_env, capsys):
    assert run_cli("list", "--provider", "anthropic") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("PROVIDER\t")  # the header (issue 8, item 7)
    lines = lines[1:]
    assert lines and all(line.startswith("anthropic\t") for line in lines)
    assert any("\tclaude-sonnet-4-20250514\t" in line for line in lines)


def test_cli_list_json(clean_env, capsys):
    assert run_cli("list", "--provider", "groq", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["models"] and {m["provider"] for m in doc["models"]} == {"groq"}


def test_cli_validate(tmp_path, capsys):
    good = _write(tmp_path / "good.json", [_entry("a", "openai", "1"), _entry("b", "openai", "2")])
    assert run_cli("validate", str(good)) == 0
    assert capsys.readouterr().out.strip() == "ok: 2 models"
    bad = _write(tmp_path / "bad.json", [_entry("a", "openai", "-1")])
    assert run_cli("validate", str(bad)) == 2  # bad input (issue 8, item 8)
    err = capsys.readouterr().err
    assert str(bad) in err and "models[0].prices.input" in err


def test_cli_validate_bundled_catalog(capsys):
    assert run_cli("validate", str(DATA.joinpath("catalog.json"))) == 0
    assert capsys.readouterr().out.startswith("ok: ")
