"""The demo's anomaly section: an agent stuck in a loop, found runaway by the anomaly detector (its
finding, with the cause, on an ``ai_cost.anomaly`` child of the span of the call that crossed its
threshold), and its next call refused before it is sent by the ``on_anomaly`` policy."""
from __future__ import annotations

from typing import Dict, List, Optional

from .. import _semconv as sc
from ._budget import _LogCapture
from ._context import DemoContext
from ._table import genai_spans

AGENT = "triage-bot"
# The demo's runaway threshold, calls per agent run. Without it the detector learns the threshold
# from the agent's finished runs (twice their 99.9th percentile, 50 calls before it has seen 200).
MAX_RUN_CALLS = 5
# The calls the looping agent would make if nothing stopped it.
LOOP_STEPS = 12
# The run's trace id, as its incoming traceparent would carry it (fixed: the output is the same every run).
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
_GOAL = "Find the customer's duplicate charge and refund it."


def agent_messages(step: int) -> List[Dict[str, str]]:
    """The agent's conversation at ``step``: its goal and the same tool result, again and again."""
    messages = [{"role": "system", "content": f"You are {AGENT}. Use the tools until the goal is met."},
                {"role": "user", "content": _GOAL}]
    for n in range(step):
        messages.append({"role": "assistant", "content": f"Step {n + 1}: call lookup_invoice(INV-20931)."})
        messages.append({"role": "user", "content": "lookup_invoice: timeout, try again"})
    return messages


def anomaly_section(ctx: DemoContext) -> None:
    """Run the looping agent under the detector and the policy; print the finding and the refusal."""
    from opentelemetry import context, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from .. import attribute
    from ..anomalies import AnomalyDetector, AnomalyMonitor, AnomalyReporter, Finding
    from ..errors import BudgetExceededError
    from ..processor import AICostSpanProcessor

    assert ctx.cost_processor is not None, "the anomaly section needs the demo's cost processor"
    found: List[Finding] = []
    monitor = AnomalyMonitor(AnomalyDetector(max_trace_calls=MAX_RUN_CALLS), AnomalyReporter(on_anomaly=found.append))
    processor = AICostSpanProcessor(settings=ctx.settings.replace(config_file=None) if ctx.settings else None,
                                    anomalies=monitor, anomaly_policy={"runaway_trace": "block"})
    ctx.print()
    ctx.wrap(f'Anomalies: the agent "{AGENT}" loops on a tool that keeps timing out, one agent run (one '
             "trace). The anomaly detector watches every finished GenAI span (a runaway threshold of "
             f"{MAX_RUN_CALLS} calls per run for the demo) under the policy on_anomaly: "
             "{runaway_trace: block}.")
    parent = SpanContext(TRACE_ID, 0x00F067AA0BA902B7, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    logs = _LogCapture()
    blocked: Optional[BudgetExceededError] = None
    sent_before = len(ctx.server.requests)
    all_before = len(ctx.spans())
    try:
        with ctx.cost_processor.using(processor), logs.capturing(), attribute(tenant="acme"):
            for step in range(LOOP_STEPS):
                try:
                    ctx.client.chat.completions.create(model="gpt-4o-mini", max_tokens=60,
                                                       messages=agent_messages(step))
                except BudgetExceededError as exc:
                    blocked = exc
                    break
            processor.force_flush()  # the detector's findings (made off the calls' path) reported now
    except Exception as exc:  # noqa: BLE001 - report every failed call, then exit 1
        ctx.errors.append(f"anomaly section: {type(exc).__name__}: {exc}")
        return
    finally:
        context.detach(token)
        processor.shutdown()
    exported = ctx.spans()[all_before:]
    spans = genai_spans(exported)
    sent = len(ctx.server.requests) - sent_before
    # The detector runs off the call's path: its findings come on an ai_cost.anomaly span, a child of
    # the call's span, ended when the call's span ended.
    marks = {s.parent.span_id: s for s in exported
             if s.name == sc.AI_COST_ANOMALY and s.parent is not None and s.attributes
             and sc.AI_COST_ANOMALY_TYPE in s.attributes}
    flagged = [(n, marks[s.context.span_id]) for n, s in enumerate(spans, start=1) if s.context.span_id in marks]
    if not flagged or blocked is None or len(found) != 1:
        ctx.errors.append(f"anomaly section: expected one runaway finding and a refused call, got {len(found)} "
                          f"finding(s), {len(flagged)} finding span(s) and {'a' if blocked else 'no'} refused call")
        return
    number, span = flagged[0]
    attrs = span.attributes or {}
    finding = found[0]
    ctx.wrap(f"Call {number} crossed the threshold ({finding.metric} {finding.observed:g} vs {finding.baseline:g} "
             f"allowed): a child span {span.name} of its span got the event {sc.AI_COST_ANOMALY} and "
             f"{sc.AI_COST_ANOMALY_TYPE}="
             f"{attrs.get(sc.AI_COST_ANOMALY_TYPE)}, .severity={attrs.get(sc.AI_COST_ANOMALY_SEVERITY)}, "
             f".score={attrs.get(sc.AI_COST_ANOMALY_SCORE)}, .cause={attrs.get(sc.AI_COST_ANOMALY_CAUSE)} "
             f"(the cause: this run, {finding.cause.share:.0%} of the excess). The log says:")
    for message in logs.messages:
        ctx.wrap(message, indent="    ")
    if sent != number:
        ctx.errors.append(f"anomaly section: {sent} requests sent for {number} calls before the refusal")
    received = "the fake API received nothing" if sent == number else "yet the fake API received it"
    ctx.wrap(f"Call {number + 1}, BLOCKED: BudgetExceededError raised before sending, {received}, "
             f"{sc.AI_COST_BUDGET_REASON}=anomaly:")
    ctx.wrap(str(blocked), indent="    ")
