"""The installed otel-ai-cost version, looked up in one place (``__version__``, ``--version`` and the
instrumentation scope's version)."""
from __future__ import annotations

# The version when the package is not installed as a distribution (e.g. run from a checkout).
UNKNOWN_VERSION = "0+unknown"


def package_version() -> str:
    """The installed distribution's version, or ``UNKNOWN_VERSION``."""
    try:
        from importlib.metadata import version

        return version("otel-ai-cost")
    except Exception:  # noqa: BLE001 - no distribution metadata: never fail over a version string
        return UNKNOWN_VERSION
