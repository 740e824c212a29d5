"""Budget policy on anomaly findings: refuse the next call of a runaway trace, downgrade on a spike.

The configuration file's top-level ``on_anomaly`` (or ``AICostSpanProcessor(anomaly_policy=...)``,
the same spelling):

    on_anomaly:
      runaway_trace: block                                  # the trace's next call is refused before it is sent
      retry_storm: block
      cost_spike: {action: downgrade, model: gpt-4o-mini}   # calls of the spiking key go to the cheaper model
      token_spike: block                                    # for the spike's memory (10 minutes)

``runaway_trace`` and ``retry_storm`` act on the trace the finding names (``should_block``), the
spikes on the calls of the key (model, tenant, user, service, prompt) that spiked
(``downgrade_suggestion``). Other types are reported only: they have no call to act on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from .. import _semconv as sc
from ..errors import BudgetExceededError, ConfigError

if TYPE_CHECKING:
    from ..anomalies import AnomalyDetector, Finding

TRACE_TYPES = ("runaway_trace", "retry_storm")
SPIKE_TYPES = ("cost_spike", "token_spike")
POLICY_TYPES = TRACE_TYPES + SPIKE_TYPES
ACTIONS = ("block", "downgrade")
# What a downgrade hint is looked up by: the call's attribution dimensions (as the detector keys them).
_DIMENSIONS = (sc.GEN_AI_PROMPT_NAME, "tenant.id", "enduser.id", "service.name", sc.GEN_AI_AGENT_NAME)
_RANK = {"allow": 0, "warn": 1, "throttle": 2, "downgrade": 3, "block": 4}


@dataclass(frozen=True)
class AnomalyAction:
    kind: str  # block | downgrade
    model: Optional[str] = None  # downgrade: the cheaper model


@dataclass(frozen=True)
class AnomalyPolicy:
    """The action per finding type; types not listed are reported, never acted on."""

    actions: Mapping[str, AnomalyAction]
    source: str = "anomaly_policy"

    @property
    def trace_types(self) -> Tuple[str, ...]:
        return tuple(t for t in TRACE_TYPES if t in self.actions)

    @property
    def spike_types(self) -> Tuple[str, ...]:
        return tuple(t for t in SPIKE_TYPES if t in self.actions)


class _Where:
    """A place in the configuration, to name in errors (as ``budgets._config``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __truediv__(self, part: str) -> "_Where":
        return _Where(f"{self.path}.{part}")

    def error(self, reason: str) -> ConfigError:
        return ConfigError(f"{self.path}: {reason}")


def parse_anomaly_policy(value: Any, where: Any = None) -> Optional[AnomalyPolicy]:
    """Read ``on_anomaly``. ``where``: the file and key path errors name (``budgets._config._Where``),
    by default ``anomaly_policy`` (the processor's argument). None or {} is no policy."""
    where = where if where is not None else _Where("anomaly_policy")
    if isinstance(value, AnomalyPolicy):
        return value
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise where.error(
            f"expected a mapping of anomaly type to action, e.g. {{runaway_trace: block}}, got {type(value).__name__}")
    actions: Dict[str, AnomalyAction] = {}
    for kind, item in value.items():
        at = where / str(kind)
        if kind not in POLICY_TYPES:
            raise at.error(f"no policy acts on this type; expected one of {', '.join(POLICY_TYPES)} "
                           "(the other types are reported on the span, the counter and the log only)")
        if isinstance(item, str):
            item = {"action": item}
        if not isinstance(item, Mapping):
            raise at.error(f"expected block or {{action: downgrade, model: <a cheaper model>}}, not {item!r}")
        unknown = sorted(str(k) for k in item if k not in ("action", "model"))
        if unknown:
            raise (at / unknown[0]).error("unknown key; expected action and, for a downgrade, model")
        action = item.get("action")
        if action not in ACTIONS:
            raise (at / "action").error(f"{action!r} is not one of {', '.join(ACTIONS)}")
        model = item.get("model")
        if action == "downgrade" and (not isinstance(model, str) or not model):
            raise (at / "model").error("a downgrade needs the model to use instead, e.g. model: gpt-4o-mini")
        if action == "block" and model is not None:
            raise (at / "model").error("only a downgrade takes a model")
        actions[str(kind)] = AnomalyAction(action, model if action == "downgrade" else None)
    if not actions:
        return None
    return AnomalyPolicy(actions, source=getattr(where, "source", "") or where.path)


class AnomalyDecision:
    """A decision taken on an anomaly finding, shaped like ``budgets.Decision`` (as the hook's).

    ``outcomes`` are the budgets' own, so their warnings and numbers still reach the span."""

    reason = sc.AiCostBudgetReasonValues.ANOMALY
    deciding = None
    budget = None
    delay: Optional[float] = None

    def __init__(self, action: str, finding: "Finding", estimate: Decimal, model: Optional[str] = None,
                 outcomes: Tuple[Any, ...] = ()) -> None:
        self.action, self.finding, self.estimate, self.model, self.outcomes = action, finding, estimate, model, outcomes

    @property
    def allowed(self) -> bool:
        return self.action != "block"

    def error(self) -> BudgetExceededError:
        f = self.finding
        scope = "this trace" if f.type in TRACE_TYPES else f"key {f.key}"
        return BudgetExceededError(
            f"the call was refused before it was sent: anomaly {f.type} ({f.severity}) on {scope}, cause "
            f"{f.cause}: {f.metric} {f.observed:.6g} vs baseline {f.baseline:.6g}. The on_anomaly policy "
            f"({f.type}: block) refuses the rest of it; its earlier calls went ahead.",
            self, estimate=self.estimate,
        )

    def span_attributes(self) -> Dict[str, Any]:
        return {sc.AI_COST_BUDGET_DECISION: self.action}

    def __repr__(self) -> str:
        return f"AnomalyDecision({self.action!r}, {self.finding.type!r}, cause={str(self.finding.cause)!r})"


class AnomalyGate:
    """A policy bound to the detector whose findings it acts on; ``BudgetEnforcer.decide`` asks it
    after the budgets (and the ``before_request`` hook) decided. A stricter action wins."""

    def __init__(self, policy: AnomalyPolicy, detector: "AnomalyDetector", feed: Any = None) -> None:
        self.policy = policy
        self.detector = detector
        # The span feed runs the detector off the calls' path: the queued calls' rules run first
        # (``catch_up``: the per-trace ones; ``flush``: every rule, for a spike's downgrade).
        self.feed = feed
        self._trace_types = frozenset(policy.trace_types)
        self._spike_types = frozenset(policy.spike_types)
        if self._trace_types - detector.block_types:
            # should_block only returns the types the detector blocks: add the policy's.
            detector.block_types = detector.block_types | self._trace_types

    def decide(self, decision: Any, attributes: Mapping[str, Any], trace_id: Optional[str],
               estimate: Decimal) -> Any:
        """``decision`` (the budgets' or the hook's, or None), or the anomaly decision when stricter."""
        finding = None
        feed = self.feed
        if feed is not None:
            if self._spike_types:
                feed.flush()
            elif self._trace_types and trace_id:
                feed.catch_up()
        if self._trace_types and trace_id:
            found = self.detector.should_block(trace_id)
            if found is not None and found.type in self._trace_types:
                finding = found
        if finding is None and self._spike_types:
            model = attributes.get(sc.GEN_AI_REQUEST_MODEL)
            if isinstance(model, str) and model:
                dims = {d: str(v) for d in _DIMENSIONS if (v := attributes.get(d)) is not None and v != ""}
                found = self.detector.downgrade_suggestion(model, dims, time.time())
                if found is not None and found.type in self._spike_types:
                    finding = found
        if finding is None:
            return decision
        action = self.policy.actions[finding.type]
        current = decision.action if decision is not None else "allow"
        if _RANK.get(current, 0) >= _RANK[action.kind]:
            return decision
        outcomes = tuple(getattr(decision, "outcomes", ()) or ()) if decision is not None else ()
        return AnomalyDecision(action.kind, finding, estimate, action.model, outcomes)
