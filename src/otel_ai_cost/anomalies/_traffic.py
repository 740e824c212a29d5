"""A seeded generator of realistic GenAI traffic with injected anomalies, for tests and benchmarks.

Several tenants (skewed sizes, users each), three services (chat, summarizer, agent) with their
model mixes and prompts, a diurnal and weekly pattern, agent runs of several calls with growing
context, prompt caching, 1 % errors and occasional regenerations of the same request. Anomalies
of each type are injected at known times; every call says which incident it belongs to, if any.
"""
from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .. import _semconv as sc
from ._record import CallRecord

# USD per million tokens: input, output (cached input costs 10 % of input).
PRICES: Dict[str, Tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.6), "gpt-4o": (2.5, 10.0), "claude-3-5-haiku": (0.8, 4.0),
    "claude-sonnet-4": (3.0, 15.0), "claude-opus-4": (15.0, 75.0), "o1": (15.0, 60.0), "o3": (2.0, 8.0),
    "gpt-4.1": (2.0, 8.0), "gemini-2.5-pro": (1.25, 10.0), "gpt-4.5-preview": (75.0, 150.0),
    "mistral-large": (2.0, 6.0),
}
# the generator's event queue: (time, sequence, kind, payload): the payload is the trace state (a dict)
# for a "call", the Incident for a "special" or "volume" event
_Heap = List[Tuple[float, int, str, Any]]

NEW_MODELS = ["claude-opus-4", "o1", "o3", "gpt-4.1", "gemini-2.5-pro", "gpt-4.5-preview", "mistral-large"]
SERVICES = {
    # name: (weight, [(model, p)], [(prompt, input mean, output mean, cached fraction)], agent?)
    "chat": (0.6, [("gpt-4o-mini", 0.7), ("gpt-4o", 0.3)],
             [("chat-v1", 900, 250, 0.5), ("rag-answer", 3500, 300, 0.3)], False),
    "summarizer": (0.2, [("claude-3-5-haiku", 1.0)], [("summarize", 6000, 400, 0.0)], False),
    "agent": (0.2, [("gpt-4o", 0.6), ("claude-sonnet-4", 0.4)], [("agent-step", 2000, 350, 0.6)], True),
}
TENANTS = [("acme", 0.35, 30), ("globex", 0.25, 20), ("initech", 0.15, 12), ("umbrella", 0.1, 10),
           ("hooli", 0.1, 8), ("vandelay", 0.05, 5)]
PROMPTS = [p[0] for s in SERVICES.values() for p in s[2]]
EPOCH = 1_764_547_200.0  # 2025-12-01 00:00 UTC, a Monday


def diurnal(t: float) -> float:
    """Traffic multiplier: business hours peak, nights at 15 %, weekends at half."""
    hour = (t % 86400) / 3600
    day = int((t - EPOCH) // 86400) % 7
    bump = math.sin(math.pi * (hour - 6) / 14) if 6 <= hour <= 20 else 0.0
    return (0.15 + 0.85 * float(max(bump, 0.0) ** 1.5)) * (0.5 if day >= 5 else 1.0)


@dataclass
class Incident:
    id: int
    type: str
    start: float
    end: float
    dimension: str
    value: str
    factor: float = 1.0
    calls: int = 0  # calls labelled with it
    extra: Dict[str, object] = field(default_factory=dict)


@dataclass
class LabelledCall:
    record: CallRecord
    incident: Optional[Incident]


class Traffic:
    """``Traffic(seed, days, per_type).calls()`` yields ``LabelledCall`` in time order."""

    def __init__(self, seed: int = 1, days: float = 4.0, per_type: int = 20, peak_traces_per_s: float = 0.6,
                 warmup_days: float = 1.0, types: Optional[List[str]] = None) -> None:
        self.rng = random.Random(seed)
        self.days, self.per_type, self.peak = days, per_type, peak_traces_per_s
        self.start, self.end = EPOCH, EPOCH + days * 86400
        self.users = {t: [f"{t}-u{i}" for i in range(n)] for t, _, n in TENANTS}
        self.incidents: List[Incident] = []
        self._plan(warmup_days, types)
        self._seq = 0

    # -- the plan of incidents: one at a time, spaced out, after the warm-up -------------------

    def _plan(self, warmup_days: float, types: Optional[List[str]]) -> None:
        rng = self.rng
        kinds = types or ["cost_spike", "token_spike", "volume_spike", "runaway_trace", "retry_storm",
                          "new_model", "error_spike"]
        slots = [k for k in kinds for _ in range(self.per_type)]
        rng.shuffle(slots)
        t0 = self.start + warmup_days * 86400
        gap = (self.end - t0 - 3600) / max(len(slots), 1)
        new_models = [(m, s) for m in NEW_MODELS for s in SERVICES]
        rng.shuffle(new_models)
        for i, kind in enumerate(slots):
            start = t0 + i * gap + rng.uniform(0, gap * 0.3)
            if kind == "cost_spike":
                inc = Incident(i, kind, start, start + 1200, "tenant.id", rng.choice(TENANTS[:5])[0], rng.uniform(4, 8))
            elif kind == "token_spike":
                inc = Incident(i, kind, start, start + 1200, sc.GEN_AI_PROMPT_NAME, rng.choice(PROMPTS),
                               rng.uniform(3, 6))
            elif kind == "volume_spike":
                inc = Incident(i, kind, start, start + 600, "tenant.id", rng.choice(TENANTS[:5])[0], rng.uniform(6, 10))
            elif kind == "runaway_trace":
                inc = Incident(i, kind, start, start + 600, "trace", f"run{i:04d}", 150)
            elif kind == "retry_storm":
                inc = Incident(i, kind, start, start + 120, "trace", f"retry{i:04d}", 8)
            elif kind == "new_model":
                model, service = new_models.pop()
                inc = Incident(i, kind, start, start + 1800, "service.name", service, extra={"model": model})
            else:
                models = sorted({m for s in SERVICES.values() for m, _ in s[1]})
                inc = Incident(i, kind, start, start + 600, sc.GEN_AI_REQUEST_MODEL, rng.choice(models), 0.6)
            self.incidents.append(inc)

    def active(self, t: float, kind: str) -> List[Incident]:
        return [i for i in self.incidents if i.type == kind and i.start <= t < i.end]

    # -- calls ---------------------------------------------------------------------------------

    def calls(self) -> Iterator[LabelledCall]:
        rng = self.rng
        heap: _Heap = []
        t = self.start
        # Normal traces: a thinned Poisson process; the injected traces are pushed at their start.
        for inc in self.incidents:
            if inc.type in ("runaway_trace", "retry_storm"):
                heapq.heappush(heap, (inc.start, self._next(), "special", inc))
        next_trace = t + rng.expovariate(self.peak)
        volume = [i for i in self.incidents if i.type == "volume_spike"]
        for inc in volume:
            heapq.heappush(heap, (inc.start, self._next(), "volume", inc))
        while True:
            if heap and heap[0][0] <= next_trace:
                when, _, kind, payload = heapq.heappop(heap)
                if when >= self.end:
                    break
                if kind == "call":
                    yield from self._emit(when, payload, heap)
                elif kind == "special":
                    self._start_special(when, payload, heap)
                elif kind == "volume":
                    inc = payload
                    if when < inc.end:
                        tenant = inc.value
                        weight = dict((n, w) for n, w, _ in TENANTS)[tenant]
                        rate = inc.factor * self.peak * weight * max(diurnal(when), 0.3)
                        self._start_trace(when, heap, tenant=tenant, incident=inc)
                        heapq.heappush(heap, (when + rng.expovariate(rate), self._next(), "volume", inc))
                continue
            t = next_trace
            if t >= self.end:
                break
            next_trace = t + rng.expovariate(self.peak)
            if rng.random() < diurnal(t):
                self._start_trace(t, heap)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _start_trace(self, t: float, heap: _Heap, tenant: Optional[str] = None,
                     incident: Optional[Incident] = None) -> None:
        rng = self.rng
        if tenant is None:
            tenant = rng.choices([n for n, _, _ in TENANTS], [w for _, w, _ in TENANTS])[0]
        user = rng.choice(self.users[tenant])
        service = rng.choices(list(SERVICES), [s[0] for s in SERVICES.values()])[0]
        _, mix, prompts, agent = SERVICES[service]
        model = rng.choices([m for m, _ in mix], [p for _, p in mix])[0]
        prompt = rng.choice(prompts)[0]
        if agent:
            n = min(1 + int(rng.expovariate(0.25)), 14)
        else:
            n = 1 if rng.random() < 0.85 else rng.randint(2, 3)
        trace = f"{self._next():032x}"
        state = {"tenant": tenant, "user": user, "service": service, "model": model, "prompt": prompt, "trace": trace,
                 "left": n, "step": 0, "incident": incident, "agent": agent, "fp": None, "repeat": 0, "error": None}
        heapq.heappush(heap, (t, self._next(), "call", state))

    def _start_special(self, t: float, inc: Incident, heap: _Heap) -> None:
        tenant = self.rng.choice(TENANTS[:4])[0]
        state = {"tenant": tenant, "user": self.rng.choice(self.users[tenant]), "service": "agent",
                 "model": "gpt-4o", "prompt": "agent-step", "trace": f"{inc.value:>032}", "left": int(inc.factor),
                 "step": 0, "incident": inc, "agent": True, "fp": None, "repeat": 0,
                 "error": "429" if inc.type == "retry_storm" else None}
        if inc.type == "retry_storm":
            state["fp"] = self.rng.getrandbits(64)
            state["repeat"] = int(inc.factor)
        heapq.heappush(heap, (t, self._next(), "call", state))

    def _emit(self, t: float, s: Dict[str, Any], heap: _Heap) -> Iterator[LabelledCall]:
        rng = self.rng
        incident: Optional[Incident] = s["incident"]
        service, model, prompt = s["service"], s["model"], s["prompt"]
        dims = {"enduser.id": s["user"], "tenant.id": s["tenant"], "service.name": service,
                sc.GEN_AI_PROMPT_NAME: prompt}
        for inc in self.active(t, "new_model"):
            if inc.value == service:
                model, incident = str(inc.extra["model"]), incident or inc
        _, in_mean, out_mean, cached = next(p for p in SERVICES[service][2] if p[0] == prompt)
        in_tokens = in_mean * math.exp(rng.gauss(0, 0.35) - 0.06)
        if s["agent"]:
            in_tokens += 300 * s["step"]
        out_tokens = out_mean * math.exp(rng.gauss(0, 0.5) - 0.125)
        cost_factor = 1.0
        for inc in self.active(t, "token_spike"):
            if inc.value == prompt and incident is None:
                in_tokens *= inc.factor
                incident = inc
        for inc in self.active(t, "cost_spike"):
            if inc.value == s["tenant"] and incident is None:
                cost_factor, incident = inc.factor, inc
        error = s["error"] is not None or rng.random() < 0.01
        for inc in self.active(t, "error_spike"):
            if inc.value == model and incident is None:
                incident = inc
                error = error or rng.random() < inc.factor
        price_in, price_out = PRICES[model]
        in_tokens, out_tokens = max(int(in_tokens), 1), max(int(out_tokens), 1)
        cost = (price_in * in_tokens * (1 - cached) + price_in * 0.1 * in_tokens * cached
                + price_out * out_tokens) / 1e6
        fp = s["fp"] if s["fp"] is not None else rng.getrandbits(64)
        record = CallRecord(
            time=t, model=model, dims=dims, trace_id=s["trace"],
            provider="openai" if model.startswith(("gpt", "o")) else "other",
            cost=None if error else cost * cost_factor, input_tokens=None if error else in_tokens,
            output_tokens=None if error else out_tokens, error=error, fingerprint=fp, estimated_input_tokens=in_tokens,
        )
        if incident is not None:
            incident.calls += 1
        yield LabelledCall(record, incident)
        s["step"] += 1
        s["left"] -= 1
        if s["repeat"]:
            s["repeat"] -= 1
            s["left"] = max(s["left"], s["repeat"])
        elif not s["agent"] and s["left"] > 0 and rng.random() < 0.02:
            s["fp"] = fp  # the user regenerates: the same request once more
        else:
            s["fp"] = None
        if s["left"] > 0:
            heapq.heappush(heap, (t + rng.uniform(0.5, 4.0), self._next(), "call", s))
