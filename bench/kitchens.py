"""Kitchen activation on OR-Library "cap" instances, against a plain MIP in the same run.

Usage: .venv/bin/python bench/kitchens.py [--dir DIR] [--time-limit S] [--no-baseline] [--json]

For every cap*.txt in DIR (default: the shared OR-Library folder beside the repository;
capa, capb and capc at each of their published capacities), solves the instance with
Baogong's method and, unless --no-baseline, with one plain SCIP call on the strong
formulation under the same time limit. Where DIR's README.md publishes an optimum, each
result is shown as its ratio to it. Prints a table, or one JSON line with --json.
"""

import argparse
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "orlib")
# The capacities OR-Library publishes optima for, for the files that leave them open.
CAPACITIES = {
    "capa": (8000, 10000, 12000, 14000),
    "capb": (5000, 6000, 7000, 8000),
    "capc": (5000, 5750, 6500, 7250),
}


def published(folder):
    """Optima from the folder's README table, keyed by (name, capacity or None)."""
    table = {}
    path = os.path.join(folder, "README.md")
    if not os.path.exists(path):
        return table
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = re.fullmatch(
                r"\|\s*(cap\w+)(?:, capacity (\d+))?\s*\|\s*([0-9.]+)\s*\|\s*", line
            )
            if match:
                capacity = float(match[2]) if match[2] else None
                table[(match[1], capacity)] = float(match[3])
    return table


def plain_mip(instance, seconds):
    """One SCIP call on the strong formulation: the baseline a general solver gives."""
    from app.supply.kitchens import _mip

    started = time.perf_counter()
    result = _mip(instance, None, set(), set(), seconds, threads=1)
    elapsed = time.perf_counter() - started
    if result is None:
        return {"objective": None, "seconds": round(elapsed, 2)}
    objective, bound, _opened, optimal = result
    return {
        "objective": round(objective, 3),
        "bound": round(bound, 3),
        "proven_optimal": optimal,
        "seconds": round(elapsed, 2),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=DEFAULT_DIR)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args()

    from app.supply.kitchens import read_orlib, solve

    optima = published(args.dir)
    rows = []
    for file in sorted(os.listdir(args.dir)):
        match = re.fullmatch(r"(cap\w+)\.txt", file)
        if not match:
            continue
        name = match[1]
        with open(os.path.join(args.dir, file), encoding="ascii") as handle:
            text = handle.read()
        for capacity in CAPACITIES.get(name, (None,)):
            instance = read_orlib(text, capacity, name=file)
            solution = solve(instance, args.time_limit)
            optimum = optima.get((name, float(capacity) if capacity else None))
            row = {
                "instance": name if capacity is None else f"{name}@{capacity}",
                "objective": round(solution.objective, 3),
                "gap": round(solution.gap, 6),
                "proven_optimal": solution.proven_optimal,
                "seconds": round(solution.seconds, 2),
                "optimum": optimum,
                "ratio": round(solution.objective / optimum, 6) if optimum else None,
            }
            if not args.no_baseline:
                baseline = plain_mip(instance, args.time_limit)
                row["plain_mip"] = baseline
                if optimum and baseline["objective"]:
                    baseline["ratio"] = round(baseline["objective"] / optimum, 6)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)

    if args.json:
        print(json.dumps({"time_limit": args.time_limit, "instances": rows}))
        return
    print(
        f"{'instance':<12} {'objective':>16} {'/optimum':>9} {'gap':>9} {'proven':>6} {'s':>6}"
        f" {'plain MIP /optimum':>18}"
    )
    for row in rows:
        plain = row.get("plain_mip", {}).get("ratio")
        print(
            f"{row['instance']:<12} {row['objective']:>16.3f} {row['ratio'] or 0:>9.6f} "
            f"{row['gap']:>9.6f} {str(row['proven_optimal']):>6} {row['seconds']:>6.1f} "
            f"{plain if plain is not None else '-':>18}"
        )


if __name__ == "__main__":
    main()
