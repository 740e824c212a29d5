"""Where otel-ai-cost keeps its files by default, and the file of a ``sqlite://`` URL: the one place
for both the budget store (``budgets.db``) and the call ledger (``calls.db``)."""
from __future__ import annotations

import os
from typing import Optional

SQLITE = "sqlite://"


def state_url(filename: str) -> str:
    """``sqlite:///$XDG_STATE_HOME/otel-ai-cost/<filename>`` (``~/.local/state/...`` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return SQLITE + "/" + os.path.join(state, "otel-ai-cost", filename).lstrip("/")


def sqlite_path(url: str) -> Optional[str]:
    """The file of ``sqlite:///absolute/path.db`` (``/absolute/path.db``) or ``sqlite://relative.db``
    (``relative.db``); ``""`` when the URL names no file, None when it is not a ``sqlite://`` URL."""
    return url[len(SQLITE):] if url.startswith(SQLITE) else None
