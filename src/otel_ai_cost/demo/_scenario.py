"""The demo's story: the support assistant's calls, the tenant and the budget they run under.

``demo_calls`` is the sample app (one call per kind the instrumentation prices); ``budget_calls``
is the same assistant working one ticket for one tenant, each call with a bigger worst case, so
that the budget allows, warns about, downgrades and blocks them in turn.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, List

# A self-hosted model behind an OpenAI-compatible endpoint: not in the pricing catalog.
UNKNOWN_MODEL = "acme-support-llm"

_TICKET = (
    "Hi, I was charged twice for my March invoice (INV-20931) and the second charge still shows "
    "as pending on my card. Can you refund it? Thanks, Dana"
)

# The budget section: who the calls are made for, and the budget they run under.
TENANT = "acme"
USER = "dana"
BUDGET_ID = "support-daily"
CHEAPER_MODEL = "gpt-4o-mini"
WARN_AT = Decimal("0.5")
DOWNGRADE_AT = Decimal("0.8")
# The limit is sized so that the worst case of the call meant to be downgraded is this share of it:
# past the downgrade threshold, with room below 100% for what the earlier calls spent.
SIZED_SHARE = Decimal("0.85")


def _handbook() -> str:
    """A long, static system prompt: the kind of prefix OpenAI's prompt cache serves."""
    topics = ("billing", "refunds", "invoices", "account access", "data export", "plan changes",
              "outages", "security reports")
    lines = ["You are the support assistant of Acme Cloud. Follow the handbook below exactly."]
    for number in range(1, 49):
        topic = topics[number % len(topics)]
        lines.append(
            f"Rule {number} ({topic}): read the customer's message twice, quote the invoice or "
            f"ticket number when there is one, never promise a date you cannot keep, escalate "
            f"{topic} questions you cannot resolve to a human within one business day, and end "
            f"with one clear next step."
        )
    return "\n".join(lines)


def _chat(system: str) -> List[Dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": _TICKET}]


_CLASSIFY = "Classify the ticket: billing, technical or other."
_DRAFT = "Write a short, friendly reply."


@dataclass(frozen=True)
class DemoCall:
    """One call the sample app makes; ``run`` gets the OpenAI client."""

    description: str
    run: Callable[[Any], Any]


def _consume(stream: Any) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def demo_calls() -> List[DemoCall]:
    """The sample app: a support assistant triaging and answering one ticket."""
    handbook = _handbook()
    return [
        DemoCall("classify the ticket", lambda c: c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=20, messages=_chat(_CLASSIFY))),
        DemoCall("answer (prompt cache)", lambda c: c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=300, messages=_chat(handbook))),
        DemoCall("draft the reply", lambda c: c.chat.completions.create(
            model="gpt-4o", max_tokens=400, messages=_chat(_DRAFT))),
        DemoCall("stream the reply", lambda c: _consume(c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=400, stream=True, stream_options={"include_usage": True},
            messages=_chat("Rewrite the reply for a chat widget.")))),
        DemoCall("check refund policy", lambda c: c.chat.completions.create(
            model="o4-mini", max_completion_tokens=2000, reasoning_effort="medium",
            messages=[{"role": "user", "content": "Is a double charge refundable under policy 7? " + _TICKET}])),
        DemoCall("embed for search", lambda c: c.embeddings.create(
            model="text-embedding-3-small", input=[_TICKET, "double charge refund", "pending card charge"])),
        DemoCall("summarise (Responses)", lambda c: c.responses.create(
            model="gpt-5-mini", max_output_tokens=1000, reasoning={"effort": "low"},
            instructions="Summarise the ticket in one line.", input=_TICKET)),
        DemoCall("sentiment (self-hosted)", lambda c: c.chat.completions.create(
            model=UNKNOWN_MODEL, max_tokens=10,
            messages=[{"role": "user", "content": "Sentiment of this ticket? " + _TICKET}])),
    ]


@dataclass(frozen=True)
class BudgetCall:
    """One chat call of the budget section, and the decision the budget is sized to give it."""

    description: str
    model: str
    max_tokens: int
    messages: List[Dict[str, str]]
    expect: str  # allow | warn | downgrade | block

    def run(self, client: Any) -> Any:
        return client.chat.completions.create(model=self.model, max_tokens=self.max_tokens, messages=self.messages)


def budget_calls() -> List[BudgetCall]:
    """The assistant working one ticket for the tenant, each call with a bigger worst case."""
    return [
        BudgetCall("classify the ticket", "gpt-4o-mini", 20, _chat(_CLASSIFY), "allow"),
        BudgetCall("answer (prompt cache)", "gpt-4o-mini", 300, _chat(_handbook()), "allow"),
        BudgetCall("draft the reply", "gpt-4o", 400, _chat(_DRAFT), "warn"),
        BudgetCall("draft a longer reply", "gpt-4o", 600,
                   _chat("Write a detailed reply that walks through the refund steps."), "downgrade"),
        BudgetCall("escalate to billing", "gpt-4o", 1500,
                   _chat("Write a detailed escalation of this ticket for the billing team."), "block"),
    ]

