"""Our catalog against pydantic's genai-prices table (a second, independently reviewed price list).

Every price that differs by more than 1% for the same model (same provider, and genai-prices' model id or
one of its exact-name matches equal to our id or an alias) must be listed, with the reason we keep ours and
a source, in tests/fixtures/genai_prices_kept.yaml; a listed difference that has gone away fails too, so the
list stays true. Both tables are read at one fixed time (COMPARED_AT: the day of the last review, at noon
UTC so that DeepSeek's time-of-day prices are their standard ones), so the test does not change by itself
when a dated price takes effect: move COMPARED_AT forward when reviewing the list again.

genai-prices is a test dependency (the ``test`` extra pins the version the kept list was reviewed against):
when it is missing, the test fails, it does not skip.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import yaml

from otel_ai_cost.pricing import ModelPrice, default_catalog

KEPT_FILE = Path(__file__).parent / "fixtures" / "genai_prices_kept.yaml"
GENAI_PRICES_VERSION = "0.2.3"
COMPARED_AT = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
TOLERANCE = Decimal("0.01")  # relative: |ours - theirs| > 1% of the larger

# gen_ai.provider.name -> genai-prices provider id.
PROVIDERS = {
    "openai": "openai", "anthropic": "anthropic", "gcp.gemini": "google", "gcp.vertex_ai": "google",
    "aws.bedrock": "aws", "azure.ai.openai": "azure", "mistral_ai": "mistral", "cohere": "cohere",
    "deepseek": "deepseek", "x_ai": "x-ai", "groq": "groq",
}
# Our price field -> genai-prices' ModelPrice attribute (token prices, USD per million).
FIELDS = {"input": "input_mtok", "output": "output_mtok", "cache_read": "cache_read_mtok",
          "cache_write": "cache_write_mtok"}

Key = Tuple[str, str, str]  # (provider, model id, field)


def _genai_prices() -> Any:
    try:
        import genai_prices
        import genai_prices.data
    except ImportError as exc:  # a test dependency: fail, never skip
        pytest.fail(f"genai-prices is not installed ({exc}): pip install 'otel-ai-cost[test]' "
                    f"(genai-prices=={GENAI_PRICES_VERSION}, Python >= 3.11)")
    if genai_prices.__version__ != GENAI_PRICES_VERSION:
        pytest.fail(f"genai-prices {genai_prices.__version__} is installed; {KEPT_FILE.name} was reviewed against "
                    f"{GENAI_PRICES_VERSION}: review the differences, then update the pin in pyproject.toml and here")
    return genai_prices.data


def _exact_names(logic: Any) -> set:
    """The names a genai-prices match rule accepts exactly (equals clauses, also inside `or`)."""
    if hasattr(logic, "equals"):
        return {logic.equals.lower()}
    if hasattr(logic, "or_"):
        return set().union(*(_exact_names(clause) for clause in logic.or_))
    return set()


def _their_model(provider: Any, model: ModelPrice) -> Optional[Any]:
    names = {name.lower() for name in (model.id, *model.aliases)}
    for candidate in provider.models:
        if candidate.id.lower() in names:
            return candidate
    for candidate in provider.models:
        if _exact_names(candidate.match) & names:
            return candidate
    return None


def _base(value: Any) -> Optional[Decimal]:
    """A genai-prices price: a Decimal, or TieredPrices whose base is the price below the first tier."""
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(value.base)


def disagreements() -> Dict[Key, Tuple[str, str]]:
    """(provider, id, field) -> (ours, theirs) for every price more than 1% apart."""
    data = _genai_prices()
    providers = {p.id: p for p in data.providers}
    found: Dict[Key, Tuple[str, str]] = {}
    for model in default_catalog().entries():
        provider = providers.get(PROVIDERS.get(model.provider, ""))
        theirs_model = _their_model(provider, model) if provider is not None else None
        if theirs_model is None:
            continue
        ours_prices = model.at(COMPARED_AT).prices
        theirs_prices = theirs_model.get_prices(COMPARED_AT)
        for field, their_field in FIELDS.items():
            ours = getattr(ours_prices, field)
            theirs = _base(getattr(theirs_prices, their_field, None))
            if ours is None or theirs is None:
                continue
            if abs(ours - theirs) > TOLERANCE * max(ours, theirs):
                found[(model.provider, model.id, field)] = (_text(ours), _text(theirs))
    return found


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _kept() -> List[Dict[str, Any]]:
    return list(yaml.safe_load(KEPT_FILE.read_text(encoding="utf-8"))["kept"])


def test_the_kept_list_is_well_formed():
    seen = set()
    for entry in _kept():
        name = (entry["provider"], entry["model"])
        assert name not in seen, f"{name} is listed twice"
        seen.add(name)
        assert entry["reason"].strip(), name
        assert entry["source"].startswith("https://"), name
        assert entry["fields"] and set(entry["fields"]) <= set(FIELDS), name
        for values in entry["fields"].values():
            assert set(values) == {"ours", "theirs"}, name


def test_every_difference_over_one_percent_is_kept_with_a_reason():
    found = disagreements()
    kept: Dict[Key, Tuple[str, str]] = {}
    for entry in _kept():
        for field, values in entry["fields"].items():
            kept[(entry["provider"], entry["model"], field)] = (str(values["ours"]), str(values["theirs"]))
    new = {key: found[key] for key in sorted(set(found) - set(kept))}
    gone = sorted(set(kept) - set(found))
    changed = {key: (kept[key], found[key]) for key in sorted(set(found) & set(kept))
               if tuple(Decimal(v) for v in kept[key]) != tuple(Decimal(v) for v in found[key])}
    assert not new, ("prices that differ from genai-prices by more than 1% (provider, model, field: ours, theirs); "
                     f"fix ours in pricing/*.yaml with a source, or keep ours in {KEPT_FILE.name} with the reason: "
                     f"{new}")
    assert not gone, f"these no longer differ from genai-prices: remove them from {KEPT_FILE.name}: {gone}"
    assert not changed, f"the prices of these kept differences changed (kept, now): review them: {changed}"


def test_the_comparison_matches_models_of_every_provider():
    # The matching must keep working: a rename on either side must not silently empty the comparison.
    data = _genai_prices()
    providers = {p.id: p for p in data.providers}
    matched: Dict[str, int] = {}
    for model in default_catalog().entries():
        provider = providers.get(PROVIDERS.get(model.provider, ""))
        if provider is not None and _their_model(provider, model) is not None:
            matched[model.provider] = matched.get(model.provider, 0) + 1
    assert set(matched) == set(PROVIDERS), matched
    assert sum(matched.values()) >= 400, matched
