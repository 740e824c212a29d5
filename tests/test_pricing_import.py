"""The LiteLLM importer, the catalog build script and ``prices import``, on small fixture files."""
from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict

import pytest

from otel_ai_cost.errors import CatalogError
from otel_ai_cost.pricing import Catalog, _cli
from otel_ai_cost.pricing._litellm import import_litellm, our_provider, per_million, per_unit

FIXTURES = Path(__file__).parent / "fixtures" / "litellm"
SMALL = FIXTURES / "small.json"
ROOT = Path(__file__).resolve().parent.parent


def _import(path: Path = SMALL):
    return import_litellm(path, source_label="litellm test", effective_date="2026-11-23", catalog_version="2026.11.23")


@pytest.fixture(scope="module")
def result():
    return _import()


@pytest.fixture(scope="module")
def models(result) -> Dict[tuple, Dict[str, Any]]:
    return {(m["provider"], m["id"]): m for m in result.document["models"]}


@pytest.mark.parametrize("value,expected", [
    (2.5e-06, "2.5"), (1e-05, "10"), (1.25e-07, "0.125"), (3e-07, "0.3"), (6.25e-08, "0.0625"),
    (1.0490417e-08, "0.010490417"), (2.125e-06, "2.125"), (3.3e-06, "3.3"), (1.65e-05, "16.5"), (0.0, "0"),
    (0, "0"), (1.5e-05, "15"),
])
def test_per_token_floats_become_exact_per_million_strings(value, expected):
    assert per_million(value) == expected
    assert Decimal(per_million(value)) == Decimal(repr(value)) * 1_000_000


def test_float_arithmetic_would_have_been_wrong():
    assert 3.3e-06 * 1_000_000 == 3.3000000000000003  # why the importer scales Decimals, not floats
    assert per_million(3.3e-06) == "3.3"


def test_per_unit_prices_are_not_scaled():
    assert per_unit(0.011) == "0.011" and per_unit(0.04) == "0.04"


@pytest.mark.parametrize("litellm,ours", [
    ("openai", "openai"), ("text-completion-openai", "openai"), ("azure", "azure.ai.openai"),
    ("azure_text", "azure.ai.openai"), ("anthropic", "anthropic"), ("gemini", "gcp.gemini"),
    ("vertex_ai", "gcp.vertex_ai"), ("vertex_ai-language-models", "gcp.vertex_ai"),
    ("vertex_ai-anthropic_models", "gcp.vertex_ai"), ("bedrock", "aws.bedrock"),
    ("bedrock_converse", "aws.bedrock"), ("mistral", "mistral_ai"), ("cohere", "cohere"),
    ("cohere_chat", "cohere"), ("groq", "groq"), ("deepseek", "deepseek"), ("xai", "x_ai"),
])
def test_provider_mapping(litellm, ours):
    assert our_provider(litellm)[0] == ours


@pytest.mark.parametrize("litellm", ["fireworks_ai", "azure_ai", "openrouter", None, 3])
def test_other_providers_are_not_mapped(litellm):
    assert our_provider(litellm) is None


def test_every_mapped_entry_is_kept_unless_unpriceable_or_a_duplicate(result):
    raw = json.loads(SMALL.read_text())
    mapped = [k for k, v in raw.items() if k != "sample_spec" and our_provider(v.get("litellm_provider"))]
    assert sum(result.source_entries.values()) == len(mapped) == 21
    assert sum(result.models_per_provider.values()) == (
        len(mapped) - len(result.no_price) - len(result.merged) - len(result.conflicts))
    assert result.no_price == ["whisper-1"]  # priced per second only: nothing we can represent
    assert sorted(result.merged) == [
        "bedrock/us-east-1/anthropic.claude-3-5-sonnet-20240620-v1:0 (kept anthropic.claude-3-5-sonnet-20240620-v1:0)",
        "deepseek/deepseek-chat (kept deepseek-chat)",
    ]
    assert result.conflicts == []
    assert result.other_providers == 1
    assert dict(result.models_per_provider) == {
        "openai": 6, "azure.ai.openai": 2, "anthropic": 1, "gcp.gemini": 1, "gcp.vertex_ai": 1, "aws.bedrock": 2,
        "mistral_ai": 1, "cohere": 1, "groq": 1, "deepseek": 1, "x_ai": 1,
    }


def test_unknown_keys_are_counted_not_fatal(result):
    assert result.unknown_keys["input_cost_per_token_ultrafast"] == 1
    assert result.unknown_keys["search_context_cost_per_query"] == 1
    assert result.unknown_keys["input_cost_per_second"] == 1
    assert "supports_vision" not in result.unknown_keys and "max_input_tokens" not in result.unknown_keys
    summary = result.summary()
    assert "openai: 6 models (7 entries)" in summary and "input_cost_per_token_ultrafast: 1" in summary


def test_openai_entry_with_service_tiers(models):
    gpt4o = models[("openai", "gpt-4o")]
    assert gpt4o["prices"] == {"input": "2.5", "output": "10", "cache_read": "1.25"}
    assert gpt4o["service_tiers"] == {
        "batch": {"input": "1.25", "output": "5"},
        "priority": {"input": "4.25", "output": "17", "cache_read": "2.125"},
    }
    assert (gpt4o["max_input_tokens"], gpt4o["max_output_tokens"], gpt4o["mode"]) == (128000, 16384, "chat")
    assert gpt4o["source"] == "https://openai.com/api/pricing/" and gpt4o["effective_date"] == "2026-11-23"
    assert models[("openai", "gpt-4o-2024-05-13")]["source"] == "litellm test"  # no URL in the entry


def test_context_tiers_with_their_own_service_tiers(models):
    gemini = models[("gcp.gemini", "gemini-2.5-pro")]  # "gemini/" prefix stripped
    assert gemini["context_tiers"] == [{
        "above_input_tokens": 200000,
        "prices": {"input": "2.5", "output": "15", "cache_read": "0.25"},
        "service_tiers": {"priority": {"input": "4.5", "output": "27"}},
    }]


def test_anthropic_cache_write_prices(models):
    claude = models[("anthropic", "claude-sonnet-4-5")]
    assert claude["prices"] == {"input": "3", "output": "15", "cache_read": "0.3", "cache_write": "3.75",
                                "cache_write_1h": "6"}
    assert claude["context_tiers"][0]["prices"]["cache_write_1h"] == "12"  # _above_1hr_above_200k_tokens


def test_audio_reasoning_and_image_fields(models):
    realtime = models[("openai", "gpt-realtime")]
    assert realtime["mode"] == "realtime"
    assert realtime["prices"] == {"input": "4", "output": "16", "reasoning": "16", "audio_input": "32",
                                  "audio_output": "64"}
    assert models[("openai", "gpt-image-1")]["prices"] == {"input": "5", "image_input": "10", "image_output": "40"}
    # LiteLLM prices generated images of a size/quality as input_cost_per_image: USD per image
    assert models[("openai", "low/1024-x-1024/gpt-image-1")]["prices"] == {"per_image": "0.011"}


def test_ids_lose_the_litellm_provider_prefix(models):
    assert ("azure.ai.openai", "gpt-4o") in models
    assert ("azure.ai.openai", "eu/gpt-4o") in models  # Azure data-zone deployments are priced apart
    assert ("gcp.vertex_ai", "claude-sonnet-4-5@20250929") in models
    assert ("mistral_ai", "mistral-large-latest") in models
    assert ("groq", "llama-3.3-70b-versatile") in models
    assert ("x_ai", "grok-4") in models
    assert ("cohere", "command-r-08-2024") in models
    assert ("deepseek", "deepseek-chat") in models


def test_bedrock_ids_are_kept_and_region_paths_dropped_only_when_duplicates(models):
    assert ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0") in models
    assert ("aws.bedrock", "us-east-1/anthropic.claude-3-5-sonnet-20240620-v1:0") not in models  # same prices
    assert models[("aws.bedrock", "eu-central-1/anthropic.claude-3-5-sonnet-20240620-v1:0")]["prices"]["input"] == "3.3"


def test_imported_document_loads_as_a_catalog(result, tmp_path):
    path = tmp_path / "imported.json"
    path.write_text(json.dumps(result.document), encoding="utf-8")
    catalog = Catalog.load(path, include_default=False)
    assert len(catalog) == 18 and catalog.version == "2026.11.23"
    assert catalog.resolve("gpt-4o").prices.input == Decimal("2.5")
    assert (catalog.resolve("us.anthropic.claude-3-5-sonnet-20240620-v1:0").id
            == "anthropic.claude-3-5-sonnet-20240620-v1:0")


def _litellm_file(tmp_path: Path, entry: Any, name: str = "gpt-x") -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({name: entry}), encoding="utf-8")
    return path


@pytest.mark.parametrize("entry,key,reason", [
    ({"litellm_provider": "openai", "input_cost_per_token": -1e-06}, "['gpt-x'].input_cost_per_token", "non-negative"),
    ({"litellm_provider": "openai", "input_cost_per_token": "0.000001"}, "['gpt-x'].input_cost_per_token",
     "must be a number"),
    ({"litellm_provider": "openai", "output_cost_per_token_batches": True}, "['gpt-x'].output_cost_per_token_batches",
     "must be a number"),
    ({"litellm_provider": "openai", "input_cost_per_token": 1e-06, "max_input_tokens": "lots"},
     "['gpt-x'].max_input_tokens", "integer"),
    ("not an object", "['gpt-x']", "must be an object"),
])
def test_malformed_litellm_entry_raises_catalog_error(tmp_path, entry, key, reason):
    path = _litellm_file(tmp_path, entry)
    with pytest.raises(CatalogError) as info:
        _import(path)
    assert str(info.value).startswith(f"{path}: {key}: ") and reason in str(info.value)


def test_malformed_entries_of_other_providers_are_ignored(tmp_path):
    path = _litellm_file(tmp_path, {"litellm_provider": "fireworks_ai", "input_cost_per_token": "free"})
    assert _import(path).other_providers == 1


def test_litellm_bad_json(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text("{\n oops", encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"^{path}: line 2 column \d+: invalid JSON"):
        _import(path)


# The catalog build (pricing/*.yaml -> catalog.json) and its corrections history: test_pricing_source.py.


# --- prices import ----------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="otel-ai-cost")
    _cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["prices", *argv])
    return args.func(args)


def test_cli_import_writes_our_format_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "mine.json"
    assert run_cli("import", str(SMALL), "-o", str(out)) == 0
    printed = capsys.readouterr().out
    assert "18 models from 21 entries" in printed and "openai: 6 models" in printed
    assert "unknown keys" in printed and "input_cost_per_token_ultrafast: 1" in printed
    assert run_cli("validate", str(out)) == 0
    assert capsys.readouterr().out.strip() == "ok: 18 models"


def test_cli_import_to_stdout(capsys):
    assert run_cli("import", str(SMALL)) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["models"]) == 18
    assert "18 models from 21 entries" in captured.err


def test_cli_import_malformed_file_exits_2(tmp_path, capsys):
    path = _litellm_file(tmp_path, {"litellm_provider": "openai", "input_cost_per_token": -1})
    assert run_cli("import", str(path)) == 2  # bad input (issue 8, item 8)
    assert "['gpt-x'].input_cost_per_token" in capsys.readouterr().err


def test_cached_audio_12_hour_writes_and_video_prices(tmp_path):
    # Key names as LiteLLM 1.109.1 spells them (its gpt-6-sol, gemini/gemini-2.5-flash and gemini-embedding-2).
    table = {
        "gpt-6-sol": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2e-06,
                      "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 2e-07,
                      "cache_creation_input_token_cost": 2.5e-06, "cache_creation_input_token_cost_above_12hr": 5e-06,
                      "cache_creation_input_token_cost_above_12hr_above_272k_tokens": 1e-05,
                      "input_cost_per_token_above_272k_tokens": 4e-06},
        "gemini/gemini-2.5-flash": {"litellm_provider": "gemini", "input_cost_per_token": 3e-07,
                                    "cache_read_input_token_cost": 3e-08, "cache_read_input_audio_token_cost": 1e-07,
                                    "cache_read_input_audio_token_cost_priority": 1.8e-07,
                                    "input_cost_per_audio_token": 1e-06, "output_cost_per_token": 2.5e-06},
        "gemini/gemini-embedding-2": {"litellm_provider": "gemini", "mode": "embedding", "input_cost_per_token": 2e-07,
                                      "input_cost_per_video_token": 1.2e-05},
    }
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table), encoding="utf-8")
    result = _import(path)
    models = {m["id"]: m for m in result.document["models"]}
    assert not result.unknown_keys
    assert models["gpt-6-sol"]["prices"] == {"input": "2", "output": "10", "cache_read": "0.2", "cache_write": "2.5",
                                             "cache_write_12h": "5"}
    assert models["gpt-6-sol"]["context_tiers"][0]["prices"] == {"input": "4", "cache_write_12h": "10"}
    assert models["gemini-2.5-flash"]["prices"]["cache_read_audio"] == "0.1"
    assert models["gemini-2.5-flash"]["service_tiers"] == {"priority": {"cache_read_audio": "0.18"}}
    assert models["gemini-embedding-2"]["prices"] == {"input": "0.2", "video_input": "12"}
