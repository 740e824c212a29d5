"""The anomaly scenarios the Go collector processor is tested on (tests/vectors/anomalies/) are what
the Python detector gives now (scripts/anomaly_vectors.py --check), and hold every finding type."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "anomalies"


def test_scenario_files_are_up_to_date() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "anomaly_vectors.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_scenarios_hold_every_type_and_stay_small() -> None:
    types: set[str] = set()
    size = 0
    for path in VECTORS.glob("*.jsonl"):
        size += path.stat().st_size
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        assert header["dimensions"] == ["gen_ai.prompt.name", "tenant.id", "enduser.id", "service.name"]
        for line in lines[1:]:
            call = json.loads(line)
            assert len(call["trace"]) == 32 and int(call["trace"], 16) >= 0  # a span's trace id
            types.update(f["type"] for f in call.get("f", []))
    assert types == {"cost_spike", "token_spike", "volume_spike", "runaway_trace", "retry_storm", "new_model",
                     "error_spike"}
    assert size < 1_000_000


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import anomaly_vectors
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    lines = anomaly_vectors.scenario_lines("capped")
    original = anomaly_vectors.OUT
    anomaly_vectors.OUT = tmp_path
    try:
        (tmp_path / "capped.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
        for other in ("mixed", "bounded"):
            (tmp_path / f"{other}.jsonl").write_text("\n".join(anomaly_vectors.scenario_lines(other)) + "\n",
                                                     encoding="utf-8")
        assert anomaly_vectors.main(["--check"]) == 1
        (tmp_path / "capped.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert anomaly_vectors.main(["--check"]) == 0
    finally:
        anomaly_vectors.OUT = original
