"""Checks of the Zhenhai region pack (fixtures/zhenhai) and its catering supply plan.

Pure tests: they read the fixture files directly and need no app, database or Redis.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import yaml
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from shapely.ops import transform

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "fixtures" / "zhenhai"
PLAN = ROOT / "fixtures" / "plans" / "zhenhai-catering-supply.yaml"

KM_PER_DEG = 111.195
STREET_CODES = {
    "330211001",
    "330211002",
    "330211003",
    "330211004",
    "330211005",
    "330211100",
    "330211101",
}
SUPPLIER_COLUMNS = [
    "code",
    "name",
    "type",
    "street_code",
    "lat",
    "lon",
    "breakfast",
    "lunch",
    "dinner",
    "rating",
    "risk_colour",
    "halal",
    "vegetarian",
    "infant",
    "soft_diet",
    "hot_holding",
    "fictitious",
]
DEMAND_COLUMNS = ["code", "name", "type", "street_code", "lat", "lon", "capacity", "fictitious"]
BOOL_COLUMNS = ["halal", "vegetarian", "infant", "soft_diet", "hot_holding", "fictitious"]


def read_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def region():
    return read_yaml(PACK / "region.yaml")


@pytest.fixture(scope="module")
def boundary(region):
    feature = json.loads((PACK / region["boundary"]).read_text(encoding="utf-8"))
    assert feature["type"] == "Feature"
    assert feature["properties"]["code"] == "330211"
    assert feature["properties"]["datum"] == "WGS-84"
    return shape(feature["geometry"])


@pytest.fixture(scope="module")
def to_km(region):
    """Local projection to km about the district centre (equal-area and near-conformal here)."""
    lat0 = region["centre"]["lat"]
    lon0 = region["centre"]["lon"]

    def project(lon, lat, z=None):
        return ((lon - lon0) * KM_PER_DEG * math.cos(math.radians(lat)), (lat - lat0) * KM_PER_DEG)

    return lambda geom: transform(project, geom)


@pytest.fixture(scope="module")
def suppliers():
    return read_csv(PACK / "suppliers.csv")


@pytest.fixture(scope="module")
def demand():
    return read_csv(PACK / "demand_points.csv")


@pytest.fixture(scope="module")
def departments():
    return read_yaml(PACK / "departments.yaml")["departments"]


@pytest.fixture(scope="module")
def plan():
    return read_yaml(PLAN)


def nearest_street(region, to_km, lat, lon) -> str:
    p = to_km(Point(lon, lat))
    return min(
        region["streets"],
        key=lambda s: p.distance(to_km(Point(s["centre"]["lon"], s["centre"]["lat"]))),
    )["code"]


# --- region and boundary ---------------------------------------------------------


def test_region_identity(region):
    assert region["code"] == "330211"
    assert region["city"]["code"] == "330200"
    assert region["province"]["code"] == "330000"
    assert region["population_2020"] == 531830
    assert {s["code"] for s in region["streets"]} == STREET_CODES
    for s in region["streets"]:
        assert s["kind"] in ("street", "town")
        assert s["code"].startswith("330211") and len(s["code"]) == 9
        assert s["centre_source"]


def test_boundary_is_valid_polygon_with_plausible_area(boundary, to_km):
    assert isinstance(boundary, (Polygon, MultiPolygon))
    assert boundary.is_valid
    area = to_km(boundary).area
    # published land area 237-246 km2; the Amap outline measures about 272 km2
    assert 230 <= area <= 290, area
    c = boundary.centroid
    assert 29.9 <= c.y <= 30.05 and 121.55 <= c.x <= 121.7


def test_boundary_contains_centres(region, boundary):
    centre = region["centre"]
    assert boundary.contains(Point(centre["lon"], centre["lat"]))
    for s in region["streets"]:
        assert boundary.contains(Point(s["centre"]["lon"], s["centre"]["lat"])), s["name"]


# --- suppliers -------------------------------------------------------------------


def test_supplier_columns_and_codes(suppliers):
    columns, rows = suppliers
    assert columns == SUPPLIER_COLUMNS
    assert len(rows) >= 64
    codes = [r["code"] for r in rows]
    assert len(set(codes)) == len(codes)
    assert all(c.startswith("ZH-SUP-") for c in codes)


def test_supplier_values(suppliers):
    _, rows = suppliers
    for r in rows:
        assert r["type"] in ("central_kitchen", "group_meal", "canteen", "restaurant"), r["code"]
        assert r["rating"] in ("A", "B", "C"), r["code"]
        assert r["risk_colour"] in ("green", "yellow", "orange", "red"), r["code"]
        for col in BOOL_COLUMNS:
            assert r[col] in ("true", "false"), (r["code"], col)
        assert r["fictitious"] == "true"
        for meal in ("breakfast", "lunch", "dinner"):
            assert r[meal].isdigit(), (r["code"], meal)
        assert r["street_code"] in STREET_CODES | {""}, r["code"]
    ratings = Counter(r["rating"] for r in rows)
    assert ratings["C"] < ratings["A"] and ratings["C"] < ratings["B"]
    # The colour is computed (app/techsupport/risk.py); with no results yet, the rating's.
    start = {"A": "green", "B": "yellow", "C": "orange"}
    assert all(r["risk_colour"] == start[r["rating"]] for r in rows)
    assert 3 <= sum(r["halal"] == "true" for r in rows) <= 5
    assert 4 <= sum(r["infant"] == "true" for r in rows) <= 6
    assert 8 <= sum(r["soft_diet"] == "true" for r in rows) <= 12
    assert all(r["hot_holding"] == "true" for r in rows if r["type"] == "central_kitchen")


def test_supplier_names_needing_escape_are_present(suppliers):
    _, rows = suppliers
    names = {r["name"] for r in rows}
    assert any('"' in n and "<" in n and ">" in n for n in names)
    assert any("'" in n and "&" in n for n in names)


def test_supplier_capacity_totals(suppliers):
    _, rows = suppliers
    totals = {m: sum(int(r[m]) for r in rows) for m in ("breakfast", "lunch", "dinner")}
    assert 65_000 <= totals["lunch"] <= 75_000, totals
    assert 65_000 <= totals["dinner"] <= 75_000, totals
    assert totals["breakfast"] >= 60_000, totals


def test_supplier_positions(suppliers, boundary, region, to_km):
    _, rows = suppliers
    area = to_km(boundary)
    for r in rows:
        lat, lon = float(r["lat"]), float(r["lon"])
        p = Point(lon, lat)
        assert area.distance(to_km(p)) <= 5.0, r["code"]
        if boundary.contains(p):
            assert r["street_code"] == nearest_street(region, to_km, lat, lon), r["code"]
        else:
            assert r["street_code"] == "", r["code"]


# --- demand points ---------------------------------------------------------------


def test_demand_columns_and_codes(demand):
    columns, rows = demand
    assert columns == DEMAND_COLUMNS
    assert len(rows) >= 24
    codes = [r["code"] for r in rows]
    assert len(set(codes)) == len(codes)
    types = Counter(r["type"] for r in rows)
    assert types["shelter"] >= 20
    assert types["hospital"] == 2
    assert 1 <= types["school"] <= 2
    assert types["venue"] == 1
    for r in rows:
        assert r["type"] in ("shelter", "hospital", "school", "venue"), r["code"]
        assert r["capacity"].isdigit() and int(r["capacity"]) > 0, r["code"]
        assert r["fictitious"] == "true"


def test_shelter_capacity_and_spread(demand):
    _, rows = demand
    shelters = [r for r in rows if r["type"] == "shelter"]
    assert sum(int(r["capacity"]) for r in shelters) >= 60_000
    per_street = Counter(r["street_code"] for r in shelters)
    for code in STREET_CODES:
        assert per_street[code] >= 2, code


def test_demand_positions(demand, boundary, region, to_km):
    _, rows = demand
    area = to_km(boundary)
    for r in rows:
        lat, lon = float(r["lat"]), float(r["lon"])
        p = Point(lon, lat)
        assert area.distance(to_km(p)) <= 5.0, r["code"]
        assert boundary.contains(p), r["code"]
        assert r["street_code"] == nearest_street(region, to_km, lat, lon), r["code"]


# --- departments and plan --------------------------------------------------------


def test_departments_have_on_duty_liaison(departments):
    codes = [d["code"] for d in departments]
    assert len(set(codes)) == len(codes)
    people = [p["code"] for d in departments for p in d["people"]]
    assert len(set(people)) == len(people)
    for d in departments:
        assert any(p["role"] == "liaison" and p["on_duty"] for p in d["people"]), d["code"]
        for p in d["people"]:
            assert p["role"] in ("commander", "liaison", "staff", "inspector"), p["code"]
    towns = {d["code"] for d in departments if d["kind"] == "town"}
    assert towns == {f"town_{c}" for c in STREET_CODES}
    gov = next(d for d in departments if d["code"] == "government")
    assert any(p["role"] == "commander" for p in gov["people"])


def test_plan_levels(plan):
    assert list(plan["levels"]) == ["I", "II", "III", "IV"]
    assert plan["jurisdiction"] == "330211"
    measures = {m["code"] for m in plan["measures"]}
    for level in plan["levels"].values():
        assert set(level["measures"]) <= measures
        assert list(level["phases"]) == ["note", "warning", "response", "recovery", "closure"]
        assert level["phases"]["response"]["checklist"]
    assert plan["levels"]["IV"]["declared_by_higher"] is False
    for table in ("food_safety", "supply_emergency"):
        assert {r["level"] for r in plan["rules"][table]} <= set(plan["levels"])


def test_plan_departments_exist(plan, departments):
    known = {d["code"] for d in departments}
    assert plan["command"]["commander_department"] in known
    assert plan["command"]["office_department"] in known
    for group in plan["working_groups"]:
        assert group["lead"] in known, group["code"]
        assert set(group["members"]) <= known, group["code"]
    duty_codes = [d["code"] for d in plan["duties"]]
    assert len(set(duty_codes)) == len(duty_codes)
    for duty in plan["duties"]:
        assert duty["department"] in known, duty["code"]
        assert set(duty["levels"]) <= set(plan["levels"]), duty["code"]
        assert duty["confirm_within_minutes"] > 0
    # every department has at least one duty
    assert {d["department"] for d in plan["duties"]} == known
