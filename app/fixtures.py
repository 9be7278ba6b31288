"""Loading the region pack: departments and people, suppliers, demand points, the plan.

Loading is idempotent: rows are matched by code, and loading the same files again
changes nothing. A file with a bad row is refused whole, naming the file and line.
"""

import csv
import logging
import os

import yaml
from sqlalchemy import select
from shapely.geometry import Point, shape

from app.errors import InvalidInput
from app.extensions import db
from app.organisation.models import PERSON_ROLES, Department, Person
from app.process.services import import_plan
from app.supply.models import (
    DEMAND_POINT_TYPES,
    RATINGS,
    RISK_COLOURS,
    SUPPLIER_TYPES,
    DemandPoint,
    Supplier,
)
from app.types import utcnow

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")
DEFAULT_REGION = os.path.join(FIXTURES, "zhenhai")
DEFAULT_PLAN = os.path.join(FIXTURES, "plans", "zhenhai-catering-supply.yaml")
# A point further than this from the district boundary is refused as a likely typo or a
# swapped latitude/longitude pair.
MAX_KM_OUTSIDE = 20.0
KM_PER_DEGREE = 111.0


def read_yaml(path):
    with open(path, encoding="utf-8-sig") as handle:
        return yaml.safe_load(handle)


def load_region(region_dir=DEFAULT_REGION):
    """The region description with its boundary geometry (GeoJSON, WGS-84)."""
    import json

    region = read_yaml(os.path.join(region_dir, "region.yaml"))
    with open(os.path.join(region_dir, region["boundary"]), encoding="utf-8") as handle:
        feature = json.load(handle)
    region["boundary_geometry"] = feature.get("geometry", feature)
    return region


def _bool(value, where):
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "是"):
        return True
    if text in ("false", "0", "no", "否", ""):
        return False
    raise ValueError(f"{where}: expected true or false, got {value!r}")


def _count(value, where):
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"{where}: expected a whole number of meals, got {value!r}")
    return int(text)


def _coordinate(row, boundary, where):
    try:
        lat, lon = float(row["lat"]), float(row["lon"])
    except ValueError:
        raise ValueError(f"{where}: lat/lon must be numbers") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        hint = "; swapped latitude and longitude?" if -90 <= lon <= 90 else ""
        raise ValueError(f"{where}: lat/lon outside the world ({lat}, {lon}){hint}")
    distance_km = boundary.distance(Point(lon, lat)) * KM_PER_DEGREE
    if distance_km > MAX_KM_OUTSIDE:
        raise ValueError(
            f"{where}: ({lat}, {lon}) is {distance_km:.0f} km outside the region; "
            "swapped latitude and longitude?"
        )
    return lat, lon


def _choice(value, allowed, where):
    if value not in allowed:
        raise ValueError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _read_rows(path, parse):
    """Parse every row of a CSV file; refuse the file with every bad row listed."""
    rows, errors = [], {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for line, raw in enumerate(csv.DictReader(handle), start=2):
            where = f"{os.path.basename(path)} line {line}"
            try:
                rows.append(parse(raw, where))
            except (ValueError, KeyError) as error:
                errors[where] = [str(error)]
    if errors:
        raise InvalidInput(f"{os.path.basename(path)} refused, nothing loaded", errors)
    return rows


def _supplier_row(boundary):
    def parse(row, where):
        lat, lon = _coordinate(row, boundary, where)
        return {
            "code": row["code"].strip(),
            "name": row["name"].strip(),
            "type": _choice(row["type"], SUPPLIER_TYPES, f"{where} type"),
            "street_code": row["street_code"].strip() or None,
            "lat": lat,
            "lon": lon,
            "breakfast_capacity": _count(row["breakfast"], f"{where} breakfast"),
            "lunch_capacity": _count(row["lunch"], f"{where} lunch"),
            "dinner_capacity": _count(row["dinner"], f"{where} dinner"),
            "rating": _choice(row["rating"], RATINGS, f"{where} rating"),
            "risk_colour": _choice(row["risk_colour"], RISK_COLOURS, f"{where} risk_colour"),
            "halal": _bool(row["halal"], f"{where} halal"),
            "vegetarian": _bool(row["vegetarian"], f"{where} vegetarian"),
            "infant": _bool(row["infant"], f"{where} infant"),
            "soft_diet": _bool(row["soft_diet"], f"{where} soft_diet"),
            "hot_holding": _bool(row["hot_holding"], f"{where} hot_holding"),
            "fictitious": _bool(row["fictitious"], f"{where} fictitious"),
        }

    return parse


def _demand_point_row(boundary):
    def parse(row, where):
        lat, lon = _coordinate(row, boundary, where)
        return {
            "code": row["code"].strip(),
            "name": row["name"].strip(),
            "type": _choice(row["type"], DEMAND_POINT_TYPES, f"{where} type"),
            "street_code": row["street_code"].strip() or None,
            "lat": lat,
            "lon": lon,
            "capacity": _count(row["capacity"], f"{where} capacity"),
            "fictitious": _bool(row["fictitious"], f"{where} fictitious"),
        }

    return parse


def _upsert(model, values, counts):
    row = db.session.scalar(select(model).filter_by(code=values["code"]))
    if row is None:
        db.session.add(model(**values))
        counts["created"] += 1
        return
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    counts["updated" if changed else "unchanged"] += 1


def load_all(region_dir=DEFAULT_REGION, plan_path=DEFAULT_PLAN):
    """Load the whole region pack in one transaction; returns counts per kind."""
    region = load_region(region_dir)
    boundary = shape(region["boundary_geometry"])
    suppliers = _read_rows(os.path.join(region_dir, "suppliers.csv"), _supplier_row(boundary))
    points = _read_rows(
        os.path.join(region_dir, "demand_points.csv"), _demand_point_row(boundary)
    )
    departments = read_yaml(os.path.join(region_dir, "departments.yaml"))["departments"]

    summary = {}
    try:
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        people = {"created": 0, "updated": 0, "unchanged": 0}
        for entry in departments:
            _upsert(
                Department,
                {k: entry.get(k) for k in ("code", "name", "name_en", "kind")},
                counts,
            )
        db.session.flush()
        for entry in departments:
            department = db.session.scalar(select(Department).filter_by(code=entry["code"]))
            for person in entry.get("people", []):
                if person["role"] not in PERSON_ROLES:
                    raise InvalidInput(
                        "departments.yaml refused",
                        {f"{entry['code']}.{person['code']}.role": ["unknown role"]},
                    )
                values = {k: person.get(k) for k in ("code", "name", "role", "title", "phone")}
                values["on_duty"] = bool(person.get("on_duty", True))
                values["department_id"] = department.id
                _upsert(Person, values, people)
        summary["departments"] = counts
        summary["people"] = people

        for model, rows, name in (
            (Supplier, suppliers, "suppliers"),
            (DemandPoint, points, "demand_points"),
        ):
            counts = {"created": 0, "updated": 0, "unchanged": 0}
            for values in rows:
                _upsert(model, values, counts)
            summary[name] = counts
        db.session.flush()

        plan, outcome = import_plan(read_yaml(plan_path), utcnow())
        summary["plan"] = {"name": plan.name, "version": plan.version, "outcome": outcome}
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    log.info("fixtures: region pack loaded %s", summary)
    return summary


def fixtures_present():
    return db.session.scalar(select(Supplier.id).limit(1)) is not None
