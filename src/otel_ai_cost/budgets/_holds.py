"""Which holds in flight are stale, for ``otel-ai-cost budget show``.

A hold is stale when the call that placed it cannot still be running: its process, on this host, is
gone, or it is older than the longest call the installed SDKs allow with their default timeouts and
retries (``_ttl.stale_after``). A stale hold still counts against its budget until it expires (its
``hold_ttl``), and then, with ``on_expired_hold: charge_estimate`` (the default), its amount is
charged to its window; ``budget show`` says so, and by when.
"""
from __future__ import annotations

import os
import socket
import time
from decimal import Decimal
from typing import Callable, Iterable, List, Optional

from ._store import HoldInfo
from ._ttl import stale_after


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def stale_reason(hold: HoldInfo, now: float, after: float, host: Optional[str] = None) -> Optional[str]:
    """Why ``hold`` is stale, or None if its call may still be running."""
    host = socket.gethostname() if host is None else host
    if hold.holder:
        where, _, pid = hold.holder.rpartition(":")
        if where == host and pid.isdigit() and not _running(int(pid)):
            return f"process {pid} is not running"
    if hold.placed_at is not None and now - hold.placed_at > after:
        return f"older than the longest SDK call ({_ago(after)})"
    return None


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def hold_lines(holds: Iterable[HoldInfo], money: Callable[[Decimal], str], now: Optional[float] = None,
               after: Optional[float] = None) -> List[str]:
    """The ``holds in flight`` section of ``budget show``: one line per hold, stale ones marked."""
    now = time.time() if now is None else now
    after = stale_after() if after is None else after
    holds = list(holds)
    if not holds:
        return ["holds in flight: none"]
    reasons = [stale_reason(h, now, after) for h in holds]
    stale = [h for h, r in zip(holds, reasons) if r]
    total = sum((h.amount for h in holds), Decimal(0))
    head = f"holds in flight: {len(holds)} ({money(total)})"
    if stale:
        stale_total = sum((h.amount for h in stale), Decimal(0))
        head += f"; {len(stale)} stale ({money(stale_total)}), counted until they expire"
    lines = [head]
    for hold, reason in zip(holds, reasons):
        placed = (
            f"placed {_ago(now - hold.placed_at)} ago" if hold.placed_at is not None else "placed at an unknown time"
        )
        by = f" by {hold.holder}" if hold.holder else ""
        key = f" {hold.key}" if hold.key else ""
        mark = f"  STALE: {reason}" if reason else ""
        lines.append(f"  {hold.reservation_id[:12]}{key}  {money(hold.amount)}  {placed}{by},"
                     f" expires in {_ago(hold.expires_at - now)}{mark}")
    return lines
