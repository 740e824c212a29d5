"""Runs every shared cost vector (tests/vectors/cost_vectors.json) against the bundled catalog.

Expected numbers were computed by hand from the providers' list prices (see each case's note), so a
failure means the engine or the catalog is wrong, not the vector. Cases flagged
``known_catalog_gap`` are ones where the catalog disagrees with the list price: the test asserts they
STILL disagree, so fixing the catalog fails here until the flag is removed.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from otel_ai_cost import _semconv as sc
from otel_ai_cost.cost import COMPONENTS, Usage, compute_cost, cost_attributes
from otel_ai_cost.pricing import default_catalog

VECTORS_FILE = Path(__file__).parent / "vectors" / "cost_vectors.json"
DOC: Dict[str, Any] = json.loads(VECTORS_FILE.read_text())
CASES: List[Dict[str, Any]] = DOC["cases"]
USAGE_KEYS = set(Usage.__dataclass_fields__)
COMPONENT_ATTRIBUTE = {
    "input": sc.AI_COST_COST_INPUT,
    "cache_read": sc.AI_COST_COST_CACHE_READ,
    "cache_read_audio": sc.AI_COST_COST_CACHE_READ_AUDIO,
    "cache_write": sc.AI_COST_COST_CACHE_WRITE,
    "output": sc.AI_COST_COST_OUTPUT,
    "reasoning": sc.AI_COST_COST_REASONING,
    "audio_input": sc.AI_COST_COST_AUDIO_INPUT,
    "audio_output": sc.AI_COST_COST_AUDIO_OUTPUT,
    "image": sc.AI_COST_COST_IMAGE,
    "request": sc.AI_COST_COST_REQUEST,
    "web_search": sc.AI_COST_COST_WEB_SEARCH,
}


def _id(case: Dict[str, Any]) -> str:
    return str(case["name"])


def _usage(case: Dict[str, Any]) -> Usage:
    return Usage(**case["usage"])


def _at(case: Dict[str, Any]) -> Optional[dt.datetime]:
    """When the call was made (the span's start time), for dated prices; None: now."""
    at = case.get("at")
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None


def _disagreements(case: Dict[str, Any]) -> List[str]:
    """Every way the engine + bundled catalog differ from the hand-computed expectation."""
    expected = case["expected"]
    catalog = default_catalog()
    attrs = cost_attributes(
        _usage(case),
        provider=case["provider"],
        request_model=case["model"],
        response_model=None,
        service_tier=case.get("service_tier"),
        catalog=catalog,
        at=_at(case),
    )
    problems: List[str] = []
    if expected.get("status") == "unknown_model":
        if attrs != {sc.AI_COST_PRICING_STATUS: "unknown_model", sc.AI_COST_PRICING_CATALOG_VERSION: catalog.version}:
            problems.append(f"expected unknown_model, got {attrs}")
        return problems

    price = catalog.resolve(case["model"], case["provider"])
    if price is None:
        return [f"model {case['model']!r} ({case['provider']}) is not in the catalog"]
    cost = compute_cost(_usage(case), price, case.get("service_tier"), at=_at(case))
    total = Decimal(expected["total"])
    breakdown = {k: Decimal(v) for k, v in expected["breakdown"].items()}
    if cost.total != total:
        problems.append(f"total {cost.total} != {total}")
    if cost.breakdown != breakdown:
        got = {k: str(v) for k, v in cost.breakdown.items()}
        problems.append(f"breakdown {got} != {expected['breakdown']}")
    if cost.model_id != expected["pricing_model"]:
        problems.append(f"pricing model {cost.model_id!r} != {expected['pricing_model']!r}")
    if cost.context_tier != expected["context_tier"]:
        problems.append(f"context tier {cost.context_tier} != {expected['context_tier']}")
    if "service_tier" in expected and cost.service_tier != expected["service_tier"]:
        problems.append(f"service tier {cost.service_tier} != {expected['service_tier']}")

    # The span attributes carry the same numbers (as floats) and the same pricing facts.
    status = expected.get("status", "priced")
    if attrs.get(sc.AI_COST_PRICING_STATUS) != status:
        problems.append(f"status {attrs.get(sc.AI_COST_PRICING_STATUS)!r} != {status!r}")
        return problems
    if not math.isclose(attrs[sc.GEN_AI_USAGE_COST_AMOUNT], float(total), rel_tol=1e-12, abs_tol=0.0):
        problems.append(f"amount attribute {attrs[sc.GEN_AI_USAGE_COST_AMOUNT]} != {total}")
    for component, amount in breakdown.items():
        value = attrs.get(COMPONENT_ATTRIBUTE[component])
        if value is None or not math.isclose(value, float(amount), rel_tol=1e-12, abs_tol=0.0):
            problems.append(f"{COMPONENT_ATTRIBUTE[component]} = {value} != {amount}")
    if attrs.get(sc.AI_COST_PRICING_CONTEXT_TIER) != expected["context_tier"]:
        problems.append(f"context tier attribute {attrs.get(sc.AI_COST_PRICING_CONTEXT_TIER)}")
    return problems


# --- the vector file itself -------------------------------------------------------------------

def test_enough_cases_with_unique_names() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) >= 60
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_case_is_well_formed(case: Dict[str, Any]) -> None:
    assert set(case["usage"]) <= USAGE_KEYS
    assert all(isinstance(v, int) and v >= 0 for v in case["usage"].values())
    assert case["note"].strip()
    if "at" in case:  # an RFC 3339 UTC time: the call's start
        assert case["at"].endswith("Z") and _at(case) is not None
    expected = case["expected"]
    if expected.get("status") == "unknown_model":
        return
    assert set(expected["breakdown"]) <= set(COMPONENTS)
    # Hand arithmetic must add up: the parts sum exactly to the total.
    assert sum((Decimal(v) for v in expected["breakdown"].values()), Decimal(0)) == Decimal(expected["total"])
    assert all(Decimal(v) >= 0 for v in expected["breakdown"].values())


# --- against the bundled catalog --------------------------------------------------------------

PRICED = [c for c in CASES if not c.get("known_catalog_gap")]
GAPS = [c for c in CASES if c.get("known_catalog_gap")]


@pytest.mark.parametrize("case", PRICED, ids=_id)
def test_vector(case: Dict[str, Any]) -> None:
    problems = _disagreements(case)
    assert not problems, f"{case['name']}: " + "; ".join(problems) + f"\n  note: {case['note']}"


def test_dated_cases_cover_before_at_and_after_a_change() -> None:
    # The same model and usage priced differently by the call's day: the `at` of a case matters.
    dated = [c for c in CASES if "at" in c]
    assert len(dated) >= 10
    totals = {c["expected"]["total"] for c in dated if c["model"] == "gpt-4o" and not c.get("service_tier")}
    assert totals == {"0.02", "0.0125"}
    catalog = default_catalog()
    gpt_4o = catalog.resolve("gpt-4o", "openai")
    assert gpt_4o is not None and gpt_4o.price_history
    now = compute_cost(Usage(input_tokens=1000, output_tokens=1000), gpt_4o).total
    assert now == Decimal("0.0125")  # no time: the prices in force today


@pytest.mark.parametrize("case", GAPS, ids=_id)
def test_known_catalog_gap_still_disagrees(case: Dict[str, Any]) -> None:
    problems: Optional[List[str]] = _disagreements(case)
    assert problems, (
        f"{case['name']}: the catalog now agrees with the list price; remove \"known_catalog_gap\" "
        f"from this case in {VECTORS_FILE.name}"
    )
