"""The sparse allocation with pricing gives the optimum of the full problem: checked against
HiGHS on every allowed pair, with candidate sets so small that pricing must do the work."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from app.supply.transport import DEFAULT_UNMET_COST, Network, all_pairs, road_km, solve, solve_lp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def network(seed, suppliers=60, nodes=200, capacity_ratio=1.3, kinds=1, reach_km=12.0):
    rng = np.random.default_rng(seed)
    demand = rng.integers(5, 60, nodes).astype(float)
    share = rng.uniform(0.5, 1.5, suppliers)
    eligible = np.ones((kinds, suppliers), dtype=bool)
    if kinds > 1:
        eligible[1:] = rng.random((kinds - 1, suppliers)) < 0.3  # e.g. halal kitchens
    return Network(
        supplier_lat=29.9 + rng.uniform(0, 0.2, suppliers),
        supplier_lon=121.5 + rng.uniform(0, 0.2, suppliers),
        capacity=np.floor(share / share.sum() * demand.sum() * capacity_ratio),
        weight=rng.choice([1.0, 1.15, 1.4, 2.0], suppliers),
        node_lat=29.9 + rng.uniform(0, 0.2, nodes),
        node_lon=121.5 + rng.uniform(0, 0.2, nodes),
        demand=demand,
        kind=rng.integers(0, kinds, nodes),
        eligible=eligible,
        reach_km=reach_km,
    )


def full_lp(net):
    suppliers, nodes, costs = all_pairs(net)
    return solve_lp(net, suppliers, nodes, costs)[-1]


def total(plan, net):
    return plan.cost + float((plan.unmet * net.unmet()).sum())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 3, 12])
def test_the_plan_costs_what_the_full_lp_costs(seed, k):
    net = network(seed)

    plan = solve(net, k=k)

    assert total(plan, net) == pytest.approx(full_lp(net), rel=1e-9)
    if k == 1:
        assert plan.rounds > 1  # one candidate each is not enough: pricing added pairs


def test_the_plan_keeps_every_rule(seed=5):
    net = network(seed, kinds=2)

    plan = solve(net, k=2)

    sent_by = np.bincount(plan.supplier, weights=plan.meals, minlength=net.suppliers)
    received = np.bincount(plan.node, weights=plan.meals, minlength=net.nodes)
    assert np.all(sent_by <= net.capacity + 1e-9)
    assert np.allclose(received + plan.unmet, net.demand)
    assert np.all(net.eligible[net.kind[plan.node], plan.supplier])
    km = road_km(
        net.node_lat[plan.node],
        net.node_lon[plan.node],
        net.supplier_lat[plan.supplier],
        net.supplier_lon[plan.supplier],
        net.detour,
    )
    assert np.all(km <= net.reach_km)
    assert np.all(plan.meals == np.rint(plan.meals))
    assert total(plan, net) == pytest.approx(full_lp(net), rel=1e-9)


def test_a_shortage_is_reported_not_hidden():
    net = network(8, capacity_ratio=0.7)

    plan = solve(net, k=4)

    assert plan.unmet.sum() == pytest.approx(net.demand.sum() - net.capacity.sum(), abs=1)
    assert total(plan, net) == pytest.approx(full_lp(net), rel=1e-9)


def test_a_point_out_of_reach_gets_nothing():
    net = network(3, reach_km=12.0)
    far = Network(**{**net.__dict__, "node_lat": np.append(net.node_lat, 31.0),
                     "node_lon": np.append(net.node_lon, 121.6),
                     "demand": np.append(net.demand, 10.0),
                     "kind": np.append(net.kind, 0)})  # fmt: skip

    plan = solve(far)

    assert plan.unmet[-1] == 10
    assert total(plan, far) >= 10 * DEFAULT_UNMET_COST


def test_the_grid_never_misses_a_pair_in_reach():
    """Every pair within reach by haversine is among all_pairs, also far from the equator."""
    rng = np.random.default_rng(2)
    for lat in (0.0, 45.0, 68.0):
        net = Network(
            supplier_lat=lat + rng.uniform(-0.3, 0.3, 80),
            supplier_lon=10 + rng.uniform(-0.3, 0.3, 80),
            capacity=np.full(80, 10.0),
            weight=np.ones(80),
            node_lat=lat + rng.uniform(-0.3, 0.3, 50),
            node_lon=10 + rng.uniform(-0.3, 0.3, 50),
            demand=np.ones(50),
            kind=np.zeros(50, dtype=np.int64),
            eligible=np.ones((1, 80), dtype=bool),
            reach_km=15.0,
        )
        km = road_km(
            net.node_lat[:, None], net.node_lon[:, None],
            net.supplier_lat[None, :], net.supplier_lon[None, :], net.detour,
        )  # fmt: skip
        expected = int((km <= net.reach_km).sum())
        assert len(all_pairs(net)[2]) == expected, lat
        assert not math.isnan(expected)


def test_the_benchmark_prints_one_json_line():
    result = subprocess.run(
        [sys.executable, "bench/allocation.py", "--suppliers", "300", "--demand", "900",
         "--meals", "2", "--json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip

    lines = result.stdout.splitlines()
    assert len(lines) == 1
    import json

    answer = json.loads(lines[0])
    assert answer["optimal_cost"] == pytest.approx(answer["lp_cost"], rel=1e-6)
    assert answer["greedy_cost"] >= answer["optimal_cost"]
    for key in ("solver_seconds", "lp_seconds"):
        assert answer[key] > 0
