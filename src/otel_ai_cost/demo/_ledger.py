"""The demo's call ledger: a LedgerSpanExporter writing every call of the demo to ``demo-calls.db``,
next to the default call ledger, made anew at each run; and the lines the demo ends with, pointing
``otel-ai-cost dashboard`` and ``otel-ai-cost report`` at it."""
from __future__ import annotations

import os
import shlex
from typing import Any, TextIO

# The path on a line of its own: the demo's output fits 100 columns.
_LEDGER_HINT = """
  Every call above is also a row of the demo's call ledger; see them as a dashboard or a report:
    otel-ai-cost dashboard \\
      --ledger {url}
    otel-ai-cost report --by model \\
      --ledger {url}"""


def demo_ledger_path() -> str:
    """``demo-calls.db`` next to the default call ledger (``$XDG_STATE_HOME/otel-ai-cost/``)."""
    from ..ledger import default_ledger_url, parse_ledger_url

    return os.path.join(os.path.dirname(parse_ledger_url(default_ledger_url()) or ""), "demo-calls.db")


def demo_ledger(out: TextIO) -> Any:
    """A LedgerSpanExporter writing to a new ``demo_ledger_path()`` (the previous run's removed), or None."""
    from ..ledger import LedgerSpanExporter

    path = demo_ledger_path()
    try:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return LedgerSpanExporter(f"sqlite://{path}", flush_interval=0.1)
    except (OSError, ValueError) as exc:
        print(f"  (no call ledger: cannot write {path}: {exc})", file=out)
        return None


def ledger_hint() -> str:
    url = shlex.quote(f"sqlite://{demo_ledger_path()}")
    return _LEDGER_HINT.format(url=url)
