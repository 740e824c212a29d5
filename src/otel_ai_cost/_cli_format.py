"""How the commands print amounts and tables: ``budget ...`` and the budget report (``money``, two to
six decimals), the call ledger's ``report`` and ``recommend`` (``usd6``, always six), CSV and JSON
(``usd_number``, ``plain``), and aligned columns (``table_lines``)."""
from __future__ import annotations

import sys
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, List, Optional, Sequence, TextIO


def money(value: Decimal) -> str:
    """$12.50, $0.0123, -$3.00: two decimals at least, six at most."""
    value = value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    value = abs(value)
    text = f"{value:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"


def usd6(value: Optional[Decimal]) -> str:
    """$1,234.567890: the call ledger's amounts, six decimals always (``-`` for none)."""
    return "-" if value is None else f"${value:,.6f}"


def usd_number(value: Decimal) -> str:
    """A plain USD number for CSV and JSON: 0.031, 12.5."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def plain(value: Any) -> Any:
    """A value for CSV and JSON: a Decimal as its exact text, anything else as it is."""
    return str(value) if isinstance(value, Decimal) else value


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = (),
                strip: bool = True) -> List[str]:
    """The lines of aligned columns, two spaces apart (those in ``right`` aligned right); ``strip``: no
    trailing spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        text = "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return text.rstrip() if strip else text

    return [line(headers)] + [line(row) for row in rows]


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = (), out: Optional[TextIO] = None
) -> None:
    """Aligned columns (those in ``right`` aligned right), two spaces apart."""
    out = out or sys.stdout
    for text in table_lines(headers, rows, right):
        print(text, file=out)
