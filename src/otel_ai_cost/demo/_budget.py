"""The demo's budget section: the assistant for one tenant under a per-tenant budget sized at run
time from the catalog prices, so that its calls are allowed, warned about, downgraded and blocked;
then what the budget store recorded."""
from __future__ import annotations

import contextlib
import logging
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import _semconv as sc
from ._context import DemoContext
from ._scenario import (
    BUDGET_ID,
    CHEAPER_MODEL,
    DOWNGRADE_AT,
    SIZED_SHARE,
    TENANT,
    USER,
    WARN_AT,
    BudgetCall,
    budget_calls,
)
from ._table import CallRow, format_budget_table, genai_spans, usd


def _significant(value: Decimal, digits: int = 3) -> Decimal:
    return value.quantize(Decimal(1).scaleb(value.adjusted() - digits + 1), rounding=ROUND_HALF_EVEN)


def estimate_call(processor: Any, call: BudgetCall) -> Optional[Decimal]:
    """What the processor will estimate for the call (worst case: its max_tokens), in USD, or None."""
    from .._request import LLMRequest
    from ..tokens import estimate_chat_input

    request = LLMRequest(provider="openai", operation="chat", model=call.model, max_output_tokens=call.max_tokens,
                         estimate_input=lambda: estimate_chat_input(call.model, call.messages))
    estimate = processor.estimate(request)
    return estimate.amount if estimate is not None else None


def size_budget(processor: Any, calls: Sequence[BudgetCall]) -> Tuple[Optional[Decimal], str]:
    """The budget's limit, from the catalog price of the call meant to be downgraded, or (None, why not)."""
    number, call = next((i, c) for i, c in enumerate(calls, start=1) if c.expect == "downgrade")
    estimate = estimate_call(processor, call)
    if estimate is None or estimate <= 0:
        return None, f"{call.model} has no price in the pricing catalog"
    return _significant(estimate / SIZED_SHARE), (
        f"sized at run time from the catalog price of {call.model}: call {number}'s worst case, "
        f"{usd(estimate)}, is {SIZED_SHARE:.0%} of it"
    )


class _LogCapture(logging.Handler):
    """Collects what otel-ai-cost logs while the budget section runs (shown in the report instead)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def capturing(self, name: str = "otel_ai_cost") -> Iterator["_LogCapture"]:
        logger = logging.getLogger(name)
        propagate = logger.propagate
        logger.addHandler(self)
        logger.propagate = False
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.propagate = propagate



def budget_section(ctx: DemoContext) -> None:
    """Run the assistant for one tenant under a budget: allowed calls, a warning, a downgrade, a block."""
    from ..budgets import Budget, MemoryBudgetStore, Threshold, calendar, downgrade, warn
    from ..config import OutputEstimate, Settings
    from ..processor import AICostSpanProcessor

    assert ctx.cost_processor is not None, "the budget section needs the demo's cost processor"
    # Worst-case estimates (max_tokens), whatever OTEL_AI_COST_OUTPUT_ESTIMATE says: the story depends on it.
    settings = (ctx.settings if ctx.settings is not None else Settings()).replace(
        output_estimate=OutputEstimate(), estimate=True, config_file=None)
    plain = AICostSpanProcessor(settings=settings)
    calls = budget_calls()
    ctx.print()
    limit, sizing = size_budget(plain, calls)
    if limit is None:
        ctx.wrap(f"Budgets: skipped, {sizing}.")
        return
    budget = Budget(
        BUDGET_ID, limit, calendar("day"), per="tenant.id",
        thresholds=(Threshold(WARN_AT, warn()), Threshold(DOWNGRADE_AT, downgrade(CHEAPER_MODEL))),  # + block at 100%
    )
    processor = AICostSpanProcessor(settings=settings, catalog=plain.catalog, budgets=[budget],
                                    budget_store=MemoryBudgetStore())
    ctx.wrap(f'Budgets: the same assistant, for tenant "{TENANT}" (user "{USER}"), under the per-tenant '
             f'budget "{BUDGET_ID}": {usd(limit)} a day, {sizing}. Before each call is sent, the '
             "tenant's spend so far plus the call's worst-case estimate decides: warn from "
             f"{WARN_AT:.0%} of the limit, downgrade to {CHEAPER_MODEL} from {DOWNGRADE_AT:.0%}, block past 100%.")
    try:
        _run_budget_calls(ctx, processor, calls)
        _spend_report(ctx, processor.budget_book)
    finally:
        processor.shutdown()


def _run_budget_calls(ctx: DemoContext, processor: Any, calls: Sequence[BudgetCall]) -> None:
    """Make the calls for the tenant under the budget; print their table and what each decision did."""
    from .. import attribute
    from ..errors import BudgetExceededError

    assert ctx.cost_processor is not None
    book = processor.budget_book
    rows: List[CallRow] = []
    shares: List[Optional[Decimal]] = []
    notes: List[Tuple[str, List[str]]] = []  # (headline, details), printed under the table
    logs = _LogCapture()
    with ctx.cost_processor.using(processor), logs.capturing(), attribute(tenant=TENANT, user=USER):
        for number, call in enumerate(calls, start=1):
            before_spans = len(genai_spans(ctx.spans()))
            before_requests = len(ctx.server.requests)
            before_logs = len(logs.messages)
            usage = book.usage(BUDGET_ID, TENANT)
            blocked: Optional[BudgetExceededError] = None
            try:
                call.run(ctx.client)
            except BudgetExceededError as exc:
                blocked = exc
            except Exception as exc:  # noqa: BLE001 - report every failed call, then exit 1
                ctx.errors.append(f"budget call {number} ({call.description}): {type(exc).__name__}: {exc}")
            new = genai_spans(ctx.spans())[before_spans:]
            if not new:
                ctx.errors.append(f"budget call {number} ({call.description}) produced no span")
                continue
            row = CallRow.from_span(number, new[0], call.description)
            rows.append(row)
            estimate = Decimal(str(row.estimate)) if row.estimate is not None else None
            shares.append(None if estimate is None
                          else (usage.spent + usage.reserved + estimate) / usage.limit)
            if row.decision != call.expect:
                ctx.errors.append(f"budget call {number} ({call.description}): expected the budget to "
                                  f"{call.expect} it, it decided {row.decision or 'nothing'}")
            if row.warned:
                logged = logs.messages[before_logs:]
                headline = (f"Call {number}, warn: the span got the event {sc.AI_COST_BUDGET_WARNING}"
                            + (", and otel-ai-cost logged:" if logged else "."))
                notes.append((headline, [m.replace("otel-ai-cost: ", "", 1) for m in logged]))
            if row.decision == "downgrade":
                notes.append((f"Call {number}, downgrade: sent to {row.request_model} instead of "
                              f"{row.requested_model}; the span says so:",
                              [f"{sc.GEN_AI_REQUEST_MODEL}={row.request_model}, "
                               f"{sc.AI_COST_BUDGET_REQUESTED_MODEL}={row.requested_model}"]))
            if blocked is not None:
                sent = len(ctx.server.requests) - before_requests
                if sent:
                    ctx.errors.append(f"budget call {number} was blocked but {sent} request(s) were sent")
                received = "the fake API received nothing" if not sent else f"yet the fake API received {sent}"
                notes.append((f"Call {number}, BLOCKED: {BudgetExceededError.__name__} raised before sending, "
                              f"{received}:", [str(blocked)]))

    ctx.print()
    for line in format_budget_table(rows, shares):
        ctx.print("  " + line)
    ctx.print()
    for headline, details in notes:
        ctx.wrap(headline)
        for detail in details:
            ctx.wrap(detail, indent="    ")


def _spend_report(ctx: DemoContext, book: Any) -> None:
    """What the budget store recorded for the tenant: spend, limit, what is left, spend per model."""
    usage = book.usage(BUDGET_ID, TENANT)
    ledger = book.store.ledger(budget_id=BUDGET_ID, key=TENANT)
    ledger = [e for e in ledger if e.window_key == usage.window_key]
    by_model: Dict[str, List[Decimal]] = {}
    kinds: Dict[str, int] = {}
    for entry in ledger:
        kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        if entry.kind == "settle":
            model = str(entry.attributes.get(sc.GEN_AI_RESPONSE_MODEL) or "?")
            by_model.setdefault(model, []).append(entry.amount)
    share = usage.spent / usage.limit if usage.limit else Decimal(0)
    ctx.print()
    ctx.print(f'  Spend report from the budget store: budget "{BUDGET_ID}", tenant.id={TENANT}, '
              f"window {usage.window_key}")
    held = f", {usd(usage.reserved)} held by calls in flight" if usage.reserved else ""
    ctx.print(f"    spent {usd(usage.spent)} of {usd(usage.limit)} ({share:.0%}), "
              f"{usd(usage.remaining)} remaining{held}")
    models = ", ".join(f"{model} {usd(sum(amounts, Decimal(0)))} ({len(amounts)} call"
                       f"{'' if len(amounts) == 1 else 's'})"
                       for model, amounts in sorted(by_model.items(), key=lambda kv: -sum(kv[1], Decimal(0))))
    ctx.wrap(f"by model: {models or 'no spend'}", indent="    ", subsequent="      ")
    decided = ", ".join(f"{kinds.get(kind, 0)} {kind}" for kind in ("warn", "downgrade", "block"))
    ctx.wrap(f"ledger: {kinds.get('reserve', 0)} holds placed, {kinds.get('settle', 0)} settled; decisions "
             f"logged: {decided}", indent="    ")

