"""The catalog's reviewed source (pricing/*.yaml): build_catalog.py, its validation, and propose_prices.py."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from otel_ai_cost.errors import CatalogError
from otel_ai_cost.pricing import Catalog

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "pricing"
CATALOG = ROOT / "src" / "otel_ai_cost" / "pricing" / "data" / "catalog.json"
PROPOSE = Path(__file__).parent / "fixtures" / "litellm" / "propose.json"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build():
    return _script("build_catalog")


@pytest.fixture(scope="module")
def provider_docs() -> Dict[str, Dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted(SOURCE.glob("*.yaml")) if p.name != "catalog.yaml"}


# --- the bundled source ----------------------------------------------------------------------------


def test_catalog_json_is_what_the_yaml_source_builds(build, capsys):
    # CI's check: the committed catalog.json is exactly the build of pricing/*.yaml.
    assert build.main(["--check"]) == 0, capsys.readouterr().err


def test_build_is_byte_stable_and_check_fails_when_out_of_date(build, tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert build.main(["-o", str(one)]) == 0 and build.main(["-o", str(two)]) == 0
    assert one.read_bytes() == two.read_bytes() == CATALOG.read_bytes()
    doc = json.loads(one.read_text())
    keys = [(m["provider"], m["id"]) for m in doc["models"]]
    assert keys == sorted(keys) and len(keys) == 1498
    stale = tmp_path / "stale.json"
    stale.write_text(one.read_text().replace('"input": "2.5"', '"input": "2.6"', 1), encoding="utf-8")
    assert build.main(["-o", str(stale), "--check"]) == 1


def test_every_entry_cites_its_source_and_when_it_was_checked(provider_docs):
    assert len(provider_docs) == 11
    for provider, doc in provider_docs.items():
        assert doc["provider"] == provider and doc["pricing_url"].startswith("https://"), provider
        for model in doc["models"]:
            assert model["source"].startswith(("https://", "litellm ")), (provider, model["id"])
            assert model["prices_checked"] >= "2026-01-01", (provider, model["id"])


def test_history_entries_are_dated_sourced_and_in_the_built_catalog(provider_docs):
    catalog = Catalog.load()
    changes = 0
    for provider, doc in provider_docs.items():
        for model in doc["models"]:
            history = model.get("history", [])
            if not history:
                continue
            entry = catalog.resolve(model["id"], provider)
            assert entry.effective_date == max(h["date"] for h in history)
            for change in history:
                changes += 1
                assert change["source"].startswith("https://") and change["reason"], (provider, model["id"])
                assert change["source"] in entry.source.split("; ")
                for key, value in change.get("set", {}).get("prices", {}).items():
                    assert getattr(entry.prices, key) == Decimal(value), (provider, model["id"], key)
                for alias in change.get("aliases", []):
                    assert catalog.resolve(alias, provider) is entry
    # The 39 corrections.json held when it was folded into the source, + ft:gpt-4o-2024-11-20 (2026-12-04),
    # + 47 for dated prices, retired models and 8 corrections found comparing with genai-prices (2026-12-04),
    # + 5 legacy Bedrock models in the recorded replays (Claude 3 Haiku / 3 Sonnet / 2.0, Command R / R+).
    assert changes == 92


# --- validation ------------------------------------------------------------------------------------

GOOD = {
    "provider": "openai",
    "pricing_url": "https://openai.com/api/pricing/",
    "models": [
        {"id": "gpt-4o", "mode": "chat", "prices": {"input": "2.5", "output": "10", "cache_read": "1.25"},
         "max_input_tokens": 128000, "max_output_tokens": 16384, "source": "litellm 1.109.1",
         "effective_date": "2026-11-23", "prices_checked": "2026-11-23"},
        {"id": "gpt-4o-mini", "mode": "chat", "prices": {"input": "0.15", "output": "0.6"},
         "source": "https://openai.com/api/pricing/", "effective_date": "2026-11-22", "prices_checked": "2026-11-22",
         "history": [{"date": "2026-11-22", "action": "update", "source": "https://openai.com/api/pricing/",
                      "reason": "LiteLLM had last year's price", "set": {"prices": {"output": "0.6"}}}]},
    ],
}


def _source(tmp_path: Path, provider_doc: Any = GOOD, name: str = "openai.yaml") -> Path:
    source = tmp_path / "pricing"
    source.mkdir(exist_ok=True)
    shutil.copy(SOURCE / "catalog.yaml", source / "catalog.yaml")
    text = provider_doc if isinstance(provider_doc, str) else yaml.safe_dump(provider_doc, sort_keys=False)
    (source / name).write_text(text, encoding="utf-8")
    return source


def _with(path: List[Any], value: Any) -> Dict[str, Any]:
    doc = json.loads(json.dumps(GOOD))
    target = doc
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize("doc,key,reason", [
    (_with(["models", 0, "prices", "input"], 2.5), "models[0].prices.input", "price must be a decimal string"),
    (_with(["models", 1, "prices", "output"], "-1"), "models[1].prices.output", "non-negative decimal string"),
    (_with(["models", 0, "prices_checked"], KeyError), "models[0].prices_checked", "required"),
    (_with(["models", 1, "history", 0, "reason"], KeyError), "models[1].history[0].reason", "required"),
    (_with(["models", 1, "history", 0, "date"], "last week"), "models[1].history[0].date", "YYYY-MM-DD"),
    (_with(["models", 1, "id"], "gpt-4o"), "models[1].id", "already used by models[0]"),
    (_with(["models", 0, "source"], KeyError), "models[0].source", "required, where the price comes from"),
    (_with(["provider"], "azure"), "provider", "must be the file's name 'openai'"),
    (_with(["pricing_url"], KeyError), "pricing_url", "required"),
    (_with(["models", 0, "provider"], "openai"), "models[0].provider", "not allowed here"),
])
def test_source_errors_name_file_key_and_reason(build, tmp_path, doc, key, reason):
    source = _source(tmp_path, doc)
    with pytest.raises(CatalogError) as info:
        build.build(source)
    message = str(info.value)
    assert message.startswith(f"{source / 'openai.yaml'}: {key}"), message
    assert reason in message, message


def test_invalid_yaml_names_the_line(build, tmp_path, capsys):
    source = _source(tmp_path, "provider: openai\nmodels: [\n  - id: x\n")
    assert build.main(["--source", str(source), "-o", str(tmp_path / "out.json")]) == 1
    err = capsys.readouterr().err
    assert f"{source / 'openai.yaml'}: line " in err and "invalid YAML" in err
    assert not (tmp_path / "out.json").exists()


def test_a_small_source_builds_a_loadable_catalog(build, tmp_path):
    out = tmp_path / "catalog.json"
    assert build.main(["--source", str(_source(tmp_path)), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [list(m)[:2] for m in doc["models"]] == [["id", "provider"]] * 2  # catalog.json's key order
    assert all("prices_checked" not in m and "history" not in m for m in doc["models"])
    mini = Catalog.load(out, include_default=False).resolve("gpt-4o-mini", "openai")
    assert (mini.prices.output, mini.effective_date) == (Decimal("0.6"), "2026-11-22")


# --- proposals from LiteLLM ---------------------------------------------------------------------------


def test_propose_prints_a_diff_of_new_and_changed_models_and_writes_nothing(tmp_path, capsys):
    propose = _script("propose_prices")
    source = _source(tmp_path)
    before = (source / "openai.yaml").read_bytes()
    assert propose.main([str(PROPOSE), "--litellm-version", "1.200.0", "--source", str(source),
                         "--date", "2026-12-03"]) == 0
    out, err = capsys.readouterr()
    assert (source / "openai.yaml").read_bytes() == before
    assert out.startswith("--- a/pricing/openai.yaml\n+++ b/pricing/openai.yaml\n")
    removed = [line[1:] for line in out.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
    # gpt-4o: input 2.5 -> 3 (per token 3e-06), cited, dated, with a history entry saying what changed.
    assert "    input: '2.5'" in removed and "    input: '3'" in added
    assert "  source: litellm 1.200.0" in added and "  prices_checked: '2026-12-03'" in added
    assert any("litellm 1.200.0 gives prices.input '2.5' -> '3'" in line for line in added)
    # gpt-test-new is added with per-million prices; gpt-4o-mini's output (0.6) is ours by reviewed
    # history, and LiteLLM agrees with the rest, so nothing changes there.
    assert "- id: gpt-test-new" in added and "    input: '1'" in added and "    output: '4'" in added
    assert not any("gpt-4o-mini" in line for line in removed + added)
    assert "new: openai/gpt-test-new" in err and "changed: openai/gpt-4o" in err
    assert "changed: openai/gpt-4o-mini" not in err
    assert "1 new, 1 changed; nothing written" in err


def test_propose_keeps_what_our_history_set(tmp_path, capsys):
    propose = _script("propose_prices")
    doc = _with(["models", 1, "prices", "output"], "0.6")
    doc["models"][1]["history"][0]["set"] = {"prices": {"input": "0.15"}}
    doc["models"][1]["prices"]["input"] = "0.15"
    lite = json.loads(PROPOSE.read_text())
    lite["gpt-4o-mini"]["input_cost_per_token"] = 2e-07  # LiteLLM disagrees with our reviewed 0.15
    path = tmp_path / "lite.json"
    path.write_text(json.dumps(lite), encoding="utf-8")
    assert propose.main([str(path), "--litellm-version", "1.200.0", "--source", str(_source(tmp_path, doc)),
                         "--date", "2026-12-03"]) == 0
    out, err = capsys.readouterr()
    assert "kept: openai/gpt-4o-mini: prices.input '0.15' set by our history 2026-11-22; LiteLLM '0.2'" in err
    assert "    input: '0.2'" not in out


def test_proposed_diff_applied_builds_a_valid_catalog(tmp_path, capsys):
    # The proposal is a real patch of the source: applied, the source still builds.
    propose, build = _script("propose_prices"), _script("build_catalog")
    source = _source(tmp_path)
    diff, _ = propose.propose(PROPOSE, source=source, litellm_version="1.200.0", today="2026-12-03")
    subprocess.run(["patch", "-p1", "-s", "-d", str(tmp_path)], input=diff, text=True, check=True)
    document = build.build(source)
    ids = [m["id"] for m in document["models"]]
    assert ids == ["gpt-4o", "gpt-4o-mini", "gpt-test-new"]
    assert document["models"][0]["prices"]["input"] == "3"
