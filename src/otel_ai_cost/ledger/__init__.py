"""The call ledger: one SQLite row per priced GenAI call (``LedgerSpanExporter``), and the reports
``otel-ai-cost report`` makes from it (``build_call_report``, ``focus_rows``)."""
from ..config import ENV_LEDGER
from ._exporter import LedgerSpanExporter
from ._store import default_ledger_url, parse_ledger_url

__all__ = ["ENV_LEDGER", "LedgerSpanExporter", "default_ledger_url", "parse_ledger_url"]
