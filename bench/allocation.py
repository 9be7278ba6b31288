"""Allocation at city scale: the sparse solver with pricing against HiGHS on the full problem.

Usage: .venv/bin/python bench/allocation.py [--suppliers 5000] [--demand 20000] [--meals 3]
       [--seed 7] [--no-lp] [--json]

Generates, from the seed, a 100 x 100 km region (around 29.5 N, 121.5 E) with suppliers and
demand points spread uniformly, a delivery limit that leaves about 150 suppliers in reach of
each point, a risk weight per supplier, and capacity about 1.3 times demand, for each meal.
Then, per meal and summed over the meals:

- `optimal_cost`, `solver_seconds`: Baogong's allocation (candidates, LP, pricing of every
  allowed pair), model building and the optimality proof included;
- `lp_cost`, `lp_seconds`: HiGHS on the full problem, every allowed pair built;
- `greedy_cost`: nearest-first, each point in turn taking from its cheapest suppliers.

Prints one JSON object (with --json, one line and nothing else on stdout).
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app.supply.transport import Network, all_pairs, solve, solve_lp  # noqa: E402

SIDE_KM = 100.0
CENTRE = (29.5, 121.5)
SUPPLIERS_IN_REACH = 150
CAPACITY_RATIO = 1.3
SPEED_KMH = 30.0
DETOUR = 1.4


def generate(suppliers, demand, meal, seed):
    """One meal's network; the places are the same for every meal of a seed."""
    places = np.random.default_rng(seed)
    km_lat = 111.2
    km_lon = 111.2 * math.cos(math.radians(CENTRE[0]))

    def spread(count):
        x, y = places.uniform(-SIDE_KM / 2, SIDE_KM / 2, (2, count))
        return CENTRE[0] + y / km_lat, CENTRE[1] + x / km_lon

    s_lat, s_lon = spread(suppliers)
    d_lat, d_lon = spread(demand)
    weight = places.choice([1.0, 1.15, 1.4], size=suppliers, p=[0.7, 0.2, 0.1])

    rng = np.random.default_rng([seed, meal])
    meals = rng.integers(20, 200, demand).astype(float)
    share = rng.uniform(0.5, 1.5, suppliers)
    capacity = np.floor(share / share.sum() * meals.sum() * CAPACITY_RATIO)
    # The straight-line radius holding SUPPLIERS_IN_REACH suppliers at this density.
    radius = math.sqrt(SUPPLIERS_IN_REACH / (suppliers / SIDE_KM**2) / math.pi)
    return Network(
        supplier_lat=s_lat,
        supplier_lon=s_lon,
        capacity=capacity,
        weight=weight,
        node_lat=d_lat,
        node_lon=d_lon,
        demand=meals,
        kind=np.zeros(demand, dtype=np.int64),
        eligible=np.ones((1, suppliers), dtype=bool),
        reach_km=radius * DETOUR,
        detour=DETOUR,
        minutes_per_km=60.0 / SPEED_KMH,
    )


def greedy(network):
    """Nearest-first: points in a fixed random order, each filled from its cheapest
    suppliers with room left; what cannot be filled counts at the unmet cost."""
    suppliers, nodes, costs = all_pairs(network)
    order = np.lexsort((costs, nodes))
    suppliers, nodes, costs = suppliers[order], nodes[order], costs[order]
    starts = np.searchsorted(nodes, np.arange(network.nodes + 1))
    room = network.capacity.astype(float).copy()
    total, unmet = 0.0, 0.0
    for node in np.random.default_rng(0).permutation(network.nodes):
        need = network.demand[node]
        for at in range(starts[node], starts[node + 1]):
            if need <= 0:
                break
            supplier = suppliers[at]
            take = min(need, room[supplier])
            if take > 0:
                room[supplier] -= take
                need -= take
                total += take * costs[at]
        unmet += need
    return total + unmet * network.unmet()[0], unmet


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--suppliers", type=int, default=5000)
    parser.add_argument("--demand", type=int, default=20000)
    parser.add_argument("--meals", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-lp", action="store_true", help="skip the full-problem LP")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args()
    if min(args.suppliers, args.demand, args.meals) < 1:
        parser.error("--suppliers, --demand and --meals must be at least 1")

    totals = {"optimal_cost": 0.0, "lp_cost": 0.0, "greedy_cost": 0.0}
    seconds = {"solver_seconds": 0.0, "lp_seconds": 0.0}
    per_meal, pairs_total, unmet_total = [], 0, 0
    for meal in range(args.meals):
        network = generate(args.suppliers, args.demand, meal, args.seed)
        started = time.perf_counter()
        plan = solve(network)
        seconds["solver_seconds"] += time.perf_counter() - started
        optimal = plan.cost + float((plan.unmet * network.unmet()).sum())
        totals["optimal_cost"] += optimal
        unmet_total += int(plan.unmet.sum())
        row = {
            "meal": meal,
            "optimal_cost": optimal,
            "rounds": plan.rounds,
            "candidates": plan.candidates,
            "solver_seconds": plan.seconds,
        }

        if not args.no_lp:
            started = time.perf_counter()
            suppliers, nodes, costs = all_pairs(network)
            _x, _unmet, _u, _v, lp_cost = solve_lp(network, suppliers, nodes, costs)
            elapsed = time.perf_counter() - started
            seconds["lp_seconds"] += elapsed
            totals["lp_cost"] += lp_cost
            pairs_total += len(costs)
            row.update(lp_cost=lp_cost, lp_seconds=elapsed, pairs=len(costs))
            del suppliers, nodes, costs

        greedy_cost, _greedy_unmet = greedy(network)
        totals["greedy_cost"] += greedy_cost
        row["greedy_cost"] = greedy_cost
        per_meal.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    result = {
        "suppliers": args.suppliers,
        "demand": args.demand,
        "meals": args.meals,
        "seed": args.seed,
        **{k: round(v, 6) for k, v in totals.items()},
        **{k: round(v, 3) for k, v in seconds.items()},
        "unmet_meals": unmet_total,
        "pairs": pairs_total,
    }
    if not args.no_lp:
        result["relative_difference"] = abs(totals["optimal_cost"] - totals["lp_cost"]) / max(
            abs(totals["lp_cost"]), 1e-12
        )
        result["speedup"] = round(seconds["lp_seconds"] / seconds["solver_seconds"], 2)
    result["greedy_excess"] = round(totals["greedy_cost"] / totals["optimal_cost"] - 1, 6)
    # The most memory the process held at once, in MiB (Linux reports KiB).
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
