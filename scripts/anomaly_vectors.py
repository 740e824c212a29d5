#!/usr/bin/env python3
"""Write the anomaly scenarios the Go collector processor is tested on: tests/vectors/anomalies/*.jsonl.

    python scripts/anomaly_vectors.py            # (re)write the scenario files
    python scripts/anomaly_vectors.py --check    # exit 1 if a file is not what the detector gives now

Each scenario is a short seeded run of the traffic generator (``otel_ai_cost.anomalies._traffic``)
fed through the Python ``AnomalyDetector``; the file holds every call as a span would carry it and
the findings the detector returned for it. Line 1 is the header: the scenario, the detector's
keyword arguments, its parameters (constructor defaults and module constants, which the Go
constants must equal) and the dimensions in order; then one call per line:

    {"t": end time (s), "model", "trace": 32 hex, "cost", "in", "out", "d": [prompt, tenant, user,
     service] values or null, "est": estimated input tokens (absent: as "in"), "err": 1 (absent: no
     error), "f": [findings] (absent: none)}

A finding is {"type", "severity", "score", "cause", "share", "metric", "observed", "baseline", "key"}.

What the file changes from the generator's calls, so that they are what spans carry: spans have no
request body, so no request fingerprint: the detector sees the weak fingerprint (model + input or
estimated input tokens, within a trace), and a call repeating an earlier call's request (the
generator's retry storms and regenerations) gets that call's input tokens, as a real repeat would.
Trace ids that are not 32 hex digits are hashed to 32 hex digits. Times are rounded to the
millisecond and costs to 12 significant digits (the detector is fed the rounded values). The
dimensions are in ``DEFAULT_DIMENSIONS`` order, as ``CallRecord.from_attributes`` gives them.

When the detector's rules or thresholds change, run this script and update the constants in
collector/processor/aicostprocessor/internal/anomaly/params.go (its test names any that differ).
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from otel_ai_cost.anomalies import _baseline, _traces  # noqa: E402
from otel_ai_cost.anomalies._detector import AnomalyDetector  # noqa: E402
from otel_ai_cost.anomalies._finding import Finding  # noqa: E402
from otel_ai_cost.anomalies._record import DEFAULT_DIMENSIONS, CallRecord  # noqa: E402
from otel_ai_cost.anomalies._traffic import Traffic  # noqa: E402

OUT = ROOT / "tests" / "vectors" / "anomalies"
# name: (Traffic arguments, AnomalyDetector arguments)
SCENARIOS: Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]] = {
    # every type once, default detector: 5.3 hours from a Monday midnight
    "mixed": ({"seed": 4, "days": 0.22, "warmup_days": 0.09, "per_type": 1}, {}),
    # runaway traces and retry storms with the configured caps (the collector's max_trace_calls / max_trace_cost)
    "capped": ({"seed": 7, "days": 0.08, "warmup_days": 0.03, "per_type": 2, "types": ["runaway_trace", "retry_storm"]},
               {"max_trace_calls": 20, "max_trace_cost": 0.05}),
    # tight memory bounds: keys evicted (46 times), traces closed early and fingerprints dropped
    "bounded": ({"seed": 9, "days": 0.012, "warmup_days": 0.004, "per_type": 1,
                 "types": ["retry_storm", "runaway_trace"]},
                {"max_keys": 40, "max_traces": 8, "max_fingerprints": 16}),
}
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def parameters() -> Dict[str, Any]:
    """The detector's numeric parameters: constructor defaults and module constants."""
    out: Dict[str, Any] = {}
    for name, p in inspect.signature(AnomalyDetector.__init__).parameters.items():
        if isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
            out[name] = p.default
    for module in (_baseline, _traces):
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = value
    return out


def _trace_id(value: Optional[str]) -> Optional[str]:
    if not value or _HEX32.match(value):
        return value
    return hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


def _records(traffic: Traffic) -> Iterator[CallRecord]:
    tokens_of: Dict[int, int] = {}  # request fingerprint -> input tokens of its first call
    for lc in traffic.calls():
        r = lc.record
        est = r.estimated_input_tokens
        if r.fingerprint is not None:
            est = tokens_of.setdefault(r.fingerprint, est or 0) or est
        dims = {d: r.dims[d] for d in DEFAULT_DIMENSIONS if d in r.dims}
        yield CallRecord(
            time=round(r.time, 3), model=r.model, dims=dims, trace_id=_trace_id(r.trace_id), provider=r.provider,
            cost=float(f"{r.cost:.12g}") if r.cost is not None else None,
            input_tokens=est if r.input_tokens is not None else None, output_tokens=r.output_tokens,
            error=r.error, fingerprint=None, estimated_input_tokens=est,
        )


def _finding(f: Finding) -> Dict[str, Any]:
    return {"type": f.type, "severity": f.severity, "score": f.score, "cause": str(f.cause), "share": f.cause.share,
            "metric": f.metric, "observed": f.observed, "baseline": f.baseline, "key": f.key}


def scenario_lines(name: str) -> List[str]:
    traffic_args, detector_args = SCENARIOS[name]
    detector = AnomalyDetector(**detector_args)
    header = {"scenario": name, "traffic": traffic_args, "detector": detector_args, "parameters": parameters(),
              "dimensions": list(DEFAULT_DIMENSIONS)}
    lines = [json.dumps(header, sort_keys=True)]
    for r in _records(Traffic(**traffic_args)):
        call: Dict[str, Any] = {"t": r.time, "model": r.model, "trace": r.trace_id, "cost": r.cost,
                                "in": r.input_tokens, "out": r.output_tokens,
                                "d": [r.dims.get(d) for d in DEFAULT_DIMENSIONS]}
        if r.estimated_input_tokens != r.input_tokens:
            call["est"] = r.estimated_input_tokens
        if r.error:
            call["err"] = 1
        findings = detector.observe(r)
        if findings:
            call["f"] = [_finding(f) for f in findings]
        lines.append(json.dumps(call, separators=(",", ":")))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a scenario file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name in SCENARIOS:
        path = OUT / f"{name}.jsonl"
        text = "\n".join(scenario_lines(name)) + "\n"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(os.path.relpath(path, ROOT))
            continue
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {os.path.relpath(path, ROOT)} ({len(text):,} bytes, {text.count(chr(10)) - 1} calls)")
    if stale:
        print("stale (run python scripts/anomaly_vectors.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
