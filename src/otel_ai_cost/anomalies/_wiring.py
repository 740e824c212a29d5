"""How AICostSpanProcessor gets its detector, its baseline store and the on_anomaly policy.

- ``AICostSpanProcessor(anomalies=True)`` or ``anomalies=AnomalyMonitor(...)`` in code, or
  ``OTEL_AI_COST_ANOMALIES=on`` (``Settings.anomalies``); off by default (see README.md here:
  the detector adds time per call and logs a warning per finding, which an application opts into).
  An ``on_anomaly`` policy (configuration file) or ``anomaly_policy=`` (code) switches it on, unless
  it is explicitly off, which is a configuration error.
- Baselines live in the budget store when there is one (its SQLite file, table
  ``anomaly_baselines``; its Redis server, hash ``<prefix>:anomaly:<namespace>``), restored at start
  and saved every minute and at shutdown (``BaselineSaver``); without a budget store, in memory.
  The namespace is ``OTEL_SERVICE_NAME`` (rates are per process group), else ``default``.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Optional, Tuple

from ..errors import ConfigError
from ._detector import AnomalyDetector
from ._outputs import AnomalyMonitor, AnomalyReporter
from ._span_feed import SpanFeed

if TYPE_CHECKING:
    from ..budgets import BudgetBook, BudgetConfig
    from ..budgets._anomaly_policy import AnomalyGate
    from ..config import Settings

_logger = logging.getLogger("otel_ai_cost.anomalies")


def resolve_anomalies(
    option: Any,
    policy: Any,
    settings: "Settings",
    file_config: Optional["BudgetConfig"],
    book: Optional["BudgetBook"],
    catalog: Any,
    meter_provider: Any = None,
) -> Tuple[Optional[SpanFeed], Optional["AnomalyGate"]]:
    """The processor's span feed (None: no detector) and the policy gate for its budget enforcer.

    ``option``: the processor's ``anomalies`` argument (None, a bool or an AnomalyMonitor);
    ``policy``: its ``anomaly_policy`` argument. Raises ConfigError on a bad value."""
    from ..budgets._anomaly_policy import AnomalyGate, parse_anomaly_policy
    from ..config import ENV_ANOMALIES

    if option is not None and not isinstance(option, (bool, AnomalyMonitor)):
        raise ConfigError(f"anomalies: expected True, False or an AnomalyMonitor, not {option!r}")
    parsed = parse_anomaly_policy(policy)
    from_file = file_config.on_anomaly if file_config is not None else None
    if parsed is not None and from_file is not None and file_config is not None:
        raise ConfigError(f"an anomaly policy is given both in code (anomaly_policy=...) and in {file_config.source}"
                          " (on_anomaly); keep one of the two")
    parsed = parsed or from_file
    asked = option if option is not None else settings.anomalies
    if asked is False and parsed is not None:
        where = "anomalies=False" if option is False else f"{ENV_ANOMALIES}=off"
        raise ConfigError(f"{where} turns the anomaly detector off, but the on_anomaly policy of {parsed.source} "
                          "needs it; remove one of the two")
    if not asked and parsed is None:
        return None, None
    if isinstance(option, AnomalyMonitor):
        monitor = option
    else:
        from opentelemetry.metrics import get_meter

        reporter = AnomalyReporter(meter=get_meter("otel_ai_cost.anomalies", meter_provider=meter_provider))
        monitor = AnomalyMonitor(AnomalyDetector(), reporter)
    feed = SpanFeed(monitor, catalog)
    if book is not None:
        _persist(feed, book)
    gate = AnomalyGate(parsed, monitor.detector, feed) if parsed is not None else None
    return feed, gate


def _persist(feed: SpanFeed, book: "BudgetBook") -> None:
    """Restore the baselines from the budget store and save them there from now on. A store that
    fails is logged; the detector then starts from nothing."""
    from ._store import BaselineSaver, RedisBaselineStore, SQLiteBaselineStore, load_baselines

    store = getattr(book.store, "inner", book.store)  # a ResilientStore's own store
    path = getattr(store, "path", None)
    client = getattr(store, "_client", None)
    namespace = os.environ.get("OTEL_SERVICE_NAME", "").strip() or "default"
    try:
        if isinstance(path, str) and path:
            baselines: Any = SQLiteBaselineStore(path)
            feed.store = baselines
        elif client is not None and hasattr(client, "hgetall"):
            baselines = RedisBaselineStore(client=client, prefix=f"{getattr(store, '_prefix', 'ai_cost')}:")
        else:
            return  # a memory store (or one not open yet): the baselines stay in memory
        loaded = load_baselines(feed.detector, baselines, namespace)
        if loaded:
            _logger.info("otel-ai-cost: restored %d anomaly baselines (namespace %r).", loaded, namespace)
        feed.saver = BaselineSaver(feed.detector, baselines, namespace)
    except Exception:  # noqa: BLE001 - persistence is a convenience: the detector works without it
        _logger.warning("otel-ai-cost: the anomaly baselines cannot be kept in the budget store; they stay in "
                        "memory for this process.", exc_info=True)
