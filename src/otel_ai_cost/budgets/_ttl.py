"""How long a hold lives by default: as long as the slowest call the installed SDKs allow, not a flat
15 minutes.

An SDK call ends, at the latest, when its last attempt times out: ``timeout x attempts`` plus the
back-off between attempts. A hold older than that belongs to a call that ended without settling (its
process died, or dropped it): ``budget show`` calls it stale, and it expires a margin later.

The SDKs' defaults (``SDK_TIMEOUTS``) are those of the versions this package supports, checked against
the installed SDKs by the tests; an SDK whose default is no timeout at all (google-genai) sets no bound.
"""
from __future__ import annotations

import importlib.util
from typing import Dict, Iterable, NamedTuple, Optional


class SdkTimeout(NamedTuple):
    timeout: float  # seconds per attempt
    attempts: int  # 1 + retries
    backoff: float  # the longest wait between two attempts, seconds


# module name -> the SDK's default request timeout and retries.
SDK_TIMEOUTS: Dict[str, SdkTimeout] = {
    "openai": SdkTimeout(600.0, 3, 8.0),  # openai._constants: DEFAULT_TIMEOUT read 600, DEFAULT_MAX_RETRIES 2
    "anthropic": SdkTimeout(600.0, 3, 8.0),  # anthropic._constants: the same
    "groq": SdkTimeout(60.0, 3, 8.0),  # groq._constants: DEFAULT_TIMEOUT 60, DEFAULT_MAX_RETRIES 2
    "botocore": SdkTimeout(60.0, 5, 20.0),  # botocore: read_timeout 60, legacy retry mode: 5 attempts
}
# Time after a call's latest possible end before its hold expires (clock skew between hosts, the
# settle's own round trip).
MARGIN = 60.0
# With no SDK that bounds its calls installed: the previous flat default.
FALLBACK = 900.0


def call_bound(sdk: SdkTimeout) -> float:
    """The latest a call with these settings can end, in seconds after it started."""
    return sdk.timeout * sdk.attempts + sdk.backoff * (sdk.attempts - 1)


def hold_ttl_for(timeout: float, max_retries: int = 2, backoff: float = 8.0) -> float:
    """The hold TTL for a client with this request timeout (seconds) and retries."""
    return call_bound(SdkTimeout(float(timeout), int(max_retries) + 1, backoff)) + MARGIN


def installed(modules: Optional[Iterable[str]] = None) -> Dict[str, SdkTimeout]:
    names = SDK_TIMEOUTS if modules is None else modules
    return {m: SDK_TIMEOUTS[m] for m in names if m in SDK_TIMEOUTS and importlib.util.find_spec(m) is not None}


def stale_after(modules: Optional[Iterable[str]] = None) -> float:
    """Seconds after which a hold outlived any call of the installed SDKs (with their defaults)."""
    bounds = [call_bound(t) for t in installed(modules).values()]
    return max(bounds) if bounds else FALLBACK - MARGIN


def default_hold_ttl(modules: Optional[Iterable[str]] = None) -> float:
    """The default ``hold_ttl``: the slowest call of the installed SDKs with their default timeouts
    and retries, plus a margin (1,876 s with openai or anthropic, 256 s with groq alone)."""
    return stale_after(modules) + MARGIN
