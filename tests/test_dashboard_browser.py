"""The dashboard in a real headless browser: Debian's ``chromium``, driven through the DevTools protocol
(``_cdp``). The page served from a ledger of the demo's calls (``test_dashboard.fill_demo_ledger``)
shows their numbers, exactly; a filter changes them; Chart.js draws the charts; the page logs no
error and fetches nothing but the dashboard's own URLs; the exported file works alone. Screenshots
go to ``test-artifacts/`` (not kept in git). Without chromium the test FAILS: install it
(``apt-get install -y chromium``; ``.ci/run`` does)."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from _cdp import Chromium, find_chromium
from otel_ai_cost.dashboard import DashboardServer, Query, export_html
from otel_ai_cost.dashboard._data import loader
from test_dashboard import ACME_CALLS, DemoLedger, fill_demo_ledger, model_of

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
RENDERED = "document.body && document.body.dataset.ready === '1' && document.body.dataset.renders"


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.fail("chromium is not installed: the dashboard's browser test needs it "
                    "(apt-get install -y chromium; .ci/run installs it)")
    chromium = Chromium(binary, width=1440, height=1000)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> DemoLedger:
    return fill_demo_ledger(tmp_path_factory.mktemp("browser"))


def dollars(amount: Decimal) -> str:
    return "$" + format(amount, "f")


def text(browser: Chromium, element_id: str) -> str:
    return str(browser.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent"))


def table(browser: Chromium, element_id: str) -> List[List[str]]:
    return list(browser.evaluate(
        f"Array.from(document.querySelectorAll('#{element_id} tbody tr')).map("
        "tr => Array.from(tr.cells).map(td => td.textContent))"))


def rendered(browser: Chromium, count: int) -> None:
    assert browser.wait_for(f"({RENDERED}) === '{count}'")


def choose(browser: Chromium, select_id: str, value: str) -> None:
    browser.evaluate(f"(() => {{ const s = document.getElementById({json.dumps(select_id)}); "
                     f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()")


def test_the_page_shows_the_demo_s_numbers_and_a_filter_changes_them(browser, ledger):
    rows = ledger.rows
    with DashboardServer(loader(ledger.sources())) as server:
        browser.navigate(server.url + "?period=day")
        rendered(browser, 1)
        assert text(browser, "total-cost") == dollars(ledger.cost())
        assert text(browser, "total-calls") == f"{len(rows)} calls, 1 not priced"
        by_model = {cells[0]: cells[2] for cells in table(browser, "by-model")}
        assert by_model == {model_of(r): dollars(ledger.cost(model=model_of(r))) for r in rows}
        by_tenant = {cells[0]: cells[2] for cells in table(browser, "by-tenant")}
        assert by_tenant == {t: dollars(ledger.cost(tenant=t)) for t in ("acme", "globex")}
        # Chart.js drew the spend over time: one dataset per model, adding up to the total.
        datasets: List[Dict[str, Any]] = browser.evaluate(
            "Chart.getChart('chart-over-time').data.datasets.map("
            "d => ({label: d.label, sum: d.data.reduce((a, b) => a + b, 0)}))")
        assert {d["label"] for d in datasets} == {model_of(r) for r in rows}
        assert sum(d["sum"] for d in datasets) == pytest.approx(float(ledger.cost()), rel=1e-9)
        # The budget: the store's spend, its burn-down chart with a line per threshold.
        usage = text(browser, "budgets")
        spent = Decimal(usage.split("spent $", 1)[1].split(" ", 1)[0])
        assert spent == ledger.cost()
        lines = browser.evaluate("Chart.getChart('chart-budget-0').data.datasets.map(d => d.label)")
        assert {"spent (cumulative)", "forecast", "50% warn", "80% warn", "100% block"} <= set(lines)
        # Trace ids link to Jaeger; the anomalies and the recommendations are listed.
        top = max((r for r in rows if r["cost"] is not None), key=lambda r: Decimal(r["cost"]))
        link = browser.evaluate("document.querySelector('#top-calls tbody a').href")
        assert link == f"http://localhost:16686/trace/{top['trace_id']}"
        assert table(browser, "anomaly-types") == [["new_model", "5", dollars(sum(
            (Decimal(r["cost"]) for r in rows if r["anomaly_type"] and r["cost"] is not None), Decimal(0)))]]
        assert table(browser, "recommendations")[0][1] in ("cheaper_model", "prompt_cache", "batch", "max_tokens")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / "dashboard.png")

        # A filter: the server's document for tenant globex, drawn anew.
        choose(browser, "f-tenant", "globex")
        rendered(browser, 2)
        assert text(browser, "total-cost") == dollars(ledger.cost(tenant="globex"))
        assert text(browser, "total-calls") == f"{len(rows) - ACME_CALLS} calls, 1 not priced"
        assert [cells[0] for cells in table(browser, "by-tenant")] == ["globex"]
        assert "tenant=globex" in browser.evaluate("window.location.search")
        choose(browser, "f-period", "all")
        rendered(browser, 3)
        assert text(browser, "total-cost") == dollars(ledger.cost(tenant="globex"))
        browser.screenshot(ARTIFACTS / "dashboard-filtered.png")

        assert browser.problems() == []
        base = server.url
        assert all(url.startswith(base) or url.startswith("data:") for url in browser.requests()), browser.requests()


def test_the_exported_page_works_alone(browser, ledger, tmp_path):
    page, _ = export_html(loader(ledger.sources()), Query("day", {"tenant": "acme"}))
    target = tmp_path / "cost.html"
    target.write_text(page, encoding="utf-8")
    browser.events.clear()
    browser.navigate(target.as_uri())
    rendered(browser, 1)
    assert text(browser, "total-cost") == dollars(ledger.cost(tenant="acme"))
    assert browser.evaluate("document.getElementById('f-tenant').disabled") is True
    assert browser.evaluate("Chart.getChart('chart-over-time') !== undefined") is True
    assert browser.problems() == []
    assert all(url == target.as_uri() or url.startswith("data:") for url in browser.requests()), browser.requests()
