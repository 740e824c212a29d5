"""Stores that fail fast and lose no spend (issue 8, items 2, 3, 3b), through the real openai SDK and
real stores: a redis-server started here, hung with SIGSTOP, killed; SQLite files that cannot be opened.
"""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest

import conftest
from _fake_openai import FakeOpenAI
from _redis_server import redis_server
from otel_ai_cost import AICostSpanProcessor, BudgetExceededError
from otel_ai_cost.budgets import HoldRequest, StoreUnavailableError, load_budget_config
from otel_ai_cost.budgets._model import to_nanos
from otel_ai_cost.budgets._redis import RedisBudgetStore
from otel_ai_cost.budgets._resilient import ResilientStore, unwrap
from otel_ai_cost.budgets._store import MAX_NANOS
from otel_ai_cost.config import Settings
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

MESSAGES = [{"role": "user", "content": "Say hello."}]
DEADLINE = 0.5


class Pipeline(conftest.Pipeline):
    """The shared harness with AICostSpanProcessor from a config file, our instrumentor, the real
    openai SDK against the fake API."""

    def __init__(self, config_file: Path) -> None:
        super().__init__(OpenAIInstrumentor(), config_file=str(config_file))
        self.fake = FakeOpenAI()
        self.client = self.fake.client()

    def chat(self, **kwargs):
        kwargs.setdefault("model", "gpt-4o-mini")
        kwargs.setdefault("max_tokens", 20)
        return self.client.chat.completions.create(messages=MESSAGES, **kwargs)

    def timed_chat(self, **kwargs) -> float:
        start = time.monotonic()
        self.chat(**kwargs)
        return time.monotonic() - start

    def costs(self) -> Decimal:
        """The total cost the spans report."""
        return sum((Decimal(str(s.attributes["gen_ai.usage.cost.amount"])) for s in self.exporter.get_finished_spans()
                    if "gen_ai.usage.cost.amount" in s.attributes), Decimal(0))


@pytest.fixture
def pipeline(close_later):
    return lambda config_file: close_later(Pipeline(config_file))


@pytest.fixture
def fake_openai_server():
    """The fake OpenAI API on a loopback port, for an app in another process."""
    import threading

    from test_zero_code import FakeOpenAIServer

    server = FakeOpenAIServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def redis(tmp_path):
    with redis_server(tmp_path) as url:
        yield url
        if url.process.poll() is None:
            os.kill(url.process.pid, signal.SIGCONT)  # never leave a stopped server to terminate


def write_config(tmp_path: Path, url: str, on_store_error: str = "open", extra: str = "") -> Path:
    path = tmp_path / "otel-ai-cost.yaml"
    path.write_text(textwrap.dedent(f"""\
        budgets:
          - id: team
            limit_usd: 100
            window: lifetime
        store:
          url: {url}
          on_store_error: {on_store_error}
          deadline: {int(DEADLINE * 1000)}ms
          failures: 3
          probe_interval: 100ms
          journal: {tmp_path / "journal.db"}
        """) + extra)
    return path


def otel_ai_cost_records(caplog):
    return [r for r in caplog.records if r.name.startswith("otel_ai_cost") and r.levelno >= logging.WARNING]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def spent_nanos(store, budget="team") -> int:
    return unwrap(store).spent(budget, "", ["lifetime"]).spent


# --- 2. fail closed at start-up --------------------------------------------------------------------


def test_an_unopenable_sqlite_store_refuses_calls_with_the_reason_when_closed(tmp_path, pipeline, caplog):
    (tmp_path / "blocker").write_text("a file where the store's directory should be")
    config = write_config(tmp_path, f"sqlite://{tmp_path}/blocker/budgets.db", "closed")
    p = pipeline(config)  # no ConfigError: the budgets stay on, the store is unavailable
    with pytest.raises(BudgetExceededError) as raised:
        p.chat()
    message = str(raised.value)
    assert "budget store is unavailable (fail closed)" in message
    assert "cannot create the directory" in message and "blocker" in message
    assert p.fake.requests == []  # nothing was sent
    span = p.exporter.get_finished_spans()[-1]
    assert span.attributes["ai_cost.budget.decision"] == "block"
    assert span.attributes["ai_cost.budget.reason"] == "store_error"
    with pytest.raises(BudgetExceededError):
        p.chat()
    assert len(otel_ai_cost_records(caplog)) == 1  # one line for the store, none per call

    # The store opens when the path can be created: calls are allowed again, without a restart.
    (tmp_path / "blocker").unlink()
    wait_until(lambda: not p.store.down)
    p.chat()
    assert len(p.fake.requests) == 1
    assert spent_nanos(p.store) == to_nanos(p.costs())


def test_a_missing_redis_package_refuses_calls_when_closed(tmp_path, pipeline, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` raises ImportError
    p = pipeline(write_config(tmp_path, "redis://127.0.0.1:6379/0", "closed"))
    with pytest.raises(BudgetExceededError, match=r"needs the redis client: pip install 'otel-ai-cost\[redis\]'"):
        p.chat()
    assert p.fake.requests == []


@pytest.mark.parametrize("typo, named", [
    ("budgets:\n  - {id: team, limit_usd: 1O0, window: lifetime}\n",
     "budgets[0].limit_usd: the limit in USD must be a number"),
    ("budgetz:\n  - {id: team, limit_usd: 100, window: lifetime}\n", "budgetz: unknown key"),
    ("budgets:\n  - {id: team, limit_usd: 100, window: lifetime\n", "not valid YAML"),
])
def test_a_configuration_typo_refuses_calls_when_closed(tmp_path, pipeline, typo, named, caplog):
    config = tmp_path / "otel-ai-cost.yaml"
    config.write_text(typo + "store:\n  url: memory://\n  on_store_error: closed\n")
    p = pipeline(config)
    with pytest.raises(BudgetExceededError) as raised:
        p.chat()
    assert named in str(raised.value) and str(config) in str(raised.value)
    assert p.fake.requests == []
    (record,) = otel_ai_cost_records(caplog)
    assert named in record.getMessage() and "every GenAI call is refused" in record.getMessage()


def test_a_configuration_typo_still_raises_when_open(tmp_path):
    config = tmp_path / "otel-ai-cost.yaml"
    config.write_text("budgetz: []\nstore:\n  on_store_error: open\n")
    with pytest.raises(Exception, match="budgetz: unknown key"):
        AICostSpanProcessor(settings=Settings(), config_file=str(config))


ZERO_CODE_APP = """
    import os

    import openai
    import otel_ai_cost

    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="test", max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
        print("sent")
    except otel_ai_cost.BudgetExceededError as exc:
        print("blocked:", exc)
"""


def test_zero_code_fail_closed_is_one_clear_log_line(tmp_path, fake_openai_server):
    (tmp_path / "blocker").write_text("")
    config = write_config(tmp_path, f"sqlite://{tmp_path}/blocker/budgets.db", "closed")
    (tmp_path / "app.py").write_text(textwrap.dedent(ZERO_CODE_APP))
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", OTEL_TRACES_EXPORTER="none",
               OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
               OTEL_AI_COST_CONFIG=str(config), FAKE_OPENAI_BASE_URL=fake_openai_server.base_url)
    env.pop("PYTHONPATH", None)
    result = subprocess.run([str(bin_dir / "opentelemetry-instrument"), "python", "app.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("blocked: the call was refused because the budget store is unavailable")
    assert "cannot create the directory" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "otel-ai-cost: budget store sqlite:///" in lines[0] and "calls under a budget are refused" in lines[0]
    assert "Failed to auto initialize" not in result.stderr and "Traceback" not in result.stderr
    assert fake_openai_server.requests == []


# --- 3. a hung store costs one deadline, once --------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "store"])
@pytest.mark.parametrize("on_store_error", ["open", "closed"])
def test_a_hung_redis_costs_one_deadline_then_nothing(tmp_path, redis, pipeline, caplog, on_store_error, mode):
    p = pipeline(write_config(tmp_path, redis, on_store_error, extra=f"  deadline_mode: {mode}\n"))
    assert p.store.mode == mode
    baseline = min(p.timed_chat() for _ in range(3))  # connected, scripts loaded
    os.kill(redis.process.pid, signal.SIGSTOP)  # accepts connections, never answers
    latencies = []
    outcomes = []
    for _ in range(5):
        start = time.monotonic()
        try:
            p.chat()
            outcomes.append("sent")
        except BudgetExceededError as exc:
            outcomes.append(str(exc))
        latencies.append(time.monotonic() - start)
    # The first call waits out one deadline for all its store work (the controls read, the reserve, the
    # settle): not three. The next ones do not wait at all: the breaker is open.
    assert latencies[0] < 1.5 * DEADLINE + baseline + 0.1, latencies
    assert max(latencies[1:]) < 0.1 * DEADLINE + baseline + 0.05, latencies
    if on_store_error == "open":
        assert outcomes == ["sent"] * 5
    else:
        assert all("no answer within the call's deadline (0.5 s)" in o for o in outcomes), outcomes
    records = otel_ai_cost_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "is unavailable: no answer within the call's deadline (0.5 s)" in records[0].getMessage()
    assert records[0].exc_info is None  # no traceback

    os.kill(redis.process.pid, signal.SIGCONT)
    wait_until(lambda: not p.store.down)
    assert len(otel_ai_cost_records(caplog)) == 2  # and one line when it is back
    p.chat()
    # Every dollar: the calls sent while it hung were journaled and replayed (open), or never sent (closed).
    wait_until(lambda: spent_nanos(p.store) == to_nanos(p.costs()))


def test_a_refused_connection_logs_once(tmp_path, redis, pipeline, caplog):
    p = pipeline(write_config(tmp_path, redis))
    p.chat()
    p.store.flush()  # its settle, queued (settle: queued), lands now: the 20 below are the calls made while down
    redis.process.terminate()
    redis.process.wait()
    for _ in range(20):
        p.chat()
    messages = [r.getMessage() for r in otel_ai_cost_records(caplog)]
    # The first failure, then the breaker opening after 3 in a row: two lines for 20 calls, no traceback.
    assert len(messages) == 2, messages
    assert "Connection refused" in messages[0] and "is unavailable" in messages[1]
    assert all(r.exc_info is None for r in otel_ai_cost_records(caplog))
    assert p.store.journaled()["settle"] == 20


# --- 3b. fail open loses no spend -------------------------------------------------------------------


def test_spend_made_while_redis_is_down_is_replayed_exactly_once(tmp_path, redis, pipeline, caplog):
    p = pipeline(write_config(tmp_path, redis))
    for _ in range(3):
        p.chat()
    before = to_nanos(p.costs())
    assert spent_nanos(p.store) == before
    os.kill(redis.process.pid, signal.SIGSTOP)
    for _ in range(10):
        p.chat(max_tokens=30)
    assert p.store.down and p.store.journaled()["settle"] >= 10
    os.kill(redis.process.pid, signal.SIGCONT)
    wait_until(lambda: not p.store.down)
    total = to_nanos(p.costs())
    assert total > before
    assert spent_nanos(p.store) == total  # the budget sees every dollar, once
    settles = unwrap(p.store).ledger(kind="settle")
    rids = [e.reservation_id for e in settles]
    assert len(rids) == len(set(rids)) == 13  # one settle per call, none twice
    assert sum(1 for e in settles if e.attributes.get("journaled")) >= 10
    assert p.store.journal.pending() == 0
    back = [r.getMessage() for r in otel_ai_cost_records(caplog) if "available again" in r.getMessage()]
    assert len(back) == 1 and "replayed from the journal" in back[0]


def test_a_settle_that_timed_out_but_landed_is_not_counted_twice(tmp_path, redis):
    """The settle reaches the hung server, the client gives up, the server runs it when it resumes, and
    the journal replays it: the store's settle-once marker makes the replay a no-op."""
    # Each settle sent at once (settle: immediate): the queued path is tests/test_budgets_queued_resilient.py.
    store = ResilientStore(RedisBudgetStore(redis, prefix="once", settle_interval=None), name="redis",
                           deadline=DEADLINE, probe_interval=0.1, journal=str(tmp_path / "journal.db"))
    slot = ("team", "", "lifetime")
    assert store.reserve([HoldRequest(*slot, None, 5)], "r1", 60).ok
    os.kill(redis.process.pid, signal.SIGSTOP)
    store.settle("r1", {slot: 7})  # out of time: journaled
    assert store.down and store.journal.pending() == 1
    os.kill(redis.process.pid, signal.SIGCONT)
    wait_until(lambda: not store.down)
    assert store.spent(*slot[:2], [slot[2]]).spent == 7
    assert store.journal.pending() == 0
    assert len(store.ledger(kind="settle", reservation_id="r1")) == 1
    store.close()


def test_a_journal_left_by_a_dead_process_is_replayed_at_start(tmp_path, redis):
    journal = str(tmp_path / "journal.db")
    first = ResilientStore(RedisBudgetStore(redis, prefix="left", settle_interval=None), name="redis",
                           deadline=DEADLINE, probe_interval=0.1, journal=journal)
    slot = ("team", "", "lifetime")
    redis.process.send_signal(signal.SIGSTOP)
    first.settle("gone", {slot: 11})
    assert first.journal.pending() == 1
    first._closed.set()  # the process "dies" before the store comes back
    redis.process.send_signal(signal.SIGCONT)
    second = ResilientStore(RedisBudgetStore(redis, prefix="left"), name="redis", deadline=DEADLINE, journal=journal)
    wait_until(lambda: second.journal.pending() == 0)
    wait_until(lambda: second.spent(*slot[:2], [slot[2]]).spent == 11)
    second.close()


@pytest.mark.parametrize("mode", ["thread", "store"])
def test_sqlite_store_opened_by_the_config_journals_while_locked(tmp_path, pipeline, mode):
    """A SQLite file locked by another process for longer than the deadline: the call goes on
    (fail open), its settle is journaled, and replayed once the lock is gone."""
    path = tmp_path / "budgets.db"
    p = pipeline(write_config(tmp_path, f"sqlite://{path}", extra=f"  deadline_mode: {mode}\n"))
    if mode == "store":
        assert unwrap(p.store)._timeout == DEADLINE  # SQLite's busy timeout is the deadline
    p.chat()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        start = time.monotonic()
        p.chat()
        assert time.monotonic() - start < 1.5 * DEADLINE + 0.2
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_until(lambda: not p.store.down)
    wait_until(lambda: spent_nanos(p.store) == to_nanos(p.costs()))


def test_config_keys_of_the_resilient_store(tmp_path):
    config = load_budget_config(write_config(tmp_path, "memory://"))
    assert (config.deadline, config.failures, config.probe_interval) == (DEADLINE, 3, 0.1)
    assert config.journal == str(tmp_path / "journal.db")


# --- 3c. an absurd usage does not break the settle (store part) -------------------------------------


def test_a_response_with_absurd_usage_settles_in_redis_through_the_sdk(tmp_path, redis_url, redis_prefix, pipeline,
                                                                       caplog):
    import httpx2

    from _fake_openai import chat_completion

    def absurd(body):
        reply = chat_completion()
        reply["usage"] = {"prompt_tokens": 10**18, "completion_tokens": 10**18, "total_tokens": 2 * 10**18}
        return httpx2.Response(200, json=reply)

    p = pipeline(write_config(tmp_path, redis_url, extra=f'  prefix: "{redis_prefix}"\n'))
    p.fake.chat = absurd
    p.chat()
    store = unwrap(p.store)
    (settle,) = store.ledger(kind="settle")
    usage = store.spent("team", "", ["lifetime"])
    assert usage.reserved == 0  # the hold is settled, not left behind by a failed script
    assert usage.spent == settle.amount_nanos == min(to_nanos(p.costs()), MAX_NANOS)
    assert not [r for r in otel_ai_cost_records(caplog) if "settle" in r.getMessage()]


def test_a_forked_child_probes_a_store_that_was_down_in_the_parent(tmp_path, redis):
    import multiprocessing

    store = ResilientStore(RedisBudgetStore(redis, prefix="fork"), name="redis", deadline=DEADLINE,
                           probe_interval=0.1, journal=str(tmp_path / "journal.db"))
    slot = ("team", "", "lifetime")
    redis.process.send_signal(signal.SIGSTOP)
    with pytest.raises(StoreUnavailableError):  # no answer within the deadline: the store goes down
        store.reserve([HoldRequest(*slot, None, 5)], "r", 60)
    assert store.down
    redis.process.send_signal(signal.SIGCONT)
    store._closed.set()  # the parent's probe stops: only the child's can bring the store back

    def child(done):
        store._closed.clear()
        store.settle("in-child", {slot: 3})  # down: journaled, and the child starts its own probe
        wait_until(lambda: not store.down)
        done.set()

    done = multiprocessing.get_context("fork").Event()
    process = multiprocessing.get_context("fork").Process(target=child, args=(done,))
    process.start()
    process.join(20)
    assert done.is_set() and process.exitcode == 0
    assert RedisBudgetStore(redis, prefix="fork").spent(*slot[:2], [slot[2]]).spent == 3
