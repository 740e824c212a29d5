"""What the two reports (``report --source calls``: the call ledger; ``--source budgets``: the budget
ledger) share about their groups: the check of ``--by`` and the label of a missing value."""
from __future__ import annotations

from typing import Iterable, Tuple

from .errors import ConfigError

# A group's value when the call (or entry) has none.
NONE = "(none)"


def check_by(by: Iterable[str], names: Iterable[str], attribute_key: str) -> Tuple[str, ...]:
    """The groups of ``--by``, validated: each one of ``names`` or an attribute key (a name with a
    dot; ``attribute_key`` says which, in the error), none repeated."""
    groups = tuple(by)
    known = tuple(names)
    for name in groups:
        if name not in known and "." not in name:
            raise ConfigError(f"--by {name!r}: group by one of {', '.join(known)}, or {attribute_key}")
    if len(set(groups)) != len(groups):
        raise ConfigError(f"--by {' '.join(groups)}: a group is repeated")
    return groups
