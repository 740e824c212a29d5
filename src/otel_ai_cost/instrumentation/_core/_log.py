"""Logging of our own failures: once per call site, so a broken reader never floods the user's logs."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Set

logger = logging.getLogger("otel_ai_cost.instrumentation")

_logged_sites: Set[str] = set()
_logged_lock = threading.Lock()


def log_once(site: str, exc: BaseException) -> None:
    """Log an internal failure once per call site; the user's call goes on untouched."""
    with _logged_lock:
        if site in _logged_sites:
            return
        _logged_sites.add(site)
    logger.warning("otel-ai-cost: internal error in %s (reported once): %r", site, exc, exc_info=exc)


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: the class's qualified name, as contrib openai-v2 does."""
    return type(exc).__qualname__


def safe(site: str, fn: Callable[..., Any], *args: Any, default: Any = None, **kwargs: Any) -> Any:
    """Call ``fn``; on any error log once for ``site`` and return ``default``."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        log_once(site, exc)
        return default
