import logging

import pytest

from otel_ai_cost import ConfigError, config
from otel_ai_cost.config import OutputEstimate, Settings


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(config, "_warned_unknown", set())


def test_defaults_with_an_empty_environment():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.enabled is True
    assert settings.pricing_files is None
    assert settings.baggage_keys == ("tenant.id", "enduser.id")
    assert settings.estimate is True
    assert settings.enrich_export is True
    assert settings.output_estimate == OutputEstimate(expected_tokens=None)


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Yes", True), (" true ", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("NO", False)],
)
@pytest.mark.parametrize(
    "variable, field",
    [("OTEL_AI_COST_ENABLED", "enabled"), ("OTEL_AI_COST_ESTIMATE", "estimate"),
     ("OTEL_AI_COST_ENRICH_EXPORT", "enrich_export")],
)
def test_booleans(variable, field, raw, expected):
    assert getattr(Settings.from_env({variable: raw}), field) is expected


@pytest.mark.parametrize("variable", ["OTEL_AI_COST_ENABLED", "OTEL_AI_COST_ESTIMATE", "OTEL_AI_COST_ENRICH_EXPORT"])
def test_a_malformed_boolean_names_the_variable_and_the_value(variable):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({variable: "maybe"})
    assert str(error.value) == f"{variable}: expected true or false, got 'maybe'"


def test_the_documented_boolean_error_message():
    with pytest.raises(ConfigError, match=r"^OTEL_AI_COST_ESTIMATE: expected true or false, got 'maybe'$"):
        Settings.from_env({"OTEL_AI_COST_ESTIMATE": "maybe"})


def test_an_empty_value_counts_as_unset():
    assert Settings.from_env({"OTEL_AI_COST_ESTIMATE": "", "OTEL_AI_COST_BAGGAGE_KEYS": "  "}) == Settings()


def test_baggage_keys():
    settings = Settings.from_env({"OTEL_AI_COST_BAGGAGE_KEYS": "tenant.id, team ,cost_center"})
    assert settings.baggage_keys == ("tenant.id", "team", "cost_center")


@pytest.mark.parametrize("raw", ["tenant.id,,team", "tenant.id,", "tenant id"])
def test_malformed_baggage_keys(raw):
    with pytest.raises(ConfigError,
                       match=r"^OTEL_AI_COST_BAGGAGE_KEYS: .*expected a comma-separated list "
                             r"like tenant.id,enduser.id$"):
        Settings.from_env({"OTEL_AI_COST_BAGGAGE_KEYS": raw})


@pytest.mark.parametrize(
    "raw, expected",
    [("max_tokens", None), ("MAX_TOKENS", None), ("expected:500", 500), ("expected: 42", 42), ("Expected:1", 1)],
)
def test_output_estimate(raw, expected):
    settings = Settings.from_env({"OTEL_AI_COST_OUTPUT_ESTIMATE": raw})
    assert settings.output_estimate.expected_tokens == expected


@pytest.mark.parametrize("raw", ["expected:", "expected:0", "expected:-5", "expected:1.5", "expected", "worst", "500"])
def test_malformed_output_estimate(raw):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"OTEL_AI_COST_OUTPUT_ESTIMATE": raw})
    assert str(error.value) == (
        "OTEL_AI_COST_OUTPUT_ESTIMATE: expected 'max_tokens' or 'expected:N' with N a positive number "
        f"of tokens (e.g. expected:500), got {raw!r}"
    )


def test_output_estimate_round_trips_as_text():
    assert str(OutputEstimate.parse("expected:500")) == "expected:500"
    assert str(OutputEstimate()) == "max_tokens"


def test_pricing_files_are_left_to_the_catalog():
    # The catalog reads OTEL_AI_COST_PRICING_FILES itself; Settings only carries files given in code.
    assert Settings.from_env({"OTEL_AI_COST_PRICING_FILES": "/x.json"}).pricing_files is None
    assert Settings(pricing_files=["a.json", "b.json"]).pricing_files == ("a.json", "b.json")


def test_keyword_arguments_override_the_environment():
    settings = Settings.from_env({"OTEL_AI_COST_ESTIMATE": "false"}, estimate=True, baggage_keys=("team",))
    assert settings.estimate is True
    assert settings.baggage_keys == ("team",)


def test_code_accepts_the_environment_spellings():
    settings = Settings(output_estimate="expected:300", baggage_keys="a,b")
    assert settings.output_estimate == OutputEstimate(expected_tokens=300)
    assert settings.baggage_keys == ("a", "b")
    with pytest.raises(ConfigError, match=r"^output_estimate: expected 'max_tokens'"):
        Settings(output_estimate="lots")


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().estimate = False  # type: ignore[misc]


def test_unknown_variables_are_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.config"):
        Settings.from_env({"OTEL_AI_COST_ESTIMATES": "true", "OTEL_AI_COST_ENABLED": "true", "OTEL_SERVICE_NAME": "x"})
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "OTEL_AI_COST_ESTIMATES" in messages[0]
    assert "unknown" in messages[0]
    assert "OTEL_AI_COST_ENABLED," not in messages[0].split("(known")[0]


def test_the_build_scripts_go_cache_variable_is_not_called_unknown(caplog):
    # scripts/build-collector reads OTEL_AI_COST_GO_CACHE, and tests/conftest.py sets it for them
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.config"):
        Settings.from_env({"OTEL_AI_COST_GO_CACHE": "/tmp/go", "OTEL_AI_COST_ESTIMATES": "true"})
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "OTEL_AI_COST_GO_CACHE" not in messages[0].split("(known")[0]


def test_an_unknown_variable_is_warned_about_once(caplog):
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.config"):
        Settings.from_env({"OTEL_AI_COST_TYPO": "1"})
        Settings.from_env({"OTEL_AI_COST_TYPO": "1"})
    assert len(caplog.records) == 1


def test_variables_read_elsewhere_in_the_package_are_known(caplog):
    with caplog.at_level(logging.WARNING, logger="otel_ai_cost.config"):
        Settings.from_env({"OTEL_AI_COST_PRICING_FILES": "a.json", "OTEL_AI_COST_AZURE_DEPLOYMENTS": "d=gpt-4o"})
    assert caplog.records == []


def test_from_env_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("OTEL_AI_COST_ENABLED", "no")
    assert Settings.from_env().enabled is False
