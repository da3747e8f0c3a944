"""``python -m bench.compare A.json B.json``: do two ``make bench`` runs agree?

Prints every top-level figure of both results files side by side, with how far
apart they are: the larger over the smaller, minus one (``0.25`` is 25 %, the same
whichever file comes first). A figure whose two values differ by more than the
tolerance (30 % unless ``--tolerance`` says otherwise) is marked, and the exit
status is 1 when any is; a figure either run could not measure is listed as such
and counts as a disagreement too, since nothing says the runs agree on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .report import FIGURES

DEFAULT_TOLERANCE = 0.30


def apart(first: float, second: float) -> float:
    """The larger of two figures over the smaller, minus one (0 when they are equal)."""
    if first == second:
        return 0.0
    low, high = sorted((abs(first), abs(second)))
    if low == 0.0 or (first < 0) != (second < 0):
        return float("inf")
    return high / low - 1.0


def compare(
    first: dict[str, Any], second: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE
) -> list[dict[str, Any]]:
    """One row per top-level figure: both values, how far apart, and whether they agree."""
    rows = []
    for key, label, unit, _target in FIGURES:
        a, b = first.get(key), second.get(key)
        row: dict[str, Any] = {"key": key, "label": label, "unit": unit, "a": a, "b": b}
        if isinstance(a, int | float) and isinstance(b, int | float):
            row["apart"] = apart(float(a), float(b))
            row["agree"] = row["apart"] <= tolerance
        else:
            row["apart"] = None
            row["agree"] = False
        rows.append(row)
    return rows


def _shown(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:,.1f}"


def table(rows: list[dict[str, Any]], tolerance: float) -> str:
    lines = [f"{'figure':40} {'A':>10} {'B':>10} {'apart':>8}", "-" * 72]
    for row in rows:
        far = row["apart"]
        far_shown = "n/a" if far is None else ("inf" if far == float("inf") else f"{far:.0%}")
        mark = "" if row["agree"] else f"  <- over {tolerance:.0%}"
        lines.append(
            f"{row['label']:40} {_shown(row['a']):>10} {_shown(row['b']):>10} {far_shown:>8}{mark}"
        )
    disagree = sum(1 for row in rows if not row["agree"])
    lines.append(f"{len(rows) - disagree} of {len(rows)} figures within {tolerance:.0%}")
    return "\n".join(lines)


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"cannot read {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise SystemExit(f"{path} is not a bench results file (no object at the top)")
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description="Compare the top-level figures of two make bench results files.",
    )
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="how far apart two figures may be, as a fraction (default 0.3)",
    )
    args = parser.parse_args(argv)
    if args.tolerance < 0:
        parser.error("--tolerance is a fraction of zero or more")
    rows = compare(_load(args.first), _load(args.second), args.tolerance)
    print(table(rows, args.tolerance))
    return 0 if all(row["agree"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
