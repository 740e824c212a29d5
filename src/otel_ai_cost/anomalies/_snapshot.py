"""A detector's baselines as JSON-able values (``AnomalyDetector.snapshot``) and back (``restore``).

One entry per key: ``k<US>model<US>dimension<US>value`` (a ``KeyBaseline``), ``m<US>dimension<US>value``
(the models a value uses), ``t<US>trace key`` (the sizes of its finished traces); <US> is \\x1f.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from ._baseline import KeyBaseline
from ._new_models import NewModelWatch
from ._traces import TraceWatch


def snapshot_of(keys: Mapping[Tuple[str, str, str], KeyBaseline], new_models: NewModelWatch,
                traces: TraceWatch) -> Dict[str, List[Any]]:
    out: Dict[str, List[Any]] = {}
    for kid, k in keys.items():
        out["k\x1f" + "\x1f".join(kid)] = k.state()
    for dim, value in new_models.usage:
        out["m\x1f" + dim + "\x1f" + value] = new_models.state((dim, value))
    for tkey, s in traces.stats.items():
        out["t\x1f" + tkey] = s.state()
    return out


def restore_into(keys: Dict[Tuple[str, str, str], KeyBaseline], new_models: NewModelWatch, traces: TraceWatch,
                 snapshot: Mapping[str, List[Any]]) -> int:
    """Load ``snapshot``; a key with more calls here than there is kept. The number of entries loaded."""
    loaded = 0
    for name, s in snapshot.items():
        kind, _, rest = name.partition("\x1f")
        parts = tuple(rest.split("\x1f"))
        if kind == "k" and len(parts) == 3:
            kid = (parts[0], parts[1], parts[2])
            mine = keys.get(kid)
            k = KeyBaseline.from_state(list(s))
            if k is not None and (mine is None or mine.n < k.n):
                keys[kid] = k
                loaded += 1
        elif kind == "m" and len(parts) == 2:
            loaded += new_models.restore((parts[0], parts[1]), s)
        elif kind == "t" and len(parts) == 1:
            loaded += traces.restore(parts[0], s)
    return loaded
