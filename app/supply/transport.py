"""Large allocations solved on a sparse candidate set and proven optimal for the full problem.

One meal's allocation is a transportation problem: suppliers with capacities, demand nodes
with meals to receive, and a cost for every pair that the hard rules allow (in reach,
eligible). At city scale the allowed pairs run to millions, so they are never all built:

1. Candidates: for each demand node, its `k` cheapest allowed suppliers, found through a
   grid of cells as wide as the reach, so only neighbouring cells are searched.
2. The LP (HiGHS, dual simplex) on the candidates, with a penalised "unmet" column per
   node so that it is always feasible. A transportation LP with whole supplies and demands
   has a whole-number optimal vertex, which the simplex method returns.
3. Pricing: with the duals u (suppliers) and v (nodes), every allowed pair outside the
   candidates is priced at c - u - v, cell by cell, without being stored. Pairs with a
   negative price join the candidates and the LP is solved again. When no pair prices
   negative, the dual is feasible for the full problem, so the plan is optimal for it.

Costs are float minutes (weighted); the tolerance of the pricing is `PRICE_TOLERANCE`
per meal.
"""

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088
PRICE_TOLERANCE = 1e-6
# Large enough that an unmet meal costs more than any route; small enough for the LP's
# tolerances.
DEFAULT_UNMET_COST = 1e5


@dataclass(frozen=True)
class Network:
    """Suppliers and demand nodes of one meal, in WGS-84 degrees.

    `eligible` (kinds x suppliers, bool) says which suppliers may serve each kind of node
    (diet and rating rules); `kind` gives each node's row of it. `reach_km` is the longest
    road distance allowed (the holding window turned into km), one figure or one per
    supplier; `minutes_per_km` turns road km into minutes; `weight` multiplies a supplier's
    minutes (its risk). `matrix` gives measured minutes for some supplier and place pairs,
    `node_place` the place of each node (several nodes, one per diet, share a place)."""

    supplier_lat: np.ndarray
    supplier_lon: np.ndarray
    capacity: np.ndarray
    weight: np.ndarray
    node_lat: np.ndarray
    node_lon: np.ndarray
    demand: np.ndarray
    kind: np.ndarray
    eligible: np.ndarray
    reach_km: float
    detour: float = 1.4
    minutes_per_km: float = 2.0
    unmet_cost: np.ndarray | None = None
    matrix: "TravelMatrix | None" = None
    node_place: np.ndarray | None = None

    @property
    def suppliers(self):
        return len(self.capacity)

    @property
    def nodes(self):
        return len(self.demand)

    def unmet(self):
        if self.unmet_cost is None:
            return np.full(self.nodes, DEFAULT_UNMET_COST)
        return self.unmet_cost

    def reach(self):
        """The longest road km each supplier may deliver over."""
        return np.broadcast_to(np.asarray(self.reach_km, dtype=float), (self.suppliers,))

    def places(self):
        if self.node_place is None:
            return np.arange(self.nodes)
        return self.node_place


@dataclass(frozen=True)
class TravelMatrix:
    """Measured travel minutes for (supplier index, place index) pairs, e.g. from a routing
    engine; a pair it lists replaces the great-circle estimate, in or out of the grid."""

    supplier: np.ndarray
    place: np.ndarray
    minutes: np.ndarray

    def keys(self, places):
        return self.supplier.astype(np.int64) * places + self.place.astype(np.int64)


@dataclass
class Plan:
    supplier: np.ndarray  # pair arrays of the meals sent
    node: np.ndarray
    meals: np.ndarray
    unmet: np.ndarray  # meals per node
    cost: float  # routes only, weighted minutes x meals
    rounds: int
    candidates: int
    seconds: float


def unit_vectors(lat, lon):
    """Points on the unit sphere, one row (x, y, z) per place."""
    phi, lam = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def road_km_between(a, b, detour):
    """Great-circle km between unit vectors (a: k x 3, b: l x 3, giving k x l) times the
    detour factor: the chord between two points gives the arc exactly, as 2 asin(c/2)."""
    chord2 = np.zeros((len(a), len(b)))
    for axis in range(3):
        chord2 += np.subtract.outer(a[:, axis], b[:, axis]) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(np.sqrt(chord2) / 2, 1.0)) * detour


def road_km(lat1, lon1, lat2, lon2, detour):
    """Great-circle km times the detour factor for paired arrays of places."""
    a, b = unit_vectors(lat1, lon1), unit_vectors(lat2, lon2)
    chord = np.sqrt(((a - b) ** 2).sum(axis=-1))
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord / 2, 1.0)) * detour


class _Grid:
    """Suppliers bucketed in square cells at least as wide as the reach (in straight-line
    km), so that every supplier in reach of a node lies in its cell or the 8 around it."""

    def __init__(self, network):
        self.network = network
        lat = np.concatenate([network.supplier_lat, network.node_lat])
        # Shrinking longitudes by the cosine of the latitude farthest from the equator never
        # makes two places look farther apart than they are.
        self.x_scale = math.cos(math.radians(min(89.0, float(np.abs(lat).max()))))
        self.cell_km = max(float(network.reach().max()) / network.detour * 1.01, 1e-6)
        sx, sy = self._cells(network.supplier_lat, network.supplier_lon)
        self.node_cells = self._cells(network.node_lat, network.node_lon)
        order = np.lexsort((sy, sx))
        self.order = order
        keys = sx[order] * 1_000_003 + sy[order]
        self.keys, self.starts = np.unique(keys, return_index=True)
        self.ends = np.append(self.starts[1:], len(order))
        self.supplier_xyz = unit_vectors(network.supplier_lat, network.supplier_lon)
        self.node_xyz = unit_vectors(network.node_lat, network.node_lon)

    def _cells(self, lat, lon):
        y = np.radians(lat) * EARTH_RADIUS_KM
        x = np.radians(lon) * EARTH_RADIUS_KM * self.x_scale
        return np.floor(x / self.cell_km).astype(np.int64), np.floor(y / self.cell_km).astype(
            np.int64
        )

    def blocks(self):
        """(node indices, supplier indices, cost matrix with inf where not allowed) for each
        occupied cell of nodes."""
        network = self.network
        nx, ny = self.node_cells
        node_keys = nx * 1_000_003 + ny
        order = np.argsort(node_keys, kind="stable")
        unique, starts = np.unique(node_keys[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        for start, end in zip(starts, ends, strict=True):
            nodes = order[start:end]
            cx, cy = nx[nodes[0]], ny[nodes[0]]
            parts = []
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    where = np.searchsorted(self.keys, (cx + dx) * 1_000_003 + cy + dy)
                    if where < len(self.keys) and self.keys[where] == (cx + dx) * 1_000_003 + (
                        cy + dy
                    ):
                        parts.append(self.order[self.starts[where] : self.ends[where]])
            if not parts:
                yield nodes, np.empty(0, dtype=np.int64), np.empty((len(nodes), 0))
                continue
            suppliers = np.concatenate(parts)
            km = road_km_between(self.node_xyz[nodes], self.supplier_xyz[suppliers], network.detour)
            cost = km * network.minutes_per_km * network.weight[None, suppliers]
            allowed = km <= network.reach()[None, suppliers]
            allowed &= network.eligible[network.kind[nodes]][:, suppliers]
            allowed &= network.capacity[None, suppliers] > 0
            yield nodes, suppliers, np.where(allowed, cost, np.inf)


def all_pairs(network, cheapest=0):
    """Every allowed pair as (supplier, node, cost) arrays; with `cheapest` k, also a mask
    of each node's k cheapest pairs."""
    suppliers, nodes, costs, marks = [], [], [], []
    for block_nodes, block_suppliers, cost in _blocks(network):
        allowed = np.isfinite(cost)
        rows, cols = np.nonzero(allowed)
        suppliers.append(block_suppliers[cols])
        nodes.append(block_nodes[rows])
        costs.append(cost[rows, cols])
        if cheapest and cost.shape[1]:
            take = min(cheapest, cost.shape[1])
            picked = np.zeros_like(allowed)
            best = np.argpartition(cost, take - 1, axis=1)[:, :take]
            np.put_along_axis(picked, best, True, axis=1)
            marks.append(picked[rows, cols])
        elif cheapest:
            marks.append(np.zeros(0, dtype=bool))
    joined = _joined(suppliers, nodes, costs)
    if not cheapest:
        return joined
    return (*joined, np.concatenate(marks) if marks else np.zeros(0, dtype=bool))


def _listed_keys(network):
    """Sorted keys of the pairs the travel matrix lists, or None without a matrix."""
    if network.matrix is None:
        return None
    return np.unique(network.matrix.keys(int(network.places().max()) + 1))


def _blocks(network):
    """The grid's blocks, then one block per place the travel matrix lists; the grid's
    estimate gives way wherever the matrix measured the pair."""
    grid_blocks = _Grid(network).blocks()
    matrix = network.matrix
    if matrix is None:
        yield from grid_blocks
        return

    places = network.places()
    width = int(places.max()) + 1
    listed = _listed_keys(network)
    for nodes, suppliers, cost in grid_blocks:
        keys = suppliers[None, :].astype(np.int64) * width + places[nodes][:, None]
        yield nodes, suppliers, np.where(np.isin(keys, listed), np.inf, cost)

    reach_minutes = network.reach() * network.minutes_per_km
    order = np.argsort(matrix.place, kind="stable")
    sorted_places = matrix.place[order]
    for node in range(network.nodes):
        start, end = np.searchsorted(sorted_places, [places[node], places[node] + 1])
        if start == end:
            continue
        rows = order[start:end]
        suppliers = matrix.supplier[rows].astype(np.int64)
        minutes = matrix.minutes[rows].astype(float)
        allowed = (minutes <= reach_minutes[suppliers]) & (network.capacity[suppliers] > 0)
        allowed &= network.eligible[network.kind[node]][suppliers]
        cost = np.where(allowed, minutes * network.weight[suppliers], np.inf)
        yield np.array([node]), suppliers, cost[None, :]


def _joined(suppliers, nodes, costs):
    if not suppliers:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    return np.concatenate(suppliers), np.concatenate(nodes), np.concatenate(costs)


def _cheapest_per_node(nodes, values, limit):
    """Indices of the `limit` smallest values of each node (nodes sorted or not)."""
    order = np.lexsort((values, nodes))
    grouped = nodes[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = grouped[1:] != grouped[:-1]
    starts = np.flatnonzero(first)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    return order[rank < limit]


@contextlib.contextmanager
def _stdout_to_stderr():
    """HiGHS prints its banner on the process's stdout when created; JSON commands keep
    stdout for their one line, so the banner goes to stderr."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


class _LP:
    """The transportation LP on a growing set of pair columns plus one unmet column per
    node, kept in one HiGHS instance so that each re-solve starts from the last basis.

    `unmet_cost` prices an unmet meal per node, `unmet_upper` caps it, and each of
    `limits`, (node indices, bound), caps the unmet meals of those nodes together. Pair
    columns appear in no limit row, so pricing them needs only the node and supplier duals.
    """

    def __init__(self, network, presolve=True, unmet_cost=None, unmet_upper=None, limits=()):
        import highspy

        self.highspy = highspy
        self.network = network
        n, m = network.nodes, network.suppliers
        with _stdout_to_stderr():
            self.highs = highspy.Highs()
        highs = self.highs
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("solver", "simplex")
        highs.setOptionValue("threads", 1)
        highs.setOptionValue("presolve", "on" if presolve else "off")
        inf = highspy.kHighsInf
        lower = np.concatenate([network.demand, np.full(m, -inf)]).astype(float)
        upper = np.concatenate([network.demand, network.capacity]).astype(float)
        highs.addRows(n + m, lower, upper, 0, np.zeros(n + m, dtype=np.int32),
                      np.zeros(0, dtype=np.int32), np.zeros(0))  # fmt: skip
        # The unmet columns: one per node, in its demand row only.
        cost = network.unmet() if unmet_cost is None else unmet_cost
        cap = np.full(n, inf) if unmet_upper is None else unmet_upper
        highs.addCols(n, np.asarray(cost, dtype=float), np.zeros(n),
                      np.asarray(cap, dtype=float), n, np.arange(n, dtype=np.int32),
                      np.arange(n, dtype=np.int32), np.ones(n))  # fmt: skip
        for nodes, bound in limits:
            nodes = np.asarray(nodes, dtype=np.int32)
            highs.addRow(-inf, float(bound), len(nodes), nodes, np.ones(len(nodes)))
        self.pairs = 0

    def add(self, suppliers, nodes, costs):
        count = len(costs)
        if count == 0:
            return
        index = np.empty(2 * count, dtype=np.int32)
        index[0::2] = nodes
        index[1::2] = self.network.nodes + suppliers
        self.highs.addCols(count, np.asarray(costs, dtype=float), np.zeros(count),
                           np.full(count, self.highspy.kHighsInf), 2 * count,
                           np.arange(0, 2 * count, 2, dtype=np.int32), index,
                           np.ones(2 * count))  # fmt: skip
        self.pairs += count

    def run(self):
        """(meals per pair column, unmet per node, supplier duals, node duals, objective)."""
        highs, n, m = self.highs, self.network.nodes, self.network.suppliers
        highs.run()
        status = highs.getModelStatus()
        if status != self.highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"HiGHS ended with {highs.modelStatusToString(status)}")
        solution = highs.getSolution()
        values = np.asarray(solution.col_value)
        duals = np.asarray(solution.row_dual)
        objective = highs.getInfo().objective_function_value
        return values[n : n + self.pairs], values[:n], duals[n : n + m], duals[:n], objective


def solve_lp(network, suppliers, nodes, costs):
    """The LP on exactly these pairs, solved once: the full-problem baseline."""
    lp = _LP(network)
    lp.add(suppliers, nodes, costs)
    return lp.run()


def solve(network, k=6, per_node=8, max_rounds=50, *, pairs=None, seed=None, **bounds):
    """The optimal plan for the whole network: the LP holds only a few candidates per
    node, and every allowed pair is priced with the duals until none prices negative.

    `pairs` reuses the output of `all_pairs(network, cheapest=k)`; `seed` (indices into
    it) joins the first candidates, e.g. a plan known to meet `bounds`, which go to `_LP`.
    """
    started = time.perf_counter()
    # The allowed pairs as plain arrays: the LP never sees most of them.
    all_suppliers, all_nodes, all_costs, cheapest = pairs or all_pairs(network, cheapest=k)
    in_lp = np.zeros(len(all_costs), dtype=bool)
    chosen = np.flatnonzero(cheapest)
    if seed is not None:
        chosen = np.union1d(chosen, seed)
    # Presolve pays off once, on a cold model; these re-solves start from a basis.
    lp = _LP(network, presolve=False, **bounds)
    lp_columns = []
    for rounds in range(1, max_rounds + 1):
        in_lp[chosen] = True
        lp.add(all_suppliers[chosen], all_nodes[chosen], all_costs[chosen])
        lp_columns.append(chosen)
        meals, unmet, supplier_dual, node_dual, _objective = lp.run()
        price = all_costs - supplier_dual[all_suppliers] - node_dual[all_nodes]
        negative = np.flatnonzero((price < -PRICE_TOLERANCE) & ~in_lp)
        log.info(
            "allocation: round %d, %d candidates, %d priced in",
            rounds,
            lp.pairs,
            min(len(negative), per_node * network.nodes),
        )
        if len(negative) == 0:
            break
        chosen = negative[_cheapest_per_node(all_nodes[negative], price[negative], per_node)]
    else:
        raise RuntimeError(f"pricing did not settle in {max_rounds} rounds")
    columns = np.concatenate(lp_columns)
    sent = meals > 0.5
    meals_sent = _whole(meals[sent])
    return Plan(
        supplier=all_suppliers[columns][sent],
        node=all_nodes[columns][sent],
        meals=meals_sent,
        unmet=_whole(unmet),
        cost=float((meals_sent * all_costs[columns][sent]).sum()),
        rounds=rounds,
        candidates=lp.pairs,
        seconds=time.perf_counter() - started,
    )


def _whole(values):
    """Meals from a vertex of a network LP, which are whole numbers up to the tolerance."""
    rounded = np.rint(values)
    if len(values) and np.abs(values - rounded).max() > 1e-5:
        raise RuntimeError("the LP returned a fractional plan")
    return rounded.astype(np.int64)


def solve_in_order(network, priority, k=6):
    """The plan of a shortage, decided in order: first the most meals to priority nodes,
    then the largest smallest fill ratio among the other nodes that any supplier can
    reach, then the most meals in all, then the least weighted minutes, each held while
    the next is decided. Without a shortage the first solve already meets all four.

    Returns (plan, details), details holding `priority_unmet` and `min_fill`.
    """
    started = time.perf_counter()
    pairs = all_pairs(network, cheapest=k)
    plan = solve(network, k, pairs=pairs, unmet_cost=_shortage_cost(network, priority))
    if plan.unmet.sum() == 0:
        return plan, {"priority_unmet": 0, "min_fill": 1.0 if network.nodes else None}

    nodes = pairs[1]
    # 1. The most meals to the priority nodes.
    first = np.flatnonzero(priority)
    limits = []
    if len(first):
        priority_unmet, _ = _fewest_unmet(network, pairs, np.where(priority, 1.0, 0.0), None, [])
        limits.append((first, priority_unmet))

    # 2. The largest smallest fill ratio of the rest; a node nobody can reach takes no part.
    reachable = np.bincount(nodes, minlength=network.nodes) > 0
    others = np.flatnonzero(~priority & reachable & (network.demand > 0))
    everyone = np.ones(network.nodes)
    fill, upper = None, None
    if len(others):
        fill = _max_min_fill(network, pairs, others, limits)
        upper = network.demand.astype(float).copy()
        # The floor of the fill is whole meals; the second try forgives LP tolerance.
        for slack in (1e-9, -1e-6):
            upper[others] = network.demand[others] - np.floor(fill * network.demand[others] + slack)
            try:
                total_unmet, support = _fewest_unmet(network, pairs, everyone, upper, limits)
                break
            except RuntimeError:
                continue
        else:
            raise RuntimeError("the fill ratio found cannot be held")
    else:
        # 3. (with nothing to share out fairly) The most meals in all.
        total_unmet, support = _fewest_unmet(network, pairs, everyone, None, limits)

    # 4. The least weighted minutes, the three above held.
    limits.append((np.arange(network.nodes), total_unmet))
    free = np.zeros(network.nodes)
    plan = solve(network, k, pairs=pairs, seed=support, unmet_cost=free, unmet_upper=upper,
                 limits=limits)  # fmt: skip
    plan.seconds = time.perf_counter() - started
    details = {"priority_unmet": limits[0][1] if len(first) else 0, "min_fill": fill}
    return plan, details


def _shortage_cost(network, priority):
    """Unmet costs for the first solve: a priority meal left unmet costs far more."""
    return network.unmet() * np.where(priority, 100.0, 1.0)


def _fewest_unmet(network, pairs, weights, unmet_upper, limits):
    """(the fewest unmet meals, weighted per node, and the pairs of a plan that leaves
    them), with every allowed pair in the LP at no cost."""
    lp = _full_lp(network, pairs, weights, unmet_upper, limits)
    meals, _unmet, _u, _v, objective = lp.run()
    return int(round(objective)), np.flatnonzero(meals > 0.5)


def _full_lp(network, pairs, unmet_cost, unmet_upper, limits):
    suppliers, nodes, _costs, _cheapest = pairs
    lp = _LP(network, unmet_cost=unmet_cost, unmet_upper=unmet_upper, limits=limits)
    lp.add(suppliers, nodes, np.zeros(len(suppliers)))
    return lp


def _max_min_fill(network, pairs, others, limits):
    """The largest t such that every node in `others` receives at least t of its demand."""
    lp = _full_lp(network, pairs, np.zeros(network.nodes), None, limits)
    highs, inf = lp.highs, lp.highspy.kHighsInf
    t = network.nodes + lp.pairs
    highs.addCol(-1.0, 0.0, 1.0, 0, np.zeros(0, dtype=np.int32), np.zeros(0))
    # unmet_i + demand_i * t <= demand_i
    demand = network.demand[others].astype(float)
    index = np.empty(2 * len(others), dtype=np.int32)
    index[0::2] = others
    index[1::2] = t
    values = np.empty(2 * len(others))
    values[0::2] = 1.0
    values[1::2] = demand
    highs.addRows(len(others), np.full(len(others), -inf), demand, 2 * len(others),
                  np.arange(0, 2 * len(others), 2, dtype=np.int32), index, values)  # fmt: skip
    highs.run()
    status = highs.getModelStatus()
    if status != lp.highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS ended with {highs.modelStatusToString(status)}")
    return float(np.asarray(highs.getSolution().col_value)[t])
