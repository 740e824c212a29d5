"""``otel-ai-cost dashboard``: the call ledger and the budget store as a local web page (charts drawn
by the bundled Chart.js, see static/PROVENANCE.md), or one self-contained HTML file."""
from ._data import Query, Sources, document
from ._server import DashboardServer, export_html

__all__ = ["DashboardServer", "Query", "Sources", "document", "export_html"]
