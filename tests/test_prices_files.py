"""Issue 8, item 7 (the rest): price files may write prices as JSON numbers (read exactly as
written), and `otel-ai-cost prices validate FILE` reports every problem in a file, exit 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_ai_cost import AICostSpanProcessor, CatalogError, CostEnrichingSpanExporter, Usage, compute_cost
from otel_ai_cost.config import Settings
from otel_ai_cost.pricing import Catalog
from otel_ai_cost.pricing._cli import main as prices_main

# Numbers the way people write them by hand: a float that binary cannot hold (0.15), an int, an
# exponent, and a decimal string next to them.
NUMERIC_FILE = {
    "schema_version": 1,
    "models": [{
        "id": "house-model", "provider": "openai",
        "prices": {"input": 0.15, "output": 2, "cache_read": 7.5e-2, "reasoning": "2"},
        "service_tiers": {"batch": {"input": 0.075, "output": 1}},
        "context_tiers": [{"above_input_tokens": 200000, "prices": {"input": 0.3, "output": 4}}],
    }],
}


def _write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_numeric_prices_load_exactly_as_written(tmp_path):
    path = _write(tmp_path / "prices.json", NUMERIC_FILE)
    model = Catalog.load(path, include_default=False).resolve("house-model", "openai")
    assert model.prices.input == Decimal("0.15")  # not 0.1499999999999999944488848768742172978818416595458984375
    assert str(model.prices.input) == "0.15"
    assert model.prices.output == Decimal(2)
    assert model.prices.cache_read == Decimal("0.075")
    assert model.prices.reasoning == Decimal("2")
    assert model.service_tiers["batch"].input == Decimal("0.075")
    assert model.context_tiers[0].prices.input == Decimal("0.3")
    # The exact cost: 100,000 input tokens of which 40,000 cache reads, 100,000 output tokens.
    cost = compute_cost(Usage(input_tokens=100_000, cache_read_input_tokens=40_000, output_tokens=100_000), model)
    assert cost.total == Decimal("0.06") * Decimal("0.15") + Decimal("0.04") * Decimal("0.075") + Decimal("0.1") * 2
    assert cost.total == Decimal("0.212")
    batch = compute_cost(Usage(input_tokens=100_000, output_tokens=100_000), model, service_tier="batch")
    assert batch.total == Decimal("0.1075")
    above = compute_cost(Usage(input_tokens=1_000_000), model)  # the context tier above 200k input tokens
    assert (above.context_tier, above.total) == (200000, Decimal("0.3"))


def test_numeric_price_file_prices_spans_through_the_processor_settings(tmp_path):
    path = _write(tmp_path / "prices.json", NUMERIC_FILE)
    processor = AICostSpanProcessor(settings=Settings(pricing_files=[str(path)]))
    assert processor.catalog.resolve("gpt-4o", "openai") is not None  # the bundled catalog stays under it
    inner = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(CostEnrichingSpanExporter(inner, catalog=processor.catalog)))
    tracer = provider.get_tracer("test")
    span = tracer.start_span("chat house-model", kind=SpanKind.CLIENT, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "house-model",
        "gen_ai.usage.input_tokens": 20_000, "gen_ai.usage.output_tokens": 5_000,
    })
    span.end()
    (exported,) = inner.get_finished_spans()
    attrs = exported.attributes
    assert attrs["ai_cost.pricing.status"] == "priced"
    assert attrs["ai_cost.pricing.model"] == "house-model"
    # 20,000 * $0.15/M + 5,000 * $2/M = 0.003 + 0.01
    assert attrs["gen_ai.usage.cost.amount"] == float(Decimal("0.013"))


@pytest.mark.parametrize("value,reason", [
    (-0.5, "non-negative, got -0.5"),
    (-1, "non-negative, got -1"),
    (True, "not true"),
    (False, "not false"),
    (float("nan"), "finite"),
    (float("inf"), "finite"),
    ("1e-6", "decimal string"),
    (None, "got None"),
])
def test_bad_numeric_prices_are_rejected_at_load_with_file_key_and_reason(tmp_path, value, reason):
    doc = {"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": 1, "output": value}}]}
    path = _write(tmp_path / "bad.json", doc)  # json.dumps writes NaN / Infinity, as some tools do
    with pytest.raises(CatalogError) as info:
        Catalog.load(path, include_default=False)
    message = str(info.value)
    assert message.startswith(f"{path}: models[0].prices.output: "), message
    assert reason in message and "model openai/m" in message, message


def test_negative_zero_reads_as_zero(tmp_path):
    doc = {"schema_version": 1, "models": [{"id": "m", "provider": "openai", "prices": {"input": -0.0}}]}
    model = Catalog.load(_write(tmp_path / "z.json", doc), include_default=False).resolve("m", "openai")
    assert model.prices.input == 0 and not model.prices.input.is_signed()


SEVERAL_ERRORS = {
    "schema_version": 1,
    "models": [
        {"id": "a", "provider": "openai", "prices": {"input": 1, "output": 2}},
        {"id": "b", "provider": "openai", "prices": {"input": -1, "output": True}},
        {"id": "a", "provider": "openai", "prices": {"inptu": "1"}},
        {"id": "c", "provider": "openai", "prices": {"input": 1},
         "context_tiers": [{"above_input_tokens": 200000, "prices": {"input": 2}},
                           {"above_input_tokens": 128000, "prices": {"input": float("nan")}}]},
    ],
}
EXPECTED = [  # document order
    ("models[1].prices.input", "non-negative, got -1"),
    ("models[1].prices.output", "not true"),
    ("models[2].id", "already used by models[0]"),
    ("models[2].prices", "'inptu'"),
    ("models[3].context_tiers[1].above_input_tokens", "ascending"),
    ("models[3].context_tiers[1].prices.input", "finite"),
]


def _check_all_reported(stderr: str, path: Path) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("otel-ai-cost: error: ")]
    assert len(lines) == len(EXPECTED), stderr
    for line, (key, reason) in zip(lines, EXPECTED):
        assert line.startswith(f"otel-ai-cost: error: {path}: {key}: "), line
        assert reason in line, line
    assert f"{len(EXPECTED)} errors in {path}" in stderr


def test_validate_reports_every_error_exit_2(tmp_path, capsys):
    path = _write(tmp_path / "bad.json", SEVERAL_ERRORS)
    assert prices_main(["prices", "validate", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    _check_all_reported(out.err, path)


def test_validate_through_the_installed_command_line(tmp_path):
    path = _write(tmp_path / "bad.json", SEVERAL_ERRORS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_AI_COST_")}
    done = subprocess.run([sys.executable, "-m", "otel_ai_cost", "prices", "validate", str(path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    _check_all_reported(done.stderr, path)
    good = _write(tmp_path / "good.json", NUMERIC_FILE)
    ok = subprocess.run([sys.executable, "-m", "otel_ai_cost", "prices", "validate", str(good)],
                        capture_output=True, text=True, timeout=120, env=env)
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok: 1 models")


def test_loading_stops_at_the_first_error_with_the_same_message(tmp_path, capsys):
    path = _write(tmp_path / "bad.json", SEVERAL_ERRORS)
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    prices_main(["prices", "validate", str(path)])
    first = capsys.readouterr().err.splitlines()[0]
    assert first == f"otel-ai-cost: error: {info.value}"


def test_an_unreadable_or_non_json_file_is_one_error(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"schema_version": 1,\n "models": [,]}', encoding="utf-8")
    assert prices_main(["prices", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"otel-ai-cost: error: {path}: line 2 column ") and "invalid JSON" in err
    assert prices_main(["prices", "validate", str(tmp_path / "missing.json")]) == 2
    assert "cannot read pricing file" in capsys.readouterr().err


def test_the_readme_example_price_file_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Price files", 1)[1].split("\n## ", 1)[0]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.json"
    path.write_text(example, encoding="utf-8")
    model = Catalog.load(path).resolve("acme-chat-latest", "openai")
    assert (model.id, model.prices.input, model.service_tiers["batch"].output) == (
        "acme-chat", Decimal("0.15"), Decimal("0.3"))
    assert "catalog.schema.json" in section
