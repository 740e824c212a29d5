"""The demo's tables: one row per finished GenAI span, aligned for a terminal."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence, Tuple

from opentelemetry.sdk.trace import ReadableSpan

from .. import _semconv as sc

DASH = "\u2014"


@dataclass
class CallRow:
    """One line of the demo's table, read from one finished GenAI span."""

    number: int
    operation: str
    model: str
    input_tokens: Optional[int]
    cached_tokens: Optional[int]
    output_tokens: Optional[int]
    reasoning_tokens: Optional[int]
    estimate: Optional[float]
    cost: Optional[float]
    pricing_status: Optional[str]
    description: str = ""
    request_model: Optional[str] = None  # gen_ai.request.model: after a downgrade, the cheaper model
    requested_model: Optional[str] = None  # ai_cost.budget.requested_model: the model asked for
    decision: Optional[str] = None  # ai_cost.budget.decision
    warned: bool = False  # the span has the ai_cost.budget.warning event

    @classmethod
    def from_span(cls, number: int, span: ReadableSpan, description: str = "") -> "CallRow":
        a: Dict[str, Any] = dict(span.attributes or {})
        return cls(
            number=number,
            operation=str(a.get(sc.GEN_AI_OPERATION_NAME, "")),
            model=str(a.get(sc.GEN_AI_RESPONSE_MODEL) or a.get(sc.GEN_AI_REQUEST_MODEL) or "?"),
            input_tokens=a.get(sc.GEN_AI_USAGE_INPUT_TOKENS),
            cached_tokens=a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            output_tokens=a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS),
            reasoning_tokens=a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
            estimate=a.get(sc.AI_COST_ESTIMATE_AMOUNT),
            cost=a.get(sc.GEN_AI_USAGE_COST_AMOUNT),
            pricing_status=a.get(sc.AI_COST_PRICING_STATUS),
            description=description,
            request_model=a.get(sc.GEN_AI_REQUEST_MODEL),
            requested_model=a.get(sc.AI_COST_BUDGET_REQUESTED_MODEL),
            decision=a.get(sc.AI_COST_BUDGET_DECISION),
            warned=any(event.name == sc.AI_COST_BUDGET_WARNING for event in span.events),
        )

    @property
    def note(self) -> str:
        status = self.pricing_status
        if status and status not in (sc.AiCostPricingStatusValues.PRICED, sc.AiCostPricingStatusValues.PROVIDER,
                                     sc.AiCostPricingStatusValues.UNKNOWN_MODEL):  # unknown: see the total
            return f"{self.description}: {status}".lstrip(": ")
        return self.description

    @property
    def asked_model(self) -> str:
        """The model the app asked for (before any downgrade)."""
        return str(self.requested_model or self.request_model or "?")

    @property
    def decision_text(self) -> str:
        if self.decision == "downgrade":
            return f"downgrade -> {self.request_model}"
        if self.decision == "block":
            return "BLOCKED"
        return self.decision or DASH



def money(value: Optional[float]) -> str:
    return DASH if value is None else f"{value:.6f}"


def usd(value: Decimal) -> str:
    return f"${value:.6f}"


def tokens_cell(total: Optional[int], part: Optional[int]) -> str:
    if total is None:
        return DASH
    return f"{total} ({part or 0})"


def genai_spans(spans: Sequence[ReadableSpan]) -> List[ReadableSpan]:
    return [s for s in spans if s.attributes and sc.GEN_AI_OPERATION_NAME in s.attributes]


def layout(header: Sequence[Tuple[str, ...]], cells: Sequence[Sequence[str]], right: Sequence[int]) -> List[str]:
    """Aligned table lines. Each header cell is a tuple of lines, bottom-aligned; ``right``: right-aligned columns."""
    depth = max(len(h) for h in header)
    head = [("",) * (depth - len(h)) + tuple(h) for h in header]
    lines_of_header = [tuple(column[level] for column in head) for level in range(depth)]
    table = lines_of_header + [tuple(row) for row in cells]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return lines


def format_table(rows: Sequence[CallRow]) -> List[str]:
    header = [("#",), ("model",), ("input", "(cached)"), ("output", "(reasoning)"), ("estimate", "USD"),
              ("cost", "USD"), ("call",)]
    cells = [
        (str(r.number), r.model, tokens_cell(r.input_tokens, r.cached_tokens),
         tokens_cell(r.output_tokens, r.reasoning_tokens), money(r.estimate), money(r.cost), r.note)
        for r in rows
    ]
    return layout(header, cells, right=(0, 2, 3, 4, 5))



def format_budget_table(rows: Sequence[CallRow], shares: Sequence[Optional[Decimal]]) -> List[str]:
    header = [("#",), ("call",), ("model",), ("estimate", "USD"), ("cost", "USD"), ("spent+est.", "of limit"),
              ("budget",)]
    cells = [
        (str(r.number), r.description, r.asked_model, money(r.estimate), money(r.cost),
         DASH if share is None else f"{share:.0%}", r.decision_text)
        for r, share in zip(rows, shares)
    ]
    return layout(header, cells, right=(0, 3, 4, 5))

