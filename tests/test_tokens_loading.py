"""The tokenizer's load, off the call's path: a span that starts while it loads is estimated with the
heuristic and never waits for it; when a budget needs the estimate it waits for a load from the disk
cache, and holds an upper bound instead of waiting for a first parse; once loaded, every count is
tiktoken's exactly. Through the real openai SDK on a faked
transport; loads are held back by a gate, so that "still loading" is a state, not a race."""
from __future__ import annotations

import contextlib
import gzip
import io
import logging
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from _fake_openai import FakeOpenAI
from conftest import Pipeline
from otel_ai_cost import _tiktoken_offline, tokens
from otel_ai_cost._request import TokenCount
from otel_ai_cost.budgets import Budget, MemoryBudgetStore, lifetime
from otel_ai_cost.instrumentation.openai import OpenAIInstrumentor

MODEL = "gpt-4o-mini"  # o200k_base
# A word the heuristic and the tokenizer count differently (so that the method is visible in the count).
CONTENT = "Supercalifragilisticexpialidocious internationalization"
MESSAGES = [{"role": "user", "content": CONTENT}]
LOADER_THREADS = ("otel-ai-cost-warm-up", "otel-ai-cost-tokenizer")


def _join_loaders() -> None:
    for thread in threading.enumerate():
        if thread.name in LOADER_THREADS:
            thread.join(timeout=30)


def _forget() -> None:
    _tiktoken_offline.reset()
    tokens._cached_count.cache_clear()


class Gate:
    """``_tiktoken_offline._build`` held until ``open()``; ``calls`` lists the encodings it built."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls, self.event = real, [], threading.Event()

    def __call__(self, name: str) -> Any:
        self.calls.append(name)
        assert self.event.wait(30), "the gate was never opened"
        return self.real(name)

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gate(monkeypatch) -> Iterator[Gate]:
    """No encoding loaded (the disk cache of the run stays: loads are fast once the gate opens)."""
    _join_loaders()
    _forget()
    gate = Gate(_tiktoken_offline._build)
    monkeypatch.setattr(_tiktoken_offline, "_build", gate)
    yield gate
    gate.open()
    _join_loaders()
    _forget()


def _reference_chat_tokens(content: str) -> int:
    """The chat formula by hand with tiktoken's own Encoding: 3 per message + role + content, + 3."""
    encoding = _tiktoken_offline.build_tiktoken_encoding("o200k_base")
    return 3 + len(encoding.encode_ordinary("user")) + len(encoding.encode_ordinary(content)) + 3


def _heuristic_chat_tokens(content: str) -> int:
    return 3 + tokens.heuristic_tokens("user") + tokens.heuristic_tokens(content) + 3


@contextlib.contextmanager
def pipeline(**processor_kwargs: Any) -> Iterator[Pipeline]:
    with contextlib.closing(Pipeline(OpenAIInstrumentor(), **processor_kwargs)) as p:
        yield p


def _call_in_thread(client: Any) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10), daemon=True
    )
    thread.start()
    return thread


def test_the_two_counts_differ():
    # What the other tests tell apart: the heuristic's count of the request and tiktoken's.
    assert _heuristic_chat_tokens(CONTENT) != _reference_chat_tokens(CONTENT)


def test_a_span_starting_while_the_tokenizer_loads_gets_the_heuristic_and_is_not_held(gate):
    with pipeline() as p:
        client = FakeOpenAI().client()
        call = _call_in_thread(client)
        call.join(timeout=30)
        assert not call.is_alive(), "the call waited for the tokenizer"  # the gate is still closed
        (first,) = p.spans()
        assert first.attributes["ai_cost.estimate.method"] == "heuristic"
        assert first.attributes["ai_cost.estimate.input_tokens"] == _heuristic_chat_tokens(CONTENT)
        assert gate.calls == ["o200k_base"]  # the span start asked for the load, in the background
        assert _tiktoken_offline.loaded("o200k_base") is None

        gate.open()
        assert _tiktoken_offline.get_encoding("o200k_base") is not None  # waits for the load under way
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        second = p.last()
        assert second.attributes["ai_cost.estimate.method"] == "tiktoken"
        assert second.attributes["ai_cost.estimate.input_tokens"] == _reference_chat_tokens(CONTENT)
    assert gate.calls == ["o200k_base"]  # loaded once


def test_counts_made_while_loading_are_not_kept_as_the_tokenizers(gate):
    counted = _tiktoken_offline.without_waiting(lambda: tokens.count_text(CONTENT, MODEL))
    assert counted == TokenCount(tokens.heuristic_tokens(CONTENT), "heuristic")
    gate.open()
    _tiktoken_offline.get_encoding("o200k_base")
    expected = len(_tiktoken_offline.build_tiktoken_encoding("o200k_base").encode_ordinary(CONTENT))
    # The same text again (the count cache is keyed by encoding): tiktoken's count, waited for or not.
    again = _tiktoken_offline.without_waiting(lambda: tokens.count_text(CONTENT, MODEL))
    assert again == TokenCount(expected, "tiktoken")
    assert tokens.count_text(CONTENT, MODEL) == TokenCount(expected, "tiktoken")


def test_a_budget_waits_for_a_load_from_the_disk_cache_and_holds_the_exact_estimate(gate):
    assert _tiktoken_offline._cached_on_disk("o200k_base")  # the run's cache (conftest loaded it)
    _tiktoken_offline.preload("o200k_base")  # as instrument() does: the load is under way
    assert gate.calls == ["o200k_base"]
    store = MemoryBudgetStore()
    with pipeline(budgets=[Budget("b", "1000", lifetime())], budget_store=store) as p:
        client = FakeOpenAI().client()
        call = _call_in_thread(client)
        call.join(timeout=0.5)
        assert call.is_alive()  # the gate is closed: the call waits for the tokenizer before it holds money
        assert store.ledger(kind="reserve") == []
        gate.open()
        call.join(timeout=30)
        assert not call.is_alive()
        (span,) = p.spans()
        assert span.attributes["ai_cost.estimate.method"] == "tiktoken"
        assert span.attributes["ai_cost.estimate.input_tokens"] == _reference_chat_tokens(CONTENT)
        (reserve,) = store.ledger(kind="reserve")
        # gpt-4o-mini: $0.15 / M input, $0.60 / M output (https://openai.com/api/pricing); max_tokens=10.
        expected = (Decimal(_reference_chat_tokens(CONTENT)) * Decimal("0.15") + 10 * Decimal("0.60")) / 1_000_000
        assert reserve.amount == expected
        assert Decimal(str(span.attributes["ai_cost.estimate.amount"])) == expected
    assert gate.calls == ["o200k_base"]  # the budget shared the load under way


def test_a_budget_does_not_wait_for_a_first_parse_and_holds_an_upper_bound(gate, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no cache: the tokenizer has to be parsed
    store = MemoryBudgetStore()
    with pipeline(budgets=[Budget("b", "1000", lifetime())], budget_store=store) as p:
        client = FakeOpenAI().client()
        call = _call_in_thread(client)
        call.join(timeout=30)
        assert not call.is_alive(), "the call waited for the tokenizer's parse"  # the gate is still closed
        (span,) = p.spans()
        # 3 per message + "user" + the content, as UTF-8 bytes, + 3: at least what tiktoken counts.
        bound = 3 + len(b"user") + len(CONTENT.encode("utf-8")) + 3
        assert bound > _reference_chat_tokens(CONTENT)
        assert span.attributes["ai_cost.estimate.method"] == "upper_bound"
        assert span.attributes["ai_cost.estimate.input_tokens"] == bound
        (reserve,) = store.ledger(kind="reserve")
        # gpt-4o-mini: $0.15 / M input, $0.60 / M output (https://openai.com/api/pricing); max_tokens=10.
        assert reserve.amount == (Decimal(bound) * Decimal("0.15") + 10 * Decimal("0.60")) / 1_000_000

        gate.open()
        assert _tiktoken_offline.get_encoding("o200k_base") is not None  # the parse went on in the background
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        assert p.last().attributes["ai_cost.estimate.method"] == "tiktoken"
        assert p.last().attributes["ai_cost.estimate.input_tokens"] == _reference_chat_tokens(CONTENT)
    assert gate.calls == ["o200k_base"]


def test_the_upper_bound_is_never_below_tiktokens_count(gate, monkeypatch, tmp_path):
    gate.open()
    encoding = _tiktoken_offline.build_tiktoken_encoding("o200k_base")
    texts = ["", "hello world", CONTENT, "ünïcödé 日本語のテキスト 🎉🎉", "a\ud800b", " " * 50, "x" * 300,
             (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")]
    for text in texts:
        assert tokens._utf8_bytes(text) >= len(encoding.encode_ordinary(text)), text[:40]
    tools = [{"type": "function", "function": {"name": "f", "description": "adds", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}}}}}]
    requests = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": CONTENT}],
        [{"role": "user", "content": [{"type": "text", "text": "describe"},
                                      {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
        [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                               "function": {"name": "f", "arguments": '{"a": 1}'}}]},
         {"role": "tool", "tool_call_id": "c1", "content": "42"}],
    ]
    exact = [tokens.estimate_chat_input(MODEL, messages, tools=tools) for messages in requests]
    _forget()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no cache: the bound is counted
    monkeypatch.setattr(_tiktoken_offline, "preload", lambda name="": None)  # and nothing loads meanwhile
    bounded = [
        _tiktoken_offline.counting("upper_bound", lambda m=messages: tokens.estimate_chat_input(MODEL, m, tools=tools))
        for messages in requests
    ]
    assert [e.method for e in exact] == ["tiktoken"] * 3
    assert [b.method for b in bounded] == ["upper_bound"] * 3
    assert all(b.tokens >= e.tokens for b, e in zip(bounded, exact)), (bounded, exact)


def test_a_tokenizer_that_cannot_load_is_the_heuristic_also_for_budgets(gate, monkeypatch):
    gate.open()
    monkeypatch.setitem(_tiktoken_offline._EXPECTED_SHA256, "o200k_base", "0" * 64)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # no cache
    assert _tiktoken_offline.get_encoding("o200k_base") is None  # failed, for good
    counted = _tiktoken_offline.counting("upper_bound", lambda: tokens.count_text(CONTENT, MODEL))
    assert counted == TokenCount(tokens.heuristic_tokens(CONTENT), "heuristic")


def test_a_budget_loads_the_tokenizer_itself_when_nothing_is_loading(gate):
    gate.open()
    store = MemoryBudgetStore()
    with pipeline(budgets=[Budget("b", "1000", lifetime())], budget_store=store) as p:
        FakeOpenAI().client().chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        assert p.last().attributes["ai_cost.estimate.method"] == "tiktoken"
    assert gate.calls == ["o200k_base"]


def test_a_background_load_that_fails_leaves_the_heuristic(gate, monkeypatch, caplog):
    monkeypatch.setitem(_tiktoken_offline._EXPECTED_SHA256, "o200k_base", "0" * 64)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # no cache: the file is read and fails its check
    gate.open()
    with caplog.at_level(logging.WARNING), pipeline() as p:
        client = FakeOpenAI().client()
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        assert _tiktoken_offline.get_encoding("o200k_base") is None  # the load under way, over: failed
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        assert [s.attributes["ai_cost.estimate.method"] for s in p.spans()] == ["heuristic", "heuristic"]
        heuristic = _heuristic_chat_tokens(CONTENT)
        assert [s.attributes["ai_cost.estimate.input_tokens"] for s in p.spans()] == [heuristic, heuristic]
    assert len([r for r in caplog.records if "cannot load tokenizer o200k_base" in r.getMessage()]) == 1
    assert gate.calls == ["o200k_base"]  # tried once


def test_without_a_thread_the_next_waiting_caller_loads_it(gate, monkeypatch):
    gate.open()

    def no_thread(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    assert _tiktoken_offline.without_waiting(lambda: tokens.count_text("hello world", MODEL)).method == "heuristic"
    assert gate.calls == []
    assert tokens.count_text("hello world", MODEL) == TokenCount(2, "tiktoken")  # loaded on this thread
    assert gate.calls == ["o200k_base"]


def test_preload_does_not_wait_and_loads_once(gate):
    _tiktoken_offline.preload("o200k_base")
    _tiktoken_offline.preload("o200k_base")
    _tiktoken_offline.preload("not_an_encoding")
    assert _tiktoken_offline.loaded("o200k_base") is None  # the gate is closed, preload returned
    gate.open()
    assert _tiktoken_offline.get_encoding("o200k_base").encode_ordinary("hello world") == [24912, 2375]
    assert gate.calls == ["o200k_base"]


# ----------------------------------------------------------------------------- the parse, in pieces


def test_the_file_parsed_in_pieces_cut_anywhere_gives_the_same_tables(monkeypatch):
    data = _tiktoken_offline._checked_bpe_bytes("cl100k_base")
    whole = _tiktoken_offline.CompactBPE.parse("cl100k_base", data)
    monkeypatch.setattr(_tiktoken_offline, "_BATCH", 4093)  # pieces cut inside lines, a prime size
    cut = _tiktoken_offline.CompactBPE.parse("cl100k_base", data)
    pieces = _tiktoken_offline._checked_bpe_lines("cl100k_base")
    streamed = _tiktoken_offline.CompactBPE.parse_lines("cl100k_base", pieces)
    for other in (cut, streamed):
        blob, offsets, slots = other.tables()
        assert blob == whole.tables()[0]
        assert list(offsets) == list(whole.tables()[1])
        assert list(slots) == list(whole.tables()[2])
    assert streamed.encode("hello world") == [15339, 1917]


@pytest.mark.parametrize(
    "data",
    [
        b"YQ== 0\nYg== 2\n",  # a rank skipped
        b"YQ== 0\nYg==\n",  # a rank missing
        b"YQ== 0\nYg== one\n",  # not a number
        b"YQ== 0 Yg== 1\n",  # two tokens on one line
    ],
)
def test_a_malformed_file_is_refused(data):
    with pytest.raises(ValueError):
        _tiktoken_offline.CompactBPE.parse("o200k_base", data)


def test_a_tiny_vocabulary_parses_and_merges():
    # a=0, b=1, ab=2: "ab" is one token, "ba" two.
    compact = _tiktoken_offline.CompactBPE.parse("o200k_base", b"YQ== 0\nYg== 1\nYWI= 2\n")
    assert compact.n_vocab == 3
    assert compact.encode_ordinary("ab") == [2]
    assert compact.encode_ordinary("ba") == [1, 0]


def test_a_corrupted_gz_fails_its_check_after_the_last_piece(monkeypatch):
    data = _tiktoken_offline._read_bpe_bytes("cl100k_base")
    damaged = gzip.compress(data.replace(b" 17\n", b" 17 \n", 1))
    monkeypatch.setattr(_tiktoken_offline, "_open_gz", lambda name: io.BytesIO(damaged))
    pieces: List[bytes] = []
    with pytest.raises(ValueError, match="SHA-256"):
        for piece in _tiktoken_offline._checked_bpe_lines("cl100k_base"):
            pieces.append(piece)
    assert b"".join(pieces) == data.replace(b" 17\n", b" 17 \n", 1)  # every piece read before the check


def _read_stream_in_thread(client: Any, chunks: List[Any]) -> threading.Thread:
    def read() -> None:
        chunks.extend(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_a_stream_tokenising_its_deltas_never_waits_for_the_tokenizer(gate, monkeypatch):
    # No usage asked for (injection off): every delta is tokenised as the user reads it. While the
    # tokenizer loads (the gate is closed) the deltas are counted with the heuristic, and no read waits.
    monkeypatch.setenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", "false")
    with pipeline() as p:
        fake = FakeOpenAI(parts=[CONTENT, " ", CONTENT])
        chunks: List[Any] = []
        read = _read_stream_in_thread(fake.client(), chunks)
        read.join(timeout=30)
        assert not read.is_alive(), "a read of the stream waited for the tokenizer"  # the gate is still closed
        assert _tiktoken_offline.loaded("o200k_base") is None  # still loading
        assert "stream_options" not in fake.requests[0] and chunks
        (span,) = p.spans()
        a = span.attributes
        assert a["ai_cost.usage.source"] == "estimated"
        heuristic = 2 * tokens.heuristic_tokens(CONTENT) + tokens.heuristic_tokens(" ")
        assert a["gen_ai.usage.output_tokens"] == heuristic
        gate.open()
        exact = tokens.count_text(CONTENT, MODEL).tokens
        assert exact != tokens.heuristic_tokens(CONTENT)  # so the count above is the heuristic's
    assert gate.calls == ["o200k_base"]  # loaded once, in the background


def test_a_stream_ending_without_usage_or_start_estimate_never_waits_for_the_tokenizer(
        gate, tracer_provider, meter_provider, span_exporter, monkeypatch):
    # No AICostSpanProcessor (no start estimate) and a provider that ignores stream_options: the input
    # is estimated on the user's last read, with the heuristic while the tokenizer loads, without waiting.
    monkeypatch.delenv("OTEL_AI_COST_OPENAI_INCLUDE_USAGE", raising=False)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        chunks: List[Any] = []
        read = _read_stream_in_thread(FakeOpenAI(usage_on_stream=False).client(), chunks)
        read.join(timeout=30)
        assert not read.is_alive(), "the end of the stream waited for the tokenizer"  # the gate is still closed
        assert _tiktoken_offline.loaded("o200k_base") is None  # still loading
        (span,) = span_exporter.get_finished_spans()
        a = span.attributes
        assert a["ai_cost.usage.source"] == "estimated"
        assert a["gen_ai.usage.input_tokens"] == _heuristic_chat_tokens(CONTENT)
        assert "ai_cost.estimate.method" not in a  # no processor: no start estimate
    finally:
        instrumentor.uninstrument()
