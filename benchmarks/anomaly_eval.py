"""Precision, recall, false positives and time to detect of the anomaly detector on seeded traffic,
and the time it adds per call.

    .venv/bin/python benchmarks/anomaly_eval.py                 # 4 days, 20 incidents per type, seed 1
    .venv/bin/python benchmarks/anomaly_eval.py --seed 2 --days 6 --per-type 30
    .venv/bin/python benchmarks/anomaly_eval.py --bench 0 --misses -v   # every miss, wrong cause, false positive

A finding is right for an incident when its type is one ACCEPT allows for the incident's type,
it falls in the incident (or the 5 minutes after it), and it is on one of the incident's calls or
names the incident's value (its tenant, prompt, model, trace). Its cause is right when the first
finding of the incident's type names the value the generator injected.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from otel_ai_cost.anomalies import TYPES, AnomalyDetector  # noqa: E402
from otel_ai_cost.anomalies._traffic import Traffic  # noqa: E402

# Findings of these types are right for an incident of the key's type (a runaway agent's growing
# context is also a token spike; a retried 429 is also an error spike; a new model's price shows as
# a cost spike).
ACCEPT = {
    "cost_spike": {"cost_spike", "runaway_trace"},
    "token_spike": {"token_spike", "runaway_trace"},
    "volume_spike": {"volume_spike"},
    "runaway_trace": {"runaway_trace", "token_spike", "cost_spike", "volume_spike"},
    "retry_storm": {"retry_storm", "error_spike", "volume_spike"},
    "new_model": {"new_model", "cost_spike", "token_spike", "volume_spike", "runaway_trace"},
    "error_spike": {"error_spike"},
}


def related(finding, inc, label) -> bool:
    if finding.type not in ACCEPT[inc.type] or not (inc.start <= finding.time <= inc.end + 300):
        return False
    if label is inc:
        return True
    if inc.type == "new_model":
        return finding.model == inc.extra["model"] or finding.cause.value == inc.value
    if inc.dimension == "gen_ai.request.model":
        return finding.model == inc.value
    return finding.cause.value == inc.value or inc.value in finding.dims.values()


def right_cause(finding, inc) -> bool:
    return finding.cause.value.lstrip("0") == inc.value.lstrip("0")


def print_misses(traffic, first, nearby) -> None:
    """Every missed incident (with the findings made while it ran) and every wrong cause."""
    for inc in traffic.incidents:
        hour = (inc.start - traffic.start) / 3600
        head = (f"#{inc.id} {inc.type} {inc.dimension}={inc.value} x{inc.factor:.2f} {inc.extra or ''}"
                f" at +{hour:.1f} h (hour {hour % 24:.1f}), {inc.calls} calls")
        if inc.id not in first:
            print("\nMISSED", head)
            for f, own in nearby[inc.id][:6]:
                print("   ", "own" if own else "other", f.describe())
        elif not right_cause(first[inc.id][1], inc):
            n, f = first[inc.id]
            print("\nWRONG CAUSE", head, f"\n    after {n} calls:", f.describe())


def evaluate(args) -> int:
    traffic = Traffic(seed=args.seed, days=args.days, per_type=args.per_type)
    calls = list(traffic.calls())
    detector = AnomalyDetector()
    seen = defaultdict(int)  # incident id -> its calls so far
    first = {}  # incident id -> (calls after onset, finding)
    fp = defaultdict(int)
    tp = defaultdict(int)
    normal = 0
    runaway_after = []
    nearby = defaultdict(list)  # incident id -> findings of any type during it (for --misses)
    for lc in calls:
        label = lc.incident
        if label is None:
            normal += 1
        else:
            seen[label.id] += 1
        for f in detector.observe(lc.record):
            if args.misses:
                for inc in traffic.incidents:
                    if inc.start <= f.time <= inc.end + 300:
                        nearby[inc.id].append((f, label is inc))
            matched = [i for i in traffic.incidents if related(f, i, label)]
            if not matched:
                fp[f.type] += 1
                if args.verbose:
                    print("FP", f.describe(), file=sys.stderr)
                continue
            tp[f.type] += 1
            for inc in matched:
                if f.type == inc.type and inc.id not in first:
                    first[inc.id] = (seen[inc.id], f)
                    if f.type == "runaway_trace":
                        runaway_after.append(int(f.observed) - int(f.baseline))
    print(f"seed {args.seed}, {args.days} days, {len(calls):,} calls ({normal:,} normal), "
          f"{len(traffic.incidents)} incidents, {detector.key_count} keys\n")
    print("| type | incidents | recall | precision | FP | right cause | calls to detect (median / max) |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    total_fp = 0
    for kind in TYPES:
        incs = [i for i in traffic.incidents if i.type == kind]
        found = [first[i.id] for i in incs if i.id in first]
        recall = len(found) / len(incs) if incs else float("nan")
        precision = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else float("nan")
        right = sum(1 for i in incs if i.id in first and right_cause(first[i.id][1], i))
        delays = [n for n, _ in found]
        delay = f"{statistics.median(delays):.0f} / {max(delays)}" if delays else "-"
        print(f"| {kind} | {len(incs)} | {recall:.2f} | {precision:.2f} | {fp[kind]} "
              f"| {right}/{len(found)} | {delay} |")
        total_fp += fp[kind]
        ok &= recall >= 0.95
    if args.misses:
        print_misses(traffic, first, nearby)
    per10k = total_fp / normal * 10_000
    print(f"\nfalse positives: {total_fp} on {normal:,} normal calls = {per10k:.2f} per 10,000")
    if runaway_after:
        print(f"runaway traces: flagged {max(runaway_after)} calls (max) after crossing the threshold "
              f"(median {statistics.median(runaway_after):.0f})")
    if args.bench:
        records = [lc.record for lc in calls]
        times = []
        for _ in range(args.bench):
            d = AnomalyDetector()
            gc.collect()
            start = time.perf_counter_ns()
            for r in records:
                d.observe(r)
            times.append((time.perf_counter_ns() - start) / len(records) / 1000)
        print(f"time per observe(): median {statistics.median(times):.2f} µs over {args.bench} runs of "
              f"{len(records):,} calls (min {min(times):.2f})")
    ok &= per10k <= 1.0
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=float, default=4.0)
    p.add_argument("--per-type", type=int, default=20)
    p.add_argument("--bench", type=int, default=3, help="timed runs of observe() over the same calls (0: none)")
    p.add_argument("--misses", action="store_true", help="print every missed incident and every wrong cause")
    p.add_argument("-v", "--verbose", action="store_true", help="print every false positive")
    return evaluate(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
