"""``report`` and ``recommend`` read the call ledger in one pass: no list of its calls is built, and
the top calls are those of a full sort of the calls (same ties)."""
from __future__ import annotations

import json
import random
import time
import weakref
from decimal import Decimal
from typing import Any, Dict, List, Tuple

from otel_ai_cost import _semconv as sc
from otel_ai_cost.cli import main
from otel_ai_cost.ledger._report import Call, build_call_report
from otel_ai_cost.ledger._row import COLUMN_NAMES
from otel_ai_cost.ledger._store import connect, write_rows
from otel_ai_cost.pricing import default_catalog

M = Decimal(1_000_000)
ROWS = 600
# gpt-4o (openai, pricing/openai.yaml): $2.50/M input, $10/M output: 1000 in + 50 out = $0.0025 + $0.0005.
COST_IN, COST_OUT = 1000 * Decimal("2.5") / M, 50 * Decimal(10) / M
# gpt-4o-mini: $0.15/M input, $0.60/M output.
MINI = 1000 * Decimal("0.15") / M + 50 * Decimal("0.6") / M


def _row(i: int, t0: float) -> Tuple[Any, ...]:
    values: Dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    values.update(
        trace_id=f"{i // 4:032x}", span_id=f"{i:016x}", start_time=t0 + i, end_time=t0 + i + 0.5, service="svc",
        provider="openai", request_model="gpt-4o", response_model="gpt-4o", operation="chat", input_tokens=1000,
        output_tokens=50, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
        cost=str(COST_IN + COST_OUT), currency="USD",
        breakdown=json.dumps({sc.AI_COST_COST_INPUT: str(COST_IN), sc.AI_COST_COST_OUTPUT: str(COST_OUT)}),
        pricing_status="priced", pricing_model="gpt-4o", attributes="{}", ok=1)
    return tuple(values[name] for name in COLUMN_NAMES)


def _live_calls(monkeypatch: Any) -> List[int]:
    """Watch Call.from_row: the most Calls alive at once (a list of every row would keep them all)."""
    alive = [0]
    peak = [0]
    original = Call.from_row.__func__  # type: ignore[attr-defined]

    def gone() -> None:
        alive[0] -= 1

    def tracked(cls: Any, row: Any) -> Call:
        call = original(cls, row)
        alive[0] += 1
        weakref.finalize(call, gone)
        peak[0] = max(peak[0], alive[0])
        return call

    monkeypatch.setattr(Call, "from_row", classmethod(tracked))
    return peak


def test_a_big_ledger_is_read_one_call_at_a_time(tmp_path, monkeypatch, capsys):
    path = tmp_path / "calls.db"
    connection = connect(str(path))
    write_rows(connection, [_row(i, time.time() - 3600 - ROWS) for i in range(ROWS)])
    connection.close()
    url = f"sqlite://{path}"
    peak = _live_calls(monkeypatch)

    assert main(["report", "--ledger", url, "--since", "1d", "--format", "json", "--top", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"]["calls"] == ROWS
    assert Decimal(doc["total"]["cost"]) == ROWS * (COST_IN + COST_OUT)  # 600 x $0.003 = $1.8
    assert len(doc["top_calls"]) == 5 and len(doc["top_traces"]) == 5
    assert peak[0] <= 5 + 2  # the top 5, the call being added and the next one: not 600

    peak[0] = 0
    assert main(["recommend", "--ledger", url, "--format", "json", "--kind", "cheaper_model"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calls"] == ROWS
    (hint,) = doc["hints"]
    assert (hint["kind"], hint["calls"], Decimal(hint["saving"])) == (
        "cheaper_model", ROWS, ROWS * (COST_IN + COST_OUT - MINI))  # 600 x ($0.003 - $0.00018)
    assert peak[0] <= 2


def _call(span: int, end: float, cost: str) -> Call:
    return Call(trace_id=f"{span:032x}", span_id=f"{span:016x}", start_time=end, end_time=end, service="a",
                provider="openai", request_model="gpt-4o", response_model=None, operation="chat", input_tokens=1,
                output_tokens=1, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0, cost=Decimal(cost),
                currency="USD", breakdown={}, estimate=None, pricing_status="priced", pricing_model=None,
                service_tier=None, budget_decision=None, tenant=None, user=None, cost_center=None, attributes={},
                anomaly_type=None, ok=True, error_type=None)


def test_the_top_calls_are_those_of_a_full_sort_ties_in_ledger_order():
    rng = random.Random(7)
    calls = [_call(i, float(rng.choice((10, 20, 30))), rng.choice(("1", "2", "2.0", "3"))) for i in range(200)]
    calls.sort(key=lambda c: c.end_time)  # the ledger's order: by end time, then as written
    catalog = default_catalog()
    for top in (0, 1, 3, 17, 200, 500):
        expected = sorted(calls, key=lambda c: (-(c.cost or 0), c.end_time))[:top]
        report = build_call_report(calls, ["model"], 0, 100, top=top, catalog=catalog)
        assert [c.span_id for c in report.top_calls] == [c.span_id for c in expected]
