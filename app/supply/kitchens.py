"""Which standby kitchens to activate: the capacitated facility location problem.

Each candidate kitchen i has a capacity s_i (meals) and a fixed activation cost f_i; each
demand j needs d_j meals, and serving all of it from kitchen i costs c_ij (split demand
allowed). Minimise the activation costs plus the serving costs.

The method, in three steps sharing one time limit:

1. Lagrangian relaxation of the "every demand served" rows. For multipliers l_j, each
   kitchen's best use is a fractional knapsack, and choosing kitchens under the cover row
   sum_i s_i y_i >= sum_j d_j is a covering knapsack whose LP relaxation keeps the bound
   valid. Subgradient steps raise the lower bound; every few steps the kitchens the
   relaxation opens are repaired into a plan and costed by a transportation problem
   (min-cost flow), which gives upper bounds.
2. Local search on the best plan: close, open and swap kitchens, ranked by the
   relaxation's reduced costs, each move costed by the transportation problem.
3. Reduced-cost fixing then an exact MIP. A kitchen whose forced opening (or closing)
   raises the Lagrangian bound above the best plan cannot be in (or out of) any better
   plan, so it is fixed; the MIP (strong formulation, x_ij <= y_i) on what is left starts
   from the best plan and, when it finishes, proves the plan optimal for the whole problem.

The answer's `gap` is (objective - bound) / objective, the bound being the best of the
Lagrangian bound and the MIP's own.
"""

import logging
import math
import re
import time
from dataclasses import dataclass

import numpy as np

from app.errors import InvalidInput

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 * 1024 * 1024
# Unit costs are scaled to integers for the min-cost flow; the plan is costed exactly after.
FLOW_COST_SCALE = 10_000
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Instance:
    """Capacities and fixed costs per kitchen, demand per customer, and the cost of serving
    each customer's whole demand from each kitchen (customers x kitchens)."""

    capacity: np.ndarray
    fixed: np.ndarray
    demand: np.ndarray
    cost: np.ndarray

    @property
    def sites(self):
        return len(self.capacity)

    @property
    def customers(self):
        return len(self.demand)


@dataclass
class Solution:
    objective: float
    bound: float
    open: list
    proven_optimal: bool
    seconds: float
    method: str

    @property
    def gap(self):
        if self.objective == 0:
            return 0.0
        return max(0.0, (self.objective - self.bound) / abs(self.objective))


def read_orlib(text, capacity=None, name="file"):
    """Read an OR-Library "cap" file. capa, capb and capc write the word "capacity" in place
    of each kitchen's capacity, which `capacity` then sets; given for another file, it
    replaces every capacity too."""
    tokens = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        tokens.extend((token, line_number) for token in line.split())
    position = 0

    def number(what, integer=False):
        nonlocal position
        if position >= len(tokens):
            raise InvalidInput(f"{name} refused", {name: [f"ends before {what}"]})
        token, line = tokens[position]
        position += 1
        if not _NUMBER.fullmatch(token):
            raise InvalidInput(
                f"{name} refused", {f"line {line}": [f"{what}: {token!r} is not a number"]}
            )
        value = float(token)
        if integer and value != int(value):
            raise InvalidInput(
                f"{name} refused", {f"line {line}": [f"{what}: {token!r} is not whole"]}
            )
        return value

    sites = int(number("the number of kitchens", integer=True))
    customers = int(number("the number of customers", integer=True))
    if not (1 <= sites <= 10_000 and 1 <= customers <= 100_000):
        raise InvalidInput(f"{name} refused", {"line 1": ["sizes out of range"]})

    capacities, fixed, symbolic = [], [], False
    for i in range(sites):
        if position < len(tokens) and tokens[position][0].lower() == "capacity":
            symbolic = True
            position += 1
            capacities.append(math.nan)
        else:
            capacities.append(number(f"capacity of kitchen {i + 1}"))
        fixed.append(number(f"fixed cost of kitchen {i + 1}"))

    demand = np.empty(customers)
    cost = np.empty((customers, sites))
    for j in range(customers):
        demand[j] = number(f"demand of customer {j + 1}")
        for i in range(sites):
            cost[j, i] = number(f"cost of customer {j + 1} from kitchen {i + 1}")
    if position != len(tokens):
        token, line = tokens[position]
        raise InvalidInput(f"{name} refused", {f"line {line}": [f"unexpected {token!r}"]})

    if capacity is not None:
        capacities = [float(capacity)] * sites
    elif symbolic:
        raise InvalidInput(
            f"{name} refused",
            {"capacity": ["this file leaves capacities open: give --capacity"]},
        )
    instance = Instance(np.array(capacities), np.array(fixed), demand, cost)
    _check(instance, name)
    return instance


def _check(instance, name):
    problems = {}
    for label, values in (
        ("capacity", instance.capacity),
        ("fixed cost", instance.fixed),
        ("demand", instance.demand),
        ("cost", instance.cost),
    ):
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            problems[label] = ["must be finite and not negative"]
    if not problems and instance.capacity.sum() < instance.demand.sum():
        problems["capacity"] = [
            f"all kitchens together hold {instance.capacity.sum():g}, "
            f"less than the demand {instance.demand.sum():g}: no plan exists"
        ]
    if problems:
        raise InvalidInput(f"{name} refused", problems)


class _Transport:
    """Cost of serving every customer from a set of open kitchens (min-cost flow)."""

    def __init__(self, instance):
        self.instance = instance
        demand = instance.demand
        served = demand > 0
        unit = np.zeros_like(instance.cost)
        unit[served] = instance.cost[served] / demand[served, None]
        self.unit = unit  # customers x kitchens, cost per meal
        self.int_unit = np.rint(unit * FLOW_COST_SCALE).astype(np.int64)
        self.int_demand = np.rint(demand).astype(np.int64)
        self.exact_integers = np.allclose(demand, self.int_demand)
        self.cache = {}

    def cost(self, open_sites):
        """(total cost, flows) for the open set, or (inf, None) when it cannot serve all."""
        key = frozenset(open_sites)
        if key in self.cache:
            return self.cache[key]
        instance = self.instance
        sites = sorted(key)
        if not sites or instance.capacity[sites].sum() < instance.demand.sum() - 1e-9:
            return math.inf, None
        # Whole-meal demands go through the min-cost flow; fractional ones need the LP.
        result = self._flow(sites) if self.exact_integers else self._lp(sites)
        self.cache[key] = result
        return result

    def _flow(self, sites):
        from ortools.graph.python import min_cost_flow

        instance = self.instance
        m, n = len(sites), instance.customers
        flow = min_cost_flow.SimpleMinCostFlow()
        # nodes: kitchens 0..m-1, customers m..m+n-1
        tails = np.repeat(np.arange(m), n)
        heads = np.tile(np.arange(m, m + n), m)
        capacities = np.tile(self.int_demand, m)
        costs = self.int_unit[:, sites].T.reshape(-1)
        flow.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
        supplies = np.concatenate(
            [np.floor(instance.capacity[sites] + 1e-9).astype(np.int64), -self.int_demand]
        )
        # Spare capacity drains to a sink that takes what the customers leave.
        sink = m + n
        spare = int(supplies[:m].sum() - self.int_demand.sum())
        flow.add_arcs_with_capacity_and_unit_cost(
            np.arange(m), np.full(m, sink), supplies[:m], np.zeros(m, dtype=np.int64)
        )
        flow.set_nodes_supplies(np.arange(m + n + 1), np.append(supplies, -spare))
        if flow.solve() != flow.OPTIMAL:
            return math.inf, None
        amounts = flow.flows(np.arange(m * n)).reshape(m, n).T.astype(float)  # customers x m
        total = float(instance.fixed[sites].sum() + (amounts * self.unit[:, sites]).sum())
        return total, (sites, amounts)

    def _lp(self, sites):
        from ortools.linear_solver import pywraplp

        instance = self.instance
        solver = pywraplp.Solver.CreateSolver("GLOP")
        n = instance.customers
        x = [[solver.NumVar(0, 1, "") for _ in sites] for _ in range(n)]
        for j in range(n):
            solver.Add(sum(x[j]) == 1)
        for k, i in enumerate(sites):
            solver.Add(sum(instance.demand[j] * x[j][k] for j in range(n)) <= instance.capacity[i])
        solver.Minimize(
            sum(instance.cost[j, i] * x[j][k] for j in range(n) for k, i in enumerate(sites))
        )
        if solver.Solve() != solver.OPTIMAL:
            return math.inf, None
        amounts = np.array([[v.solution_value() for v in row] for row in x])
        amounts *= instance.demand[:, None]
        total = float(instance.fixed[sites].sum() + (amounts * self.unit[:, sites]).sum())
        return total, (sites, amounts)


class _Lagrangian:
    """The relaxation of the assignment rows; `evaluate` gives the bound for multipliers."""

    def __init__(self, instance):
        self.instance = instance
        self.total_demand = instance.demand.sum()

    def site_values(self, multipliers):
        """Each kitchen's value when open (fixed cost plus its best fractional knapsack)
        and the fractions of each customer it would take (kitchens x customers)."""
        inst = self.instance
        reduced = inst.cost.T - multipliers[None, :]  # kitchens x customers
        demand = inst.demand
        ratio = np.where(demand > 0, reduced / np.maximum(demand, 1e-12), reduced)
        order = np.argsort(ratio, axis=1)
        sorted_reduced = np.take_along_axis(reduced, order, axis=1)
        sorted_demand = demand[order]
        take = np.zeros_like(reduced)
        negative = sorted_reduced < 0
        used = np.cumsum(np.where(negative, sorted_demand, 0.0), axis=1)
        before = used - np.where(negative, sorted_demand, 0.0)
        room = inst.capacity[:, None] - before
        fraction = np.where(
            negative,
            np.clip(room / np.maximum(sorted_demand, 1e-12), 0.0, 1.0),
            0.0,
        )
        fraction = np.where(sorted_demand > 0, fraction, negative.astype(float))
        np.put_along_axis(take, order, fraction, axis=1)
        values = inst.fixed + (take * reduced).sum(axis=1)
        return values, take

    def choose(self, values, forced_open=(), forced_closed=()):
        """The covering knapsack's LP relaxation: min sum v_i y_i, sum s_i y_i >= demand."""
        inst = self.instance
        y = np.zeros(inst.sites)
        for i in forced_open:
            y[i] = 1.0
        free = [i for i in range(inst.sites) if i not in forced_open and i not in forced_closed]
        for i in free:
            if values[i] < 0:
                y[i] = 1.0
        short = self.total_demand - (inst.capacity * y).sum()
        if short > 1e-9:
            rest = sorted(
                (i for i in free if y[i] == 0 and inst.capacity[i] > 0),
                key=lambda i: values[i] / inst.capacity[i],
            )
            for i in rest:
                part = min(1.0, short / inst.capacity[i])
                y[i] = part
                short -= part * inst.capacity[i]
                if short <= 1e-9:
                    break
            if short > 1e-9:
                return math.inf, y  # the forced choice cannot cover the demand
        return float((values * y).sum()), y

    def bound(self, multipliers, values=None, **forced):
        if values is None:
            values, _ = self.site_values(multipliers)
        chosen, y = self.choose(values, **forced)
        return float(multipliers.sum()) + chosen, y


def solve(instance, time_limit=60.0, threads=1):
    """The best plan found within the time limit, with a lower bound and whether it is
    proven optimal."""
    started = time.perf_counter()
    if instance.demand.sum() == 0:
        # Nobody to feed: no kitchen opens, and nothing can cost less than nothing.
        return Solution(0.0, 0.0, [], True, time.perf_counter() - started, "no demand")

    def left():
        return time_limit - (time.perf_counter() - started)

    transport = _Transport(instance)
    relaxation = _Lagrangian(instance)

    best_cost, best_open = math.inf, None

    def consider(open_sites):
        nonlocal best_cost, best_open
        cost, _ = transport.cost(open_sites)
        if cost < best_cost - 1e-9:
            best_cost, best_open = cost, sorted(open_sites)
        return cost

    # 1. Lagrangian relaxation with subgradient steps.
    multipliers = instance.cost.min(axis=1).astype(float)
    best_bound, best_multipliers = -math.inf, multipliers.copy()
    step, stall = 2.0, 0
    consider(_repair(instance, set(range(instance.sites)), np.zeros(instance.sites)))
    for iteration in range(3000):
        if left() < time_limit * 0.6 or step < 1e-6:
            break
        values, take = relaxation.site_values(multipliers)
        bound, y = relaxation.bound(multipliers, values)
        if bound > best_bound + 1e-9 * max(1.0, abs(bound)):
            best_bound, best_multipliers, stall = bound, multipliers.copy(), 0
        else:
            stall += 1
            if stall >= 20:
                step, stall = step / 2, 0
        if iteration % 10 == 0:
            opened = {i for i in range(instance.sites) if y[i] > 0.5}
            consider(_repair(instance, opened, values))
        served = (take * y[:, None]).sum(axis=0)
        gradient = 1.0 - served
        norm = float(gradient @ gradient)
        if norm < 1e-12:
            break
        target = best_cost if math.isfinite(best_cost) else abs(bound) * 1.05 + 1
        multipliers = multipliers + step * (target - bound) / norm * gradient
    log.info(
        "kitchens: relaxation bound %.3f, best plan %.3f (%.1f s)",
        best_bound,
        best_cost,
        time.perf_counter() - started,
    )

    # 2. Local search around the best plan, moves ranked by the relaxation.
    values, _ = relaxation.site_values(best_multipliers)
    _local_search(instance, transport, consider, lambda: best_open, values, left, time_limit)

    # 3. Fix what the bound rules out, then the exact MIP on the rest.
    fixed_open, fixed_closed = _fix_by_bound(
        relaxation, best_multipliers, values, best_bound, best_cost
    )
    bound = best_bound
    proven = False
    method = "lagrangian+local-search"
    if left() > 1:
        result = _mip(instance, best_open, fixed_open, fixed_closed, left(), threads)
        if result is not None:
            cost, mip_bound, opened, optimal = result
            if opened is not None:
                consider(opened)
            bound = max(bound, mip_bound)
            proven = optimal
            method += "+mip"
    return Solution(
        objective=best_cost,
        bound=min(bound, best_cost),
        open=best_open,
        proven_optimal=proven,
        seconds=time.perf_counter() - started,
        method=method,
    )


def _repair(instance, opened, values):
    """Open more kitchens, best value per meal first, until the demand is covered."""
    opened = set(opened)
    short = instance.demand.sum() - instance.capacity[list(opened)].sum() if opened else None
    if short is None:
        short = instance.demand.sum()
    for i in sorted(
        range(instance.sites), key=lambda i: values[i] / max(instance.capacity[i], 1e-9)
    ):
        if short <= 1e-9:
            break
        if i not in opened and instance.capacity[i] > 0:
            opened.add(i)
            short -= instance.capacity[i]
    return opened


def _local_search(instance, transport, consider, best, values, left, time_limit):
    """Close, open and swap moves; the first improving move is taken, until none improves
    or the search's share of the time is spent."""
    reserve = time_limit * 0.35
    improved = True
    while improved and left() > reserve:
        improved = False
        current = set(best())
        current_cost, _ = transport.cost(current)
        closed = sorted(set(range(instance.sites)) - current, key=lambda i: values[i])
        opened = sorted(current, key=lambda i: -values[i])
        moves = [current - {i} for i in opened]
        moves += [current | {i} for i in closed]
        moves += [(current - {i}) | {k} for i in opened[:10] for k in closed[:10]]
        for move in moves:
            if left() <= reserve:
                break
            if consider(move) < current_cost - 1e-9:
                improved = True
                break


def _fix_by_bound(relaxation, multipliers, values, bound, best_cost):
    """Kitchens whose opening (closing) alone lifts the bound past the best plan."""
    fixed_open, fixed_closed = set(), set()
    if not math.isfinite(best_cost):
        return fixed_open, fixed_closed
    _, y = relaxation.choose(values)
    for i in range(relaxation.instance.sites):
        if y[i] < 0.5:
            forced, _ = relaxation.bound(multipliers, values, forced_open=(i,))
            if forced > best_cost + 1e-6:
                fixed_closed.add(i)
        else:
            forced, _ = relaxation.bound(multipliers, values, forced_closed=(i,))
            if forced > best_cost + 1e-6:
                fixed_open.add(i)
    log.info("kitchens: %d fixed open, %d fixed closed", len(fixed_open), len(fixed_closed))
    return fixed_open, fixed_closed


def _mip(instance, hint_open, fixed_open, fixed_closed, seconds, threads):
    """The strong MIP on the kitchens not fixed, started from the best plan."""
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:
        return None
    solver.SetNumThreads(threads)
    deadline = time.perf_counter() + seconds
    sites = [i for i in range(instance.sites) if i not in fixed_closed]
    n = instance.customers
    y = {i: solver.IntVar(1 if i in fixed_open else 0, 1, f"y{i}") for i in sites}
    x = {(j, i): solver.NumVar(0, 1, "") for j in range(n) for i in sites}
    for j in range(n):
        solver.Add(sum(x[j, i] for i in sites) == 1)
    for i in sites:
        solver.Add(
            sum(instance.demand[j] * x[j, i] for j in range(n)) <= instance.capacity[i] * y[i]
        )
        for j in range(n):
            if instance.demand[j] > 0:
                solver.Add(x[j, i] <= y[i])
    solver.Add(sum(instance.capacity[i] * y[i] for i in sites) >= instance.demand.sum())
    objective = sum(instance.fixed[i] * y[i] for i in sites) + sum(
        instance.cost[j, i] * x[j, i] for j in range(n) for i in sites
    )
    solver.Minimize(objective)
    if hint_open:
        chosen = set(hint_open)
        solver.SetHint([y[i] for i in sites], [1.0 if i in chosen else 0.0 for i in sites])
    # Building the model takes part of the time; the solver gets what is left.
    remaining = deadline - time.perf_counter() - 0.5
    if remaining < 0.5:
        return None
    solver.SetTimeLimit(int(remaining * 1000))
    parameters = pywraplp.MPSolverParameters()
    # Optimal means optimal: SCIP's default would stop 0.01% short of proof.
    parameters.SetDoubleParam(parameters.RELATIVE_MIP_GAP, 1e-9)
    status = solver.Solve(parameters)
    if status not in (solver.OPTIMAL, solver.FEASIBLE):
        return None
    opened = [i for i in sites if y[i].solution_value() > 0.5]
    bound = solver.Objective().BestBound()
    return solver.Objective().Value(), bound, opened, status == solver.OPTIMAL
