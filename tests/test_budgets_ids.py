"""Reservation and operator-change ids: 32 hex digits, unique in a process and across forks, and
different in their first digits (``budget show`` prints the first 12)."""
from __future__ import annotations

import multiprocessing
import re

from otel_ai_cost.budgets._store import new_id


def test_ids_are_unique_hex_and_differ_in_their_first_digits():
    ids = [new_id() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[:12] for i in ids}) == len(ids)


def _child_ids(conn) -> None:
    conn.send([new_id() for _ in range(1000)])
    conn.close()


def test_a_forked_child_draws_its_own_ids():
    fork = multiprocessing.get_context("fork")
    before = new_id()
    parent_end, child_end = fork.Pipe()
    child = fork.Process(target=_child_ids, args=(child_end,))
    child.start()
    from_child = parent_end.recv()
    child.join(timeout=30)
    assert child.exitcode == 0
    from_parent = [new_id() for _ in range(1000)]
    assert not set(from_child) & set(from_parent)
    assert {i[16:] for i in from_child} != {before[16:]}  # the child's per-process part was drawn again
