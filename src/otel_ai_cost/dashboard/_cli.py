"""``otel-ai-cost dashboard``: the call ledger and the budgets as a local web page.

    otel-ai-cost dashboard [--ledger URL] [--config FILE] [--budgets URL] [--host 127.0.0.1] [--port N]
                           [--jaeger URL] [--tz ZONE] [--top N] [--open]
                           [--export FILE.html [--period P] [--model M] [--provider P] [--tenant T] ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any
from urllib.parse import urlencode

from ..budgets._report import zone
from ..config import ENV_LEDGER
from ..errors import ConfigError
from ..ledger._cli import ledger_path
from ..ledger._store import read_rows
from ._budgets import BudgetSource
from ._data import DEFAULT_JAEGER, DEFAULT_PERIOD, FILTERS, PERIOD_NAMES, Query, Sources, loader
from ._server import DashboardServer, export_html, is_loopback

DEFAULT_PORT = 8417


def register(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``dashboard`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "dashboard",
        help="a local web page of the call ledger and the budgets (loopback only), or --export FILE.html",
        description="Serve a dashboard on loopback from the call ledger and the budget store: spend over time by "
        "model, provider and tenant, budget burn-down with the month-end forecast and each threshold, the top calls "
        "and traces (linked to Jaeger), anomalies and recommendations, with filters for the period and each "
        "dimension (applied on the server: the page asks /api/data again). The numbers are those of `report` and "
        "`recommend`. --export FILE.html writes one self-contained page instead (Chart.js and the data inlined; a "
        "snapshot of --period and the filter options given).",
    )
    p.add_argument("--ledger", metavar="URL", help=f"the call ledger, sqlite:///path (default: ${ENV_LEDGER} or the "
                   "default ledger file)")
    p.add_argument("--config", metavar="FILE", help="the YAML file with the budgets: and store: sections, for the "
                   "budget panels (default: $OTEL_AI_COST_CONFIG; none: no budget panels)")
    p.add_argument("--budgets", metavar="URL", help="the budget store (sqlite:///path or redis://...), instead of the "
                   "configuration's store.url; alone, the spend by budget without limits")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                   help=f"port to listen on (default {DEFAULT_PORT}; 0: a free one)")
    p.add_argument("--jaeger", metavar="URL", default=DEFAULT_JAEGER,
                   help=f"trace links: this URL followed by the trace id (default {DEFAULT_JAEGER}<id>)")
    p.add_argument("--tz", metavar="ZONE", default="UTC", help="time zone of days and hours (default: UTC)")
    p.add_argument("--top", metavar="N", type=int, default=10, help="how many top calls and traces (default 10)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--export", metavar="FILE.html", help="write a self-contained page and exit")
    p.add_argument("--period", choices=PERIOD_NAMES, default=DEFAULT_PERIOD,
                   help=f"the page's first period, and --export's (default {DEFAULT_PERIOD}: the last 30 days)")
    for dim in FILTERS:
        p.add_argument(f"--{dim}", metavar="VALUE", help=f"show only the calls of this {dim} (--export)")
    p.set_defaults(func=run)


def sources(args: argparse.Namespace) -> Sources:
    """The options, checked: bad ones fail here, before anything is served."""
    zone(args.tz)
    if args.top < 0:
        raise ConfigError(f"--top {args.top}: must be 0 or more")
    if not is_loopback(args.host):
        raise ConfigError(f"--host {args.host!r}: the dashboard listens on loopback only (127.0.0.1, ::1, localhost)")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be between 0 and 65535")
    if not args.jaeger.startswith(("http://", "https://")):
        raise ConfigError(f"--jaeger {args.jaeger!r}: expected an http:// or https:// URL")
    path = ledger_path(args)
    read_rows(path, 0.0, 0.0)  # no such file, not a ledger: said now, naming it
    budgets = BudgetSource.from_options(args.config, args.budgets)
    return Sources(path, budgets, args.tz, args.jaeger, args.top)


def run(args: argparse.Namespace) -> int:
    src = sources(args)
    load = loader(src)
    query = Query(args.period, {dim: getattr(args, dim) for dim in FILTERS if getattr(args, dim)})
    if args.export:
        page, document = export_html(load, query)
        with open(args.export, "w", encoding="utf-8") as f:
            f.write(page)
        total = document["total"]
        print(f"wrote {os.path.abspath(args.export)}: {total['calls']} calls, ${total['cost']} "
              f"({document['period']['name']}, {os.path.getsize(args.export)} bytes, self-contained)")
        return 0
    try:
        server = DashboardServer(load, args.host, args.port)
    except OSError as exc:
        raise ConfigError(f"--port {args.port}: cannot listen on {args.host}:{args.port}: "
                          f"{exc.strerror or exc}") from exc
    with server:
        shown = {"period": args.period} if args.period != DEFAULT_PERIOD else {}
        shown.update(query.filters)
        url = server.url + (f"?{urlencode(shown)}" if shown else "")
        print(f"otel-ai-cost dashboard: {url} (ledger {src.ledger}; loopback only; Ctrl-C stops it)", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr, flush=True)
    return 0
