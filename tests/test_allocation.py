"""Tests of the meal allocation: optimal against an LP, feasible, and true to the hard rules."""

import math
import random

import pytest
from ortools.linear_solver import pywraplp

from app.supply.allocation import (
    DEFAULT_RISK_WEIGHTS,
    DIET_KINDS,
    DemandNode,
    Rules,
    Solution,
    SupplierNode,
    solve,
    travel_minutes,
)

# A point in the district; hand-made instances lie on its meridian, so distances add up.
ORIGIN_LAT, ORIGIN_LON = 29.95, 121.60
KM_PER_DEGREE_LAT = 6371.0088 * math.pi / 180
RATINGS = "ABC"
COLOURS = ("green", "yellow", "orange", "red")
POINT_TYPES = ("shelter", "hospital", "school", "venue")
SPECIAL_DIETS = DIET_KINDS[1:]


def lat_at(km):
    """The latitude km kilometres north of the origin (south when negative)."""
    return ORIGIN_LAT + km / KM_PER_DEGREE_LAT


def supplier(id, km=0.0, *, capacity=100, diets=(), rating="A", colour="green",
             hot_holding=False, chilled=False):  # fmt: skip
    return SupplierNode(
        id=id,
        lat=lat_at(km),
        lon=ORIGIN_LON,
        capacity=capacity,
        diets=frozenset(("regular", *diets)),
        rating=rating,
        risk_colour=colour,
        hot_holding=hot_holding,
        chilled=chilled,
    )


def point(id, km=0.0, *, type="shelter", priority=False, **by_diet):
    return DemandNode(
        id=id, lat=lat_at(km), lon=ORIGIN_LON, type=type, by_diet=by_diet, priority=priority
    )


def unit_cost(s, d, rules):
    """Cost of one meal on a route: weighted minutes."""
    return travel_minutes(s, d, rules) * rules.risk_weights.get(s.risk_colour, 1.0)


def allowed(s, d, diet, rules):
    """The hard rules, written out again: diet, rating floor of the type, holding window."""
    if diet not in s.diets:
        return False
    floor = rules.rating_floor.get(d.type)
    if floor and RATINGS.index(s.rating) > RATINGS.index(floor):
        return False
    if s.hot_holding:
        window = rules.hot_holding_window_minutes
    elif s.chilled:
        window = rules.chilled_window_minutes
    else:
        window = rules.holding_window_minutes
    minutes = travel_minutes(s, d, rules)
    return minutes + rules.dispatch_minutes + rules.serving_minutes <= window


def route_cost(solution, suppliers, demands, rules):
    by_supplier = {s.id: s for s in suppliers}
    by_point = {d.id: d for d in demands}
    return sum(
        a.meals * unit_cost(by_supplier[a.supplier_id], by_point[a.demand_id], rules)
        for a in solution.assignments
    )


class Reference:
    """The allocation written out again as linear programs solved by GLOP, one per step
    of the order: most priority meals, largest smallest fill, most meals, least cost."""

    def __init__(self, suppliers, demands, rules):
        self.lp = lp = pywraplp.Solver.CreateSolver("GLOP")
        self.routes, self.unmet, self.served = [], {}, {}
        self.priority, self.demand = set(), {}
        by_supplier = {s.id: [] for s in suppliers}
        for d in demands:
            for diet in DIET_KINDS:
                meals = d.by_diet.get(diet, 0)
                if meals <= 0:
                    continue
                key = (d.id, diet)
                self.demand[key] = meals
                if d.priority:
                    self.priority.add(key)
                unmet = self.unmet[key] = lp.NumVar(0, lp.infinity(), "")
                served = []
                for s in suppliers:
                    if s.capacity > 0 and allowed(s, d, diet, rules):
                        x = lp.NumVar(0, lp.infinity(), "")
                        self.routes.append((x, unit_cost(s, d, rules)))
                        served.append(x)
                        by_supplier[s.id].append(x)
                self.served[key] = served
                lp.Add(sum(served) + unmet == meals)
        for s in suppliers:
            if by_supplier[s.id]:
                lp.Add(sum(by_supplier[s.id]) <= max(s.capacity, 0))

    def _minimise(self, expression):
        self.lp.Minimize(expression)
        assert self.lp.Solve() == pywraplp.Solver.OPTIMAL
        return self.lp.Objective().Value()

    def solve(self):
        """(priority meals unmet, smallest fill, meals unmet, route cost), in that order."""
        lp, unmet = self.lp, self.unmet
        first = self._minimise(sum(unmet[k] for k in self.priority) + 0)
        lp.Add(sum(unmet[k] for k in self.priority) + 0 <= first + 1e-7)
        others = [k for k in self.demand if k not in self.priority and self.served[k]]
        fill = None
        if others:
            t = lp.NumVar(0, 1, "t")
            for k in others:
                lp.Add(self.demand[k] - unmet[k] >= t * self.demand[k])
            fill = -self._minimise(-t)
            for k in others:
                lp.Add(self.demand[k] - unmet[k] >= math.floor(fill * self.demand[k] + 1e-9))
        total = self._minimise(sum(unmet.values()) + 0)
        lp.Add(sum(unmet.values()) + 0 <= total + 1e-7)
        cost = self._minimise(sum(x * c for x, c in self.routes) + 0)
        return first, fill, total, cost


def check_rules(solution, suppliers, demands, rules):
    """Every assignment keeps the hard rules and capacities; served plus unmet is demand."""
    by_supplier = {s.id: s for s in suppliers}
    by_point = {d.id: d for d in demands}
    load = dict.fromkeys(by_supplier, 0)
    covered = {}
    for a in solution.assignments:
        s, d = by_supplier[a.supplier_id], by_point[a.demand_id]
        assert a.meals > 0
        assert allowed(s, d, a.diet, rules), f"{a} breaks a hard rule"
        load[s.id] += a.meals
        covered[(d.id, a.diet)] = covered.get((d.id, a.diet), 0) + a.meals
    for f in solution.shortfall:
        assert f.meals > 0
        covered[(f.demand_id, f.diet)] = covered.get((f.demand_id, f.diet), 0) + f.meals

    assert all(load[s.id] <= max(s.capacity, 0) for s in suppliers)
    needed = {
        (d.id, diet): meals for d in demands for diet, meals in d.by_diet.items() if meals > 0
    }
    assert covered == needed


def random_instance(seed):
    """A small district: 3-15 suppliers, 3-20 points, capacity from far short to ample."""
    rng = random.Random(seed)

    def somewhere():
        return ORIGIN_LAT + rng.uniform(-0.4, 0.4), ORIGIN_LON + rng.uniform(-0.4, 0.4)

    demands = []
    for i in range(rng.randint(3, 20)):
        lat, lon = somewhere()
        type = rng.choice(POINT_TYPES)
        by_diet = {"regular": rng.randint(0, 60)}
        by_diet.update({diet: rng.randint(1, 20) for diet in SPECIAL_DIETS if rng.random() < 0.4})
        demands.append(DemandNode(1000 + i, lat, lon, type, by_diet, priority=type == "hospital"))

    needed = sum(sum(d.by_diet.values()) for d in demands)
    capacity_factor = (0.3, 0.7, 1.0, 1.5, 3.0)[seed % 5]
    count = rng.randint(3, 15)
    shares = [rng.random() for _ in range(count)]
    suppliers = []
    for i, share in enumerate(shares):
        lat, lon = somewhere()
        capacity = round(needed * capacity_factor * share / sum(shares))
        if rng.random() < 0.1:
            capacity = 0
        suppliers.append(
            SupplierNode(
                id=1 + i,
                lat=lat,
                lon=lon,
                capacity=capacity,
                diets=frozenset(("regular", *(d for d in SPECIAL_DIETS if rng.random() < 0.4))),
                rating=rng.choices(RATINGS, weights=(4, 4, 2))[0],
                risk_colour=rng.choice(COLOURS),
                hot_holding=rng.random() < 0.3,
            )
        )

    rules = Rules(
        speed_kmh=rng.choice((25.0, 30.0, 40.0)),
        rating_floor={"hospital": "A", "school": "B"},
    )
    return suppliers, demands, rules


@pytest.mark.parametrize("seed", range(30))
def test_allocation_is_optimal_in_order_and_feasible_on_random_instances(seed):
    """Each step of the order is as good as an independent LP says it can be."""
    suppliers, demands, rules = random_instance(seed)
    solution = solve(suppliers, demands, rules)

    first, fill, total, cost = Reference(suppliers, demands, rules).solve()
    unmet_priority = sum(
        f.meals
        for f in solution.shortfall
        if (f.demand_id, f.diet)
        in {(d.id, diet) for d in demands if d.priority for diet in d.by_diet}
    )
    assert solution.priority_unmet == unmet_priority == pytest.approx(first, abs=1e-6)
    assert sum(f.meals for f in solution.shortfall) == pytest.approx(total, abs=1e-6)
    routes = route_cost(solution, suppliers, demands, rules)
    assert routes == pytest.approx(cost, rel=1e-7, abs=1e-6)
    assert solution.cost == pytest.approx(routes, rel=1e-9)
    if fill is not None and solution.min_fill is not None:
        assert solution.min_fill == pytest.approx(fill, abs=1e-6)
    check_rules(solution, suppliers, demands, rules)


def test_random_instances_cover_both_surplus_and_shortage():
    """The optimality test above is only worth something if both kinds of instance occur."""
    short = [bool(solve(*random_instance(seed)).shortfall) for seed in range(20)]

    assert any(short) and not all(short)


def test_halal_demand_without_a_halal_kitchen_in_reach_is_shortfall():
    near = supplier(1, 2, capacity=500)
    far_halal = supplier(2, 100, diets=("halal",), hot_holding=True)
    shelter = point(10, regular=40, halal=12)

    solution = solve([near, far_halal], [shelter], Rules())

    assert [(a.supplier_id, a.diet, a.meals) for a in solution.assignments] == [(1, "regular", 40)]
    assert [(f.demand_id, f.diet, f.meals, f.reason) for f in solution.shortfall] == [
        (10, "halal", 12, "no halal kitchen in reach")
    ]


def test_hospital_with_only_b_rated_kitchens_is_shortfall():
    suppliers = [supplier(1, 1, rating="B"), supplier(2, 3, rating="B", diets=("soft_diet",))]
    hospital = point(10, type="hospital", priority=True, regular=30)

    solution = solve(suppliers, [hospital], Rules(rating_floor={"hospital": "A"}))

    assert solution.assignments == []
    assert [(f.diet, f.meals, f.reason) for f in solution.shortfall] == [
        ("regular", 30, "no A-rated kitchen in reach")
    ]


def test_point_beyond_the_ambient_window_is_served_by_a_hot_holding_kitchen():
    """40 km is 142 minutes with serving, over 120; 60 km is 198, under the hot 240."""
    ambient = supplier(1, 40, capacity=500)
    hot = supplier(2, 60, capacity=500, colour="red", hot_holding=True)
    shelter = point(10, regular=50)

    solution = solve([ambient, hot], [shelter], Rules())

    assert [(a.supplier_id, a.meals) for a in solution.assignments] == [(2, 50)]
    assert solution.shortfall == []


def test_capacity_short_in_reach_is_shortfall_with_its_reason():
    solution = solve([supplier(1, 5, capacity=30)], [point(10, regular=50)], Rules())

    assert [(a.supplier_id, a.meals) for a in solution.assignments] == [(1, 30)]
    assert [(f.meals, f.reason) for f in solution.shortfall] == [
        (20, "capacity in reach exhausted")
    ]


def test_priority_point_is_served_in_full_before_a_shelter():
    """The shelter is next door and the hospital 20 km off; the hospital still comes first."""
    kitchen = supplier(1, 0, capacity=100)
    shelter = point(10, 1, regular=80)
    hospital = point(20, 20, type="hospital", priority=True, regular=80)

    solution = solve([kitchen], [shelter, hospital], Rules(rating_floor={"hospital": "A"}))

    served = {a.demand_id: a.meals for a in solution.assignments}
    assert served == {20: 80, 10: 20}
    assert [(f.demand_id, f.meals) for f in solution.shortfall] == [(10, 60)]


def nearest_first_cost(suppliers, demands, rules):
    """Each point in turn takes its meals from the nearest allowed kitchens with room left."""
    left = {s.id: s.capacity for s in suppliers}
    cost = 0
    for d in demands:
        minutes = {s.id: travel_minutes(s, d, rules) for s in suppliers}
        for diet, meals in d.by_diet.items():
            in_reach = [s for s in suppliers if allowed(s, d, diet, rules)]
            for s in sorted(in_reach, key=lambda s: minutes[s.id]):
                taken = min(meals, left[s.id])
                left[s.id] -= taken
                meals -= taken
                cost += taken * unit_cost(s, d, rules)
            assert meals == 0, "the instance is meant to have room for every meal"
    return cost


def test_nearest_first_is_beaten_by_the_optimal_plan():
    """Point 10 takes kitchen 1 (1 km), leaving point 20 kitchen 2 (4.5 km); a swap is cheaper."""
    suppliers = [supplier(1, 0, capacity=10), supplier(2, 3, capacity=10)]
    demands = [point(10, 1, regular=10), point(20, -1.5, regular=10)]
    rules = Rules()

    greedy = nearest_first_cost(suppliers, demands, rules)
    solution = solve(suppliers, demands, rules)

    assert solution.cost < greedy
    assert {(a.supplier_id, a.demand_id) for a in solution.assignments} == {(1, 20), (2, 10)}
    assert solution.cost == pytest.approx(10 * (1.5 + 2) * 1.4 / 30 * 60, rel=1e-3)


def test_empty_inputs_give_an_empty_solution():
    rules = Rules()
    empty = Solution([], [], 0.0)

    assert solve([], [], rules) == empty
    assert solve([supplier(1)], [], rules) == empty
    assert solve([supplier(1)], [point(10, regular=0, halal=0)], rules) == empty


def test_demand_with_no_suppliers_at_all_is_shortfall():
    solution = solve([], [point(10, regular=5)], Rules())

    assert solution.assignments == []
    assert [(f.meals, f.reason) for f in solution.shortfall] == [(5, "no kitchen in reach")]


def test_zero_capacity_supplier_takes_nothing():
    idle = supplier(1, 0.5, capacity=0)
    busy = supplier(2, 10, capacity=100)

    solution = solve([idle, busy], [point(10, regular=40)], Rules())
    alone = solve([idle], [point(10, regular=40)], Rules())

    assert [(a.supplier_id, a.meals) for a in solution.assignments] == [(2, 40)]
    assert alone.assignments == []
    assert [f.meals for f in alone.shortfall] == [40]


def test_travel_minutes_are_detoured_great_circle_km_at_the_plan_speed():
    rules = Rules(speed_kmh=20.0, detour_factor=1.5)

    minutes = travel_minutes(supplier(1, 0), point(10, 10), rules)

    assert minutes == pytest.approx(10 * 1.5 / 20 * 60, rel=1e-9)


def test_rules_from_settings_ignore_unknown_keys_and_read_known_ones():
    settings = {
        "note": "typhoon plan, reviewed 2024",
        "priority_types": ["hospital"],
        "speed_kmh": 20,
        "holding_window_minutes": 90,
        "rating_floor": {"hospital": "A", "school": "B"},
    }

    rules = Rules.from_settings(settings)

    assert rules.speed_kmh == 20
    assert rules.holding_window_minutes == 90
    assert rules.rating_floor == {"hospital": "A", "school": "B"}
    assert rules.hot_holding_window_minutes == Rules().hot_holding_window_minutes
    assert rules.risk_weights == Rules().risk_weights
    assert not hasattr(rules, "note")


def test_an_unknown_diet_is_refused_not_dropped():
    with pytest.raises(ValueError, match="kosher"):
        solve([supplier(1)], [point(10, regular=5, kosher=7)], Rules())


def test_a_fractional_meal_count_is_refused():
    with pytest.raises(ValueError, match="whole number"):
        solve([supplier(1)], [point(10, halal=2.7)], Rules())


def test_regular_meals_may_come_from_any_kitchen():
    only_halal = supplier(1, diets=("halal",))
    only_halal = SupplierNode(**{**only_halal.__dict__, "diets": frozenset({"halal"})})

    solution = solve([only_halal], [point(10, regular=5)], Rules())

    assert solution.shortfall == []
    assert sum(a.meals for a in solution.assignments) == 5


def test_a_plan_weighting_one_colour_keeps_the_defaults_for_the_others():
    rules = Rules.from_settings({"risk_weights": {"red": 3.0}})

    assert rules.risk_weights["red"] == 3.0
    assert rules.risk_weights["yellow"] == DEFAULT_RISK_WEIGHTS["yellow"]


def test_shortfall_reasons_name_diets_in_words():
    solution = solve([supplier(1)], [point(10, soft_diet=4)], Rules())

    assert solution.shortfall[0].reason == "no soft diet kitchen in reach"


def test_a_shortage_is_shared_fairly_before_cost_decides():
    """Least cost alone would feed the near shelter in full and the far one not at all."""
    kitchen = supplier(1, 0, capacity=100)
    near, far = point(10, 1, regular=100), point(20, 15, regular=100)

    solution = solve([kitchen], [near, far], Rules())

    served = {a.demand_id: a.meals for a in solution.assignments}
    assert served == {10: 50, 20: 50}
    assert solution.min_fill == pytest.approx(0.5)


def test_a_point_nobody_can_reach_does_not_starve_the_others():
    kitchen = supplier(1, 0, capacity=150)
    shelters = [point(10, 1, regular=100), point(20, 2, regular=100)]
    island = point(30, 300, regular=100)

    solution = solve([kitchen], [*shelters, island], Rules())

    served = {a.demand_id: a.meals for a in solution.assignments}
    assert served == {10: 75, 20: 75}
    assert ("no kitchen in reach", 100) in {(f.reason, f.meals) for f in solution.shortfall}


def test_priority_diets_are_served_before_the_rest():
    kitchen = supplier(1, 0, capacity=50, diets=("infant",))
    shelter = point(10, 1, regular=40, infant=30)

    solution = solve([kitchen], [shelter], Rules(), priority_diets=("infant",))

    served = {a.diet: a.meals for a in solution.assignments}
    assert served == {"infant": 30, "regular": 20}
    assert solution.priority_unmet == 0


def test_a_chilled_kitchen_reaches_farther_than_an_ambient_one():
    ambient = supplier(1, 60, capacity=500)
    chilled = supplier(2, 80, capacity=500, chilled=True)

    solution = solve([ambient, chilled], [point(10, 0, regular=20)], Rules())

    assert [(a.supplier_id, a.meals) for a in solution.assignments] == [(2, 20)]


def test_time_from_cooking_to_leaving_shortens_the_reach():
    """30 km is 84 minutes; with 30 to serve it fits 120, with 10 more to pack it does not."""
    kitchen = supplier(1, 30, capacity=100)
    shelter = point(10, 0, regular=10)

    assert solve([kitchen], [shelter], Rules()).shortfall == []
    late = solve([kitchen], [shelter], Rules(dispatch_minutes=10))
    assert [f.reason for f in late.shortfall] == ["no kitchen in reach"]


def test_a_travel_time_matrix_replaces_the_estimate():
    """A bridge closed: the near kitchen is 150 minutes away; a far one is 40 by the ring road."""
    near, far = supplier(1, 2, capacity=100), supplier(2, 70, capacity=100)
    shelter = point(10, 0, regular=30)
    matrix = {(1, 10): 150.0, (2, 10): 40.0}

    solution = solve([near, far], [shelter], Rules(), matrix=matrix)

    assert [(a.supplier_id, a.meals, a.minutes) for a in solution.assignments] == [(2, 30, 40.0)]
    assert solution.cost == pytest.approx(30 * 40.0)
