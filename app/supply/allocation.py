"""Optimal allocation of meals from suppliers to demand points for one meal.

A min-cost flow (OR-Tools network simplex) over every supplier and demand-point pair that
passes the hard rules: capacity, dietary capability, the rating floor of the point's type
and the holding window. Its cost is delivery minutes weighted by the supplier's risk
colour. Unmet demand flows through a penalty arc, so the plan is always complete and says
which meals cannot be served and why.
"""

import math
from dataclasses import dataclass, field

from ortools.graph.python import min_cost_flow

DIET_KINDS = ("regular", "halal", "vegetarian", "infant", "soft_diet")
RATING_ORDER = {"A": 0, "B": 1, "C": 2}
DEFAULT_RISK_WEIGHTS = {"green": 1.0, "yellow": 1.15, "orange": 1.4, "red": 2.0}
EARTH_RADIUS_KM = 6371.0088
# Costs are integers in hundredths of a weighted minute; penalties dwarf any real route.
COST_SCALE = 100
UNMET_PENALTY = 10**7
PRIORITY_UNMET_PENALTY = 10**9


@dataclass(frozen=True)
class SupplierNode:
    id: int
    lat: float
    lon: float
    capacity: int
    diets: frozenset
    rating: str
    risk_colour: str
    hot_holding: bool


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
    holding_window_minutes: float = 120.0
    hot_holding_window_minutes: float = 240.0
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


def great_circle_km(lat1, lon1, lat2, lon2):
    """Haversine distance on a spherical Earth."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def travel_minutes(supplier, demand, rules):
    km = great_circle_km(supplier.lat, supplier.lon, demand.lat, demand.lon) * rules.detour_factor
    return km / rules.speed_kmh * 60.0


def _pair_block(supplier, demand, diet, minutes, rules):
    """Why this supplier may not serve this diet at this point, or None when it may."""
    if diet != "regular" and diet not in supplier.diets:
        return "diet"
    floor = rules.rating_floor.get(demand.type)
    if floor and RATING_ORDER[supplier.rating] > RATING_ORDER[floor]:
        return "rating"
    window = (
        rules.hot_holding_window_minutes if supplier.hot_holding else rules.holding_window_minutes
    )
    if minutes + rules.serving_minutes > window:
        return "reach"
    return None


def _reason(diet, blocks, floor):
    """Say why meals of a diet went unmet at a point, from what blocked each supplier."""
    label = "kitchen" if diet == "regular" else f"{diet.replace('_', ' ')} kitchen"
    allowed = blocks.count(None)
    if allowed:
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


def solve(suppliers, demands, rules):
    """Allocate every demand node's meals by diet at least cost; report what is unmet."""
    for demand in demands:
        _check_demand(demand)
    flow = min_cost_flow.SimpleMinCostFlow()
    source, unmet = 0, 1
    supplier_node = {s.id: 2 + i for i, s in enumerate(suppliers)}
    next_node = 2 + len(suppliers)
    sink = next_node
    next_node += 1

    arcs = {}
    blocks_of = {}
    total = 0
    for s in suppliers:
        if s.capacity > 0:
            flow.add_arc_with_capacity_and_unit_cost(source, supplier_node[s.id], s.capacity, 0)

    for d in demands:
        minutes = {s.id: travel_minutes(s, d, rules) for s in suppliers}
        for diet in DIET_KINDS:
            meals = d.by_diet.get(diet, 0)
            if meals <= 0:
                continue
            node = next_node
            next_node += 1
            total += meals
            flow.add_arc_with_capacity_and_unit_cost(node, sink, meals, 0)
            penalty = PRIORITY_UNMET_PENALTY if d.priority else UNMET_PENALTY
            arcs[flow.add_arc_with_capacity_and_unit_cost(unmet, node, meals, penalty)] = (
                None,
                d,
                diet,
                0.0,
            )
            blocks = []
            for s in suppliers:
                block = _pair_block(s, d, diet, minutes[s.id], rules)
                blocks.append(block)
                if block is not None or s.capacity <= 0:
                    continue
                weight = rules.risk_weights.get(s.risk_colour, 1.0)
                cost = int(round(minutes[s.id] * weight * COST_SCALE))
                arc = flow.add_arc_with_capacity_and_unit_cost(
                    supplier_node[s.id], node, meals, cost
                )
                arcs[arc] = (s, d, diet, minutes[s.id])
            blocks_of[(d.id, diet)] = blocks

    if total == 0:
        return Solution([], [], 0.0)
    flow.add_arc_with_capacity_and_unit_cost(source, unmet, total, 0)
    flow.set_node_supply(source, total)
    flow.set_node_supply(sink, -total)

    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow ended with status {status}")

    assignments, shortfall, cost = [], [], 0.0
    for arc, (s, d, diet, minutes) in arcs.items():
        meals = flow.flow(arc)
        if meals <= 0:
            continue
        if s is None:
            floor = rules.rating_floor.get(d.type)
            shortfall.append(
                Shortfall(d.id, diet, meals, _reason(diet, blocks_of[(d.id, diet)], floor))
            )
            continue
        assignments.append(Assignment(s.id, d.id, diet, meals, minutes))
        cost += meals * flow.unit_cost(arc) / COST_SCALE
    return Solution(assignments, shortfall, cost)
