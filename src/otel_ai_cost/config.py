"""Settings from ``OTEL_AI_COST_*`` environment variables and constructor arguments.

A malformed value fails here, at configuration time, with a ``ConfigError`` that names the
variable and says what was expected. An empty variable counts as unset, as in OpenTelemetry.
"""
from __future__ import annotations

import logging
import os
from dataclasses import InitVar, dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from . import _semconv as sc
from .errors import ConfigError

__all__ = [
    "BAGGAGE_PREFIX",
    "DEFAULT_BAGGAGE_KEYS",
    "DEFAULT_OUTPUT_TOKENS",
    "ENV_ANOMALIES",
    "ENV_AZURE_DEPLOYMENTS",
    "ENV_BAGGAGE_KEYS",
    "ENV_CONFIG",
    "ENV_ENABLED",
    "ENV_ENRICH_EXPORT",
    "ENV_ESTIMATE",
    "ENV_LEDGER",
    "ENV_LEDGER_RETENTION_DAYS",
    "ENV_OPENAI_INCLUDE_USAGE",
    "ENV_OUTPUT_ESTIMATE",
    "ENV_PRICING_FILES",
    "ENV_RAISE_ON_BLOCK",
    "KNOWN_VARIABLES",
    "PREFIX",
    "OutputEstimate",
    "Settings",
    "check_environment",
]

_logger = logging.getLogger(__name__)

PREFIX = "OTEL_AI_COST_"
ENV_ENABLED = "OTEL_AI_COST_ENABLED"
ENV_PRICING_FILES = "OTEL_AI_COST_PRICING_FILES"
ENV_BAGGAGE_KEYS = "OTEL_AI_COST_BAGGAGE_KEYS"
ENV_ESTIMATE = "OTEL_AI_COST_ESTIMATE"
ENV_ENRICH_EXPORT = "OTEL_AI_COST_ENRICH_EXPORT"
ENV_OUTPUT_ESTIMATE = "OTEL_AI_COST_OUTPUT_ESTIMATE"
ENV_CONFIG = "OTEL_AI_COST_CONFIG"
ENV_RAISE_ON_BLOCK = "OTEL_AI_COST_RAISE_ON_BLOCK"
ENV_AZURE_DEPLOYMENTS = "OTEL_AI_COST_AZURE_DEPLOYMENTS"  # read by otel_ai_cost.pricing
ENV_OPENAI_INCLUDE_USAGE = "OTEL_AI_COST_OPENAI_INCLUDE_USAGE"  # read by the OpenAI instrumentor
ENV_LEDGER = "OTEL_AI_COST_LEDGER"  # the call ledger: sqlite:///path or off (zero-code default: on)
ENV_LEDGER_RETENTION_DAYS = "OTEL_AI_COST_LEDGER_RETENTION_DAYS"
ENV_ANOMALIES = "OTEL_AI_COST_ANOMALIES"  # the anomaly detector: on or off (default off)

# Every variable the package reads, here or elsewhere; anything else with the prefix is a typo.
KNOWN_VARIABLES = frozenset(
    {
        ENV_ENABLED,
        ENV_PRICING_FILES,
        ENV_BAGGAGE_KEYS,
        ENV_ESTIMATE,
        ENV_ENRICH_EXPORT,
        ENV_OUTPUT_ESTIMATE,
        ENV_CONFIG,
        ENV_RAISE_ON_BLOCK,
        ENV_AZURE_DEPLOYMENTS,
        ENV_OPENAI_INCLUDE_USAGE,
        ENV_LEDGER,
        ENV_LEDGER_RETENTION_DAYS,
        ENV_ANOMALIES,
    }
)
# Read by the project's build scripts (scripts/build-collector, scripts/test-collector), not by the
# package: not a typo, but not listed as a setting either.
SCRIPT_VARIABLES = frozenset({"OTEL_AI_COST_GO_CACHE"})

DEFAULT_BAGGAGE_KEYS: Tuple[str, ...] = ("tenant.id", "enduser.id")
# Baggage keys with this prefix are always copied onto GenAI spans, whatever BAGGAGE_KEYS says.
BAGGAGE_PREFIX = "ai_cost."

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_EXPECTED = "expected:"
_WORST_CASE = "max_tokens"

_warned_unknown: Set[str] = set()

# Output tokens assumed when neither the request's max_tokens nor the model's limit is known.
DEFAULT_OUTPUT_TOKENS = 1024


@dataclass(frozen=True)
class OutputEstimate:
    """How many output tokens to assume before the call.

    ``expected_tokens=None`` is the worst case: the request's ``max_tokens``, else the model's
    maximum output. ``expected_tokens=N`` assumes N tokens, capped by the request's ``max_tokens``.
    """

    expected_tokens: Optional[int] = None

    @classmethod
    def parse(cls, value: str, variable: str = ENV_OUTPUT_ESTIMATE) -> "OutputEstimate":
        text = value.strip().lower()
        if text == _WORST_CASE:
            return cls()
        if text.startswith(_EXPECTED):
            number = text[len(_EXPECTED) :].strip()
            if number.isdigit() and int(number) > 0:
                return cls(expected_tokens=int(number))
        raise ConfigError(
            f"{variable}: expected 'max_tokens' or 'expected:N' with N a positive number of tokens "
            f"(e.g. expected:500), got {value!r}"
        )

    def __str__(self) -> str:
        return _WORST_CASE if self.expected_tokens is None else f"{_EXPECTED}{self.expected_tokens}"

    def tokens(self, max_tokens: Optional[int], model_limit: Optional[int]) -> Tuple[int, str]:
        """The output tokens to assume for a request, and their basis (``ai_cost.estimate.output_basis``).

        The one rule for the processor's estimate and ``otel-ai-cost estimate``: the expected count
        (capped by ``max_tokens``) when set, else ``max_tokens``, else the model's limit, else
        ``DEFAULT_OUTPUT_TOKENS``.
        """
        basis = sc.AiCostEstimateOutputBasisValues
        expected = self.expected_tokens
        if expected is not None:
            if max_tokens is not None and max_tokens < expected:
                return max_tokens, basis.MAX_TOKENS
            return expected, basis.DEFAULT
        if max_tokens is not None:
            return max_tokens, basis.MAX_TOKENS
        if model_limit is not None:
            return model_limit, basis.MODEL_LIMIT
        return DEFAULT_OUTPUT_TOKENS, basis.DEFAULT


def parse_bool(value: str, variable: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{variable}: expected true or false, got {value!r}")


def parse_switch(value: str, variable: str) -> bool:
    """on / off (and the booleans' spellings)."""
    text = value.strip().lower()
    if text in _TRUE or text == "on":
        return True
    if text in _FALSE or text == "off":
        return False
    raise ConfigError(f"{variable}: expected on or off, got {value!r}")


def parse_keys(value: str, variable: str) -> Tuple[str, ...]:
    keys = tuple(key.strip() for key in value.split(","))
    for key in keys:
        if not key:
            raise ConfigError(
                f"{variable}: empty key in {value!r}: expected a comma-separated list like tenant.id,enduser.id"
            )
        if any(ch.isspace() for ch in key):
            raise ConfigError(
                f"{variable}: key {key!r} contains whitespace: "
                "expected a comma-separated list like tenant.id,enduser.id"
            )
    return keys


def parse_days(value: str, variable: str) -> float:
    try:
        days = float(value.strip())
    except ValueError:
        days = float("nan")
    if not days > 0 or days == float("inf"):
        raise ConfigError(f"{variable}: expected a positive number of days (e.g. 90), got {value!r}")
    return days


def _check_ledger(value: str, variable: str) -> None:
    """Raises ConfigError naming ``variable`` unless ``value`` is a call ledger URL (or off)."""
    from .ledger._store import parse_ledger_url

    parse_ledger_url(value, variable)


@dataclass(frozen=True)
class Settings:
    """What the processor and the zero-code path do. Build with ``Settings.from_env()`` or directly."""

    enabled: bool = True
    # None: the pricing catalog reads $OTEL_AI_COST_PRICING_FILES itself.
    pricing_files: Optional[Tuple[str, ...]] = None
    # Baggage keys copied onto GenAI spans, in addition to every key starting with "ai_cost.".
    baggage_keys: Tuple[str, ...] = DEFAULT_BAGGAGE_KEYS
    estimate: bool = True
    # Zero-code only: wrap the global provider's exporters so other instrumentations' spans get cost.
    enrich_export: bool = True
    output_estimate: OutputEstimate = field(default_factory=OutputEstimate)
    # The YAML configuration file with the budgets and their store (OTEL_AI_COST_CONFIG).
    config_file: Optional[str] = None
    # Raise BudgetExceededError from on_start for blocked spans of other instrumentations.
    # None: as the configuration file says (default false).
    raise_on_block: Optional[bool] = None
    # The call ledger (OTEL_AI_COST_LEDGER): "sqlite:///path" or "off". None: the zero-code path
    # writes the default file (otel_ai_cost.ledger.default_ledger_url()); code adds LedgerSpanExporter.
    ledger: Optional[str] = None
    # Days of call rows the ledger keeps (OTEL_AI_COST_LEDGER_RETENTION_DAYS); None keeps them all.
    ledger_retention_days: Optional[float] = None
    # The anomaly detector fed from every finished GenAI span (OTEL_AI_COST_ANOMALIES). None: off,
    # unless the configuration file has an on_anomaly policy.
    anomalies: Optional[bool] = None

    # The environment variable each field was read from (``from_env``), to name it in errors.
    variables: InitVar[Optional[Mapping[str, str]]] = None

    def __post_init__(self, variables: Optional[Mapping[str, str]]) -> None:
        # Accept the same spellings as the environment in code: Settings(output_estimate="expected:500").
        if isinstance(self.output_estimate, str):
            object.__setattr__(self, "output_estimate", OutputEstimate.parse(self.output_estimate, "output_estimate"))
        if isinstance(self.baggage_keys, str):
            object.__setattr__(self, "baggage_keys", parse_keys(self.baggage_keys, "baggage_keys"))
        else:
            object.__setattr__(self, "baggage_keys", tuple(self.baggage_keys))
        if self.pricing_files is not None and not isinstance(self.pricing_files, tuple):
            object.__setattr__(self, "pricing_files", tuple(self.pricing_files))
        names = variables or {}
        if self.ledger is not None:
            _check_ledger(self.ledger, names.get("ledger", "ledger"))
        if isinstance(self.ledger_retention_days, str):  # as from the environment: "90"
            object.__setattr__(self, "ledger_retention_days", parse_days(
                self.ledger_retention_days, names.get("ledger_retention_days", "ledger_retention_days")))
        elif self.ledger_retention_days is not None:
            parse_days(str(self.ledger_retention_days), "ledger_retention_days")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> "Settings":
        """Read ``OTEL_AI_COST_*``; keyword arguments override the environment.

        Raises ConfigError naming the variable on a malformed value, and logs a warning naming any
        unknown ``OTEL_AI_COST_*`` variable (most likely a typo).
        """
        env = os.environ if environ is None else environ
        warn_unknown(env)
        values: Dict[str, Any] = {}

        def get(name: str) -> Optional[str]:
            raw = env.get(name)
            return raw if raw is not None and raw.strip() else None

        for name, key in (
            (ENV_ENABLED, "enabled"),
            (ENV_ESTIMATE, "estimate"),
            (ENV_ENRICH_EXPORT, "enrich_export"),
            (ENV_RAISE_ON_BLOCK, "raise_on_block"),
        ):
            raw = get(name)
            if raw is not None:
                values[key] = parse_bool(raw, name)
        raw = get(ENV_BAGGAGE_KEYS)
        if raw is not None:
            values["baggage_keys"] = parse_keys(raw, ENV_BAGGAGE_KEYS)
        raw = get(ENV_CONFIG)
        if raw is not None:
            values["config_file"] = raw.strip()
        raw = get(ENV_OUTPUT_ESTIMATE)
        if raw is not None:
            values["output_estimate"] = OutputEstimate.parse(raw, ENV_OUTPUT_ESTIMATE)
        # Checked by __post_init__, naming the variable (an overridden one here: malformed, it still fails).
        variables: Dict[str, str] = {}
        for name, key, check in ((ENV_LEDGER, "ledger", _check_ledger),
                                 (ENV_LEDGER_RETENTION_DAYS, "ledger_retention_days", parse_days)):
            raw = get(name)
            if raw is not None and key in overrides:
                check(raw, name)
            elif raw is not None:
                values[key] = raw.strip() if key == "ledger" else raw
                variables[key] = name
        raw = get(ENV_ANOMALIES)
        if raw is not None:
            values["anomalies"] = parse_switch(raw, ENV_ANOMALIES)
        values.update(overrides)
        return cls(**values, variables=variables)

    def replace(self, **changes: Any) -> "Settings":
        return replace(self, **changes)


def check_environment(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """``Settings.from_env`` plus every ``OTEL_AI_COST_*`` variable read elsewhere in the package.

    Raises ConfigError naming the first malformed variable, its value and the reason, so that a bad
    value is found in one place, at configuration time, whichever variable it is: the booleans, the
    keys and the output estimate (here), ``OTEL_AI_COST_OPENAI_INCLUDE_USAGE`` (the OpenAI
    instrumentor), ``OTEL_AI_COST_AZURE_DEPLOYMENTS`` and each file of ``OTEL_AI_COST_PRICING_FILES``
    (the pricing catalog; a file's content is checked when the catalog loads it). With
    ``OTEL_AI_COST_ENABLED=false`` nothing else is read: otel-ai-cost is off.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_ENABLED)
    if raw is not None and raw.strip() and not parse_bool(raw, ENV_ENABLED):
        return Settings(enabled=False)
    settings = Settings.from_env(env)
    raw = env.get(ENV_OPENAI_INCLUDE_USAGE)
    if raw is not None and raw.strip():
        parse_bool(raw, ENV_OPENAI_INCLUDE_USAGE)
    raw = env.get(ENV_AZURE_DEPLOYMENTS)
    if raw is not None and raw.strip():
        from .pricing._catalog import parse_azure_deployments

        parse_azure_deployments(raw, ENV_AZURE_DEPLOYMENTS)
    raw = env.get(ENV_PRICING_FILES)
    if raw is not None and raw.strip():
        for item in raw.split(os.pathsep):
            if item.strip() and not os.path.isfile(item):
                reason = "is a directory" if os.path.isdir(item) else "no such file"
                raise ConfigError(f"{ENV_PRICING_FILES}: bad item {item!r}: {reason}")
    return settings


class ZeroCodeState:
    """What the zero-code check (``_zero_code.check_configuration``) decided for this process."""

    checked = False  # it ran (the process runs under opentelemetry-instrument)
    off: Optional[str] = None  # why otel-ai-cost is off, or None when it is on


zero_code_state = ZeroCodeState()


def instrumentation_off() -> Optional[bool]:
    """For our instrumentors: True when the zero-code check switched otel-ai-cost off, False when it
    found it on, None when it did not run in this process (code: the instrumentor checks itself)."""
    return (zero_code_state.off is not None) if zero_code_state.checked else None


def unknown_variables(environ: Mapping[str, str]) -> List[str]:
    return sorted(name for name in environ
                  if name.startswith(PREFIX) and name not in KNOWN_VARIABLES and name not in SCRIPT_VARIABLES)


def warn_unknown(environ: Mapping[str, str]) -> None:
    names = [name for name in unknown_variables(environ) if name not in _warned_unknown]
    if names:
        _warned_unknown.update(names)
        _logger.warning(
            "otel-ai-cost: unknown environment variable(s) %s ignored (known: %s)",
            ", ".join(names),
            ", ".join(sorted(KNOWN_VARIABLES)),
        )
