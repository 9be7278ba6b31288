"""Kitchen activation (capacitated facility location): optimal on OR-Library instances and on
small random ones checked by enumerating every set of kitchens; bad files refused."""

import itertools
import json
import re

import numpy as np
import pytest

from app.errors import InvalidInput
from app.supply.kitchens import Instance, read_orlib, solve
from tests.test_cap import SHARED_CAP

ORLIB = SHARED_CAP.parent / "orlib"
needs_orlib = pytest.mark.skipif(
    not ORLIB.is_dir(), reason=f"OR-Library instances not found at {ORLIB}"
)


def published_optima():
    """The optima the shared folder's README publishes, keyed by (file, capacity)."""
    table = {}
    for line in (ORLIB / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\|\s*(cap\w+)(?:, capacity (\d+))?\s*\|\s*([0-9.]+)\s*\|", line)
        if match:
            capacity = float(match[2]) if match[2] else None
            table[(match[1], capacity)] = float(match[3])
    return table


def enumerate_optimum(instance):
    """The optimum by trying every set of kitchens with an LP for the serving: slow, but
    shares nothing with the solver under test."""
    from ortools.linear_solver import pywraplp

    best = np.inf
    m, n = instance.sites, instance.customers
    for size in range(1, m + 1):
        for chosen in itertools.combinations(range(m), size):
            if instance.capacity[list(chosen)].sum() < instance.demand.sum():
                continue
            solver = pywraplp.Solver.CreateSolver("GLOP")
            x = {(j, i): solver.NumVar(0, 1, "") for j in range(n) for i in chosen}
            for j in range(n):
                solver.Add(sum(x[j, i] for i in chosen) == 1)
            for i in chosen:
                served = sum(instance.demand[j] * x[j, i] for j in range(n))
                solver.Add(served <= instance.capacity[i])
            solver.Minimize(sum(instance.cost[j, i] * x[j, i] for (j, i) in x))
            if solver.Solve() == solver.OPTIMAL:
                total = solver.Objective().Value() + instance.fixed[list(chosen)].sum()
                best = min(best, total)
    return best


def random_instance(seed, sites=7, customers=25, fractional=False):
    rng = np.random.default_rng(seed)
    where_sites = rng.uniform(0, 100, (sites, 2))
    where_customers = rng.uniform(0, 100, (customers, 2))
    demand = rng.integers(5, 40, customers).astype(float)
    if fractional:
        demand += rng.uniform(0, 1, customers).round(2)
    distance = np.linalg.norm(where_customers[:, None, :] - where_sites[None, :, :], axis=2)
    capacity = rng.integers(60, 250, sites).astype(float)
    capacity *= max(1.0, 1.3 * demand.sum() / capacity.sum())
    return Instance(
        capacity=capacity,
        fixed=rng.uniform(200, 2000, sites).round(1),
        demand=demand,
        cost=(distance * demand[:, None]).round(3),
    )


@needs_orlib
@pytest.mark.parametrize("name", ["cap61", "cap71", "cap101"])
def test_orlib_instances_are_solved_to_their_published_optima(name):
    instance = read_orlib((ORLIB / f"{name}.txt").read_text())

    solution = solve(instance, time_limit=60)

    assert solution.proven_optimal
    assert solution.objective == pytest.approx(published_optima()[(name, None)], rel=1e-6)
    assert solution.gap <= 1e-6
    # The plan is what it costs: its kitchens cover the demand.
    assert instance.capacity[solution.open].sum() >= instance.demand.sum()


@needs_orlib
def test_capa_is_within_one_percent_with_an_honest_gap():
    instance = read_orlib((ORLIB / "capa.txt").read_text(), capacity=14000)

    solution = solve(instance, time_limit=60)

    optimum = published_optima()[("capa", 14000.0)]
    assert solution.objective <= optimum * 1.01
    assert solution.bound <= optimum * (1 + 1e-9)  # a bound, never above the optimum
    assert solution.gap == pytest.approx((solution.objective - solution.bound) / solution.objective)


@pytest.mark.parametrize("seed", range(4))
def test_small_random_instances_match_enumeration(seed):
    instance = random_instance(seed)

    solution = solve(instance, time_limit=30)

    assert solution.proven_optimal
    assert solution.objective == pytest.approx(enumerate_optimum(instance), rel=1e-6)


def test_fractional_demands_are_served_exactly():
    instance = random_instance(11, sites=5, customers=12, fractional=True)

    solution = solve(instance, time_limit=30)

    assert solution.objective == pytest.approx(enumerate_optimum(instance), rel=1e-6)


# Reading files


def test_a_file_leaving_capacities_open_needs_a_capacity():
    text = "2 1\n capacity 10.\n capacity 20.\n5 1.0 2.0\n"

    with pytest.raises(InvalidInput) as refused:
        read_orlib(text)
    assert "capacity" in refused.value.errors

    instance = read_orlib(text, capacity=7)
    assert list(instance.capacity) == [7, 7]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("2 1\n10 5\n10 x\n5 1 2\n", "line 3"),  # not a number
        ("2 1\n10 5\n10 5\n5 1 nan\n", "line 4"),  # NaN is no cost
        ("2 1\n10 5\n10 5\n5 1\n", "file"),  # ends early
        ("2 1\n10 5\n10 5\n5 1 2 3\n", "line 4"),  # one number too many
        ("2 1\n10 5\n10 5\n5 1 -2\n", "cost"),
        ("2 1\n1 5\n1 5\n5 1 2\n", "capacity"),  # 2 meals of room for 5 needed
        ("0 1\n", "line 1"),
    ],
)
def test_a_bad_file_is_refused_naming_the_place(text, where):
    with pytest.raises(InvalidInput) as refused:
        read_orlib(text, name="file")
    assert where in refused.value.errors


def test_the_command_prints_one_json_line(app, tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("2 2\n10 5\n10 50\n4 8 1\n4 2 8\n")

    result = app.test_cli_runner().invoke(args=["supply", "solve-orlib", str(path)])

    assert result.exit_code == 0
    answer = json.loads(result.stdout.strip())
    assert answer["objective"] == 15  # kitchen 1 alone: 5 to open, 8 + 2 to serve
    assert answer["open"] == [1]
    assert answer["proven_optimal"] is True and answer["gap"] == 0
    assert {"objective", "proven_optimal", "gap", "seconds"} <= set(answer)


@pytest.mark.parametrize(
    ("content", "args", "says"),
    [
        (" 2 1\n capacity 5\n capacity 5\n3 1 1\n", [], "--capacity"),
        ("2 1\n10 5\n10 x\n5 1 2\n", [], "line 3"),
        ("2 1\n10 5\n10 5\n5 1 2\n", ["--time-limit", "0"], "time-limit"),
        (None, [], "cannot read"),
    ],
)
def test_the_command_refuses_with_exit_2(app, tmp_path, content, args, says):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_text(content)

    result = app.test_cli_runner().invoke(args=["supply", "solve-orlib", str(path), *args])

    assert result.exit_code == 2
    assert says in result.stderr
    assert result.stdout == ""


def test_nobody_to_feed_opens_no_kitchen(app):
    """With no demand at all the optimum is nothing, proven; a solver must not open one."""
    from app.supply.kitchens import read_orlib, solve

    for text in ("2 2\n10 5\n10 5\n0 1 2\n0 2 1\n", "2 1\n10 5\n10 7\n0 1 2\n"):
        solution = solve(read_orlib(text), 5)

        assert (solution.objective, solution.open, solution.proven_optimal) == (0.0, [], True)
