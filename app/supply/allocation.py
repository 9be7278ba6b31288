"""Optimal allocation of meals from suppliers to demand points for one meal.

Each demand point's meals are split by diet into nodes. A supplier may serve a node when it
passes the hard rules: dietary capability, the rating floor of the point's type, and the
holding window (cooked food kept between the plan's temperature band is eaten within its
window; a kitchen delivering hot or chilled has a longer one). Each meal costs its
delivery minutes weighted by the supplier's risk colour; minutes come from great-circle
distance with a detour factor and speed, or from a measured travel-time matrix.

The plan is solved by `transport.solve_in_order`: without a shortage it is the least-cost
plan; with one, first the most meals to priority nodes, then the largest smallest fill
ratio among the rest, then the most meals, then the least cost. Nothing unmet goes unsaid:
every short node comes back with its reason.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from app.supply import transport

DIET_KINDS = ("regular", "halal", "vegetarian", "infant", "soft_diet")
RATING_ORDER = {"A": 0, "B": 1, "C": 2}
DEFAULT_RISK_WEIGHTS = {"green": 1.0, "yellow": 1.15, "orange": 1.4, "red": 2.0}
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class SupplierNode:
    id: int
    lat: float
    lon: float
    capacity: int
    diets: frozenset
    rating: str
    risk_colour: str
    hot_holding: bool = False
    chilled: bool = False

    @property
    def holding(self):
        """How its food travels: kept hot above the band, chilled below it, or neither."""
        if self.hot_holding:
            return "hot"
        return "chilled" if self.chilled else "ambient"


@dataclass(frozen=True)
class DemandNode:
    id: int
    lat: float
    lon: float
    type: str
    by_diet: dict
    priority: bool = False


@dataclass(frozen=True)
class Rules:
    """Plan settings that decide which pairs are allowed and what they cost."""

    speed_kmh: float = 30.0
    detour_factor: float = 1.4
    holding_band_c: tuple = (8.0, 60.0)
    holding_window_minutes: float = 120.0
    hot_holding_window_minutes: float = 240.0
    chilled_window_minutes: float = 720.0
    dispatch_minutes: float = 0.0
    serving_minutes: float = 30.0
    rating_floor: dict = field(default_factory=dict)
    risk_weights: dict = field(default_factory=lambda: dict(DEFAULT_RISK_WEIGHTS))

    @classmethod
    def from_settings(cls, settings):
        known = {k: settings[k] for k in cls.__dataclass_fields__ if k in settings}
        if "risk_weights" in known:
            # A plan that weights some colours keeps the default for the others.
            known["risk_weights"] = {**DEFAULT_RISK_WEIGHTS, **known["risk_weights"]}
        return cls(**known)


@dataclass(frozen=True)
class Assignment:
    supplier_id: int
    demand_id: int
    diet: str
    meals: int
    minutes: float


@dataclass(frozen=True)
class Shortfall:
    demand_id: int
    diet: str
    meals: int
    reason: str


@dataclass
class Solution:
    assignments: list
    shortfall: list
    cost: float
    priority_unmet: int = 0
    min_fill: float | None = None


def great_circle_km(lat1, lon1, lat2, lon2):
    """Haversine distance on a spherical Earth."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def travel_minutes(supplier, demand, rules, matrix=None):
    """Minutes on the road: measured when the matrix has the pair, else estimated."""
    if matrix and (supplier.id, demand.id) in matrix:
        return matrix[(supplier.id, demand.id)]
    km = great_circle_km(supplier.lat, supplier.lon, demand.lat, demand.lon) * rules.detour_factor
    return km / rules.speed_kmh * 60.0


def window_minutes(supplier, rules):
    """The longest drive a supplier's food may take: its holding window less the time
    from cooking to leaving and the time to serve."""
    window = {
        "ambient": rules.holding_window_minutes,
        "hot": rules.hot_holding_window_minutes,
        "chilled": rules.chilled_window_minutes,
    }[supplier.holding]
    return window - rules.dispatch_minutes - rules.serving_minutes


def pair_block(supplier, demand, diet, minutes, rules):
    """Why this supplier may not serve this diet at this point, or None when it may."""
    if diet != "regular" and diet not in supplier.diets:
        return "diet"
    floor = rules.rating_floor.get(demand.type)
    if floor and RATING_ORDER[supplier.rating] > RATING_ORDER[floor]:
        return "rating"
    if minutes > window_minutes(supplier, rules):
        return "reach"
    return None


def _reason(diet, blocks, floor):
    """Say why meals of a diet went unmet at a point, from what blocked each supplier."""
    label = "kitchen" if diet == "regular" else f"{diet.replace('_', ' ')} kitchen"
    if blocks.count(None):
        return "capacity in reach exhausted"
    if "rating" in blocks and floor:
        return f"no {floor}-rated {label} in reach"
    return f"no {label} in reach"


def _check_demand(demand):
    for diet, meals in demand.by_diet.items():
        if diet not in DIET_KINDS:
            raise ValueError(f"demand {demand.id}: unknown diet {diet!r}")
        if not isinstance(meals, int) or isinstance(meals, bool) or meals < 0:
            raise ValueError(f"demand {demand.id}: {diet} meals must be a whole number >= 0")


def solve(suppliers, demands, rules, matrix=None, priority_diets=()):
    """Allocate every demand node's meals by diet; report what is unmet and why.

    `matrix` maps (supplier id, demand point id) to measured minutes. A node is a
    priority when its point is (`DemandNode.priority`) or its diet is in `priority_diets`.
    """
    for demand in demands:
        _check_demand(demand)
    nodes = [
        (d, diet, meals)
        for d in demands
        for diet in DIET_KINDS
        if (meals := d.by_diet.get(diet, 0)) > 0
    ]
    if not nodes:
        return Solution([], [], 0.0)

    network, priority = _network(suppliers, demands, nodes, rules, matrix, priority_diets)
    if suppliers:
        plan, details = transport.solve_in_order(network, priority)
        unmet = plan.unmet
    else:
        plan, details = None, {"priority_unmet": int(network.demand[priority].sum())}
        unmet = network.demand.astype(np.int64)

    assignments, cost = [], 0.0
    if plan is not None:
        for s_index, n_index, meals in zip(plan.supplier, plan.node, plan.meals, strict=True):
            s, (d, diet, _) = suppliers[s_index], nodes[n_index]
            minutes = travel_minutes(s, d, rules, matrix)
            assignments.append(Assignment(s.id, d.id, diet, int(meals), minutes))
        cost = plan.cost
    short = _Reasons(suppliers, rules, matrix) if unmet.any() else None
    shortfall = [
        Shortfall(d.id, diet, int(unmet[index]), short.reason(d, diet))
        for index, (d, diet, _) in enumerate(nodes)
        if unmet[index] > 0
    ]
    return Solution(assignments, shortfall, cost, details["priority_unmet"],
                    details.get("min_fill"))  # fmt: skip


def _network(suppliers, demands, nodes, rules, matrix, priority_diets):
    """The transport network of one meal, and which of its nodes are priorities."""
    kinds, kind = {}, []
    for d, diet, _meals in nodes:
        kind.append(kinds.setdefault((diet, rules.rating_floor.get(d.type)), len(kinds)))
    eligible = np.zeros((len(kinds), len(suppliers)), dtype=bool)
    for (diet, floor), row in kinds.items():
        for column, s in enumerate(suppliers):
            rated = not floor or RATING_ORDER[s.rating] <= RATING_ORDER[floor]
            eligible[row, column] = rated and (diet == "regular" or diet in s.diets)

    minutes_per_km = 60.0 / rules.speed_kmh
    place_of = {d.id: index for index, d in enumerate(demands)}
    network = transport.Network(
        supplier_lat=np.array([s.lat for s in suppliers], dtype=float),
        supplier_lon=np.array([s.lon for s in suppliers], dtype=float),
        capacity=np.array([max(s.capacity, 0) for s in suppliers], dtype=float),
        weight=np.array([rules.risk_weights.get(s.risk_colour, 1.0) for s in suppliers]),
        node_lat=np.array([d.lat for d, _, _ in nodes]),
        node_lon=np.array([d.lon for d, _, _ in nodes]),
        demand=np.array([meals for _, _, meals in nodes], dtype=float),
        kind=np.array(kind, dtype=np.int64),
        eligible=eligible,
        reach_km=np.array([max(window_minutes(s, rules), 0.0) for s in suppliers], dtype=float)
        / minutes_per_km,
        detour=rules.detour_factor,
        minutes_per_km=minutes_per_km,
        matrix=_matrix(matrix, suppliers, place_of),
        node_place=np.array([place_of[d.id] for d, _, _ in nodes], dtype=np.int64),
    )
    priority = np.array([d.priority or diet in priority_diets for d, diet, _ in nodes], dtype=bool)
    return network, priority


def _matrix(matrix, suppliers, place_of):
    """The measured minutes as index arrays, for the pairs of this solve only."""
    if not matrix:
        return None
    index_of = {s.id: index for index, s in enumerate(suppliers)}
    rows = [
        (index_of[s_id], place_of[d_id], minutes)
        for (s_id, d_id), minutes in matrix.items()
        if s_id in index_of and d_id in place_of
    ]
    if not rows:
        return None
    s_index, d_index, minutes = (np.array(column) for column in zip(*rows, strict=True))
    return transport.TravelMatrix(s_index, d_index, minutes.astype(float))


class _Reasons:
    """Why a node went short, read off every supplier at once (as `pair_block` would one
    by one): diet first, then the rating floor, then the holding window."""

    def __init__(self, suppliers, rules, matrix):
        self.rules = rules
        self.lat = np.array([s.lat for s in suppliers], dtype=float)
        self.lon = np.array([s.lon for s in suppliers], dtype=float)
        self.window = np.array([window_minutes(s, rules) for s in suppliers], dtype=float)
        self.rank = np.array([RATING_ORDER[s.rating] for s in suppliers], dtype=int)
        self.cooks = {
            diet: np.array([diet == "regular" or diet in s.diets for s in suppliers], bool)
            for diet in DIET_KINDS
        }
        index_of = {s.id: index for index, s in enumerate(suppliers)}
        self.measured = {}
        for (s_id, d_id), minutes in (matrix or {}).items():
            if s_id in index_of:
                self.measured.setdefault(d_id, []).append((index_of[s_id], minutes))

    def reason(self, demand, diet):
        rules = self.rules
        cooks = self.cooks[diet]
        floor = rules.rating_floor.get(demand.type)
        rated = self.rank <= RATING_ORDER[floor] if floor else np.ones(len(cooks), bool)
        km = transport.road_km(demand.lat, demand.lon, self.lat, self.lon, rules.detour_factor)
        minutes = km / rules.speed_kmh * 60.0
        for index, measured in self.measured.get(demand.id, ()):
            minutes[index] = measured
        blocks = np.where(~cooks, "diet", np.where(~rated, "rating",
                          np.where(minutes > self.window, "reach", "")))  # fmt: skip
        return _reason(diet, [block or None for block in blocks.tolist()], floor)
