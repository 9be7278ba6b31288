"""Loading the region pack: departments and people, suppliers, demand points, experts and
labs, the plan.

Loading is idempotent: rows are matched by code, and loading the same files again
changes nothing. Every file is read and checked before anything is written, so a bad file
is refused whole, naming the file and line, and the database is left as it was.
"""

import json
import logging
import os

import yaml
from shapely.errors import GEOSException
from shapely.geometry import shape
from sqlalchemy import select

from app.accounts.services import ensure_person_users
from app.errors import InvalidInput
from app.extensions import db
from app.organisation.models import PERSON_ROLES, Department, Person
from app.process.services import import_plan
from app.supply import imports
from app.supply.models import (
    Supplier,
)
from app.techsupport import registry
from app.types import utcnow
from app.yamlfiles import load_yaml

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")
DEFAULT_REGION = os.path.join(FIXTURES, "zhenhai")
DEFAULT_PLAN = os.path.join(FIXTURES, "plans", "zhenhai-catering-supply.yaml")

DEPARTMENT_KEYS = ("code", "name", "name_en", "kind", "people")
PERSON_KEYS = ("code", "name", "role", "title", "phone", "on_duty")

# Where the departments loader notes the line each YAML mapping starts on.
LINE = "__line__"


def read_text(path):
    """The text of a file saved as UTF-8 (with or without BOM) or as GBK/GB18030.

    Spreadsheets on Chinese Windows save GBK unless told otherwise; GB18030 is a superset
    of GBK, so one decoder reads both. Anything else is refused rather than guessed at.
    """
    name = os.path.basename(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise InvalidInput(f"{name} refused: cannot read it", {name: [error.strerror]}) from None
    return imports.decode(data, name)


def read_yaml(path, loader=yaml.SafeLoader):
    """A YAML document from the region pack; a syntax error refuses the file with its line."""
    return load_yaml(read_text(path), os.path.basename(path), loader=loader)


class _LineLoader(yaml.SafeLoader):
    """The safe YAML loader, noting in each mapping the line it starts on."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping


def configured_region_dir():
    """The folder of the region this installation serves (BAOGONG_REGION)."""
    from flask import current_app

    name = current_app.config["BAOGONG_REGION"]
    return name if os.path.isdir(name) else os.path.join(FIXTURES, name)


def configured_region():
    """The region this installation serves (BAOGONG_REGION), read once per app."""
    from flask import current_app

    region = current_app.extensions.get("baogong_region")
    if region is None:
        region_dir = configured_region_dir()
        if not os.path.isfile(os.path.join(region_dir, "region.yaml")):
            raise InvalidInput("no region", {"BAOGONG_REGION": [f"no region.yaml in {region_dir}"]})
        region = current_app.extensions["baogong_region"] = load_region(region_dir)
    return region


def import_context(region, coords="wgs84"):
    """What an import of suppliers or demand points is checked against: the region's
    boundary and streets, and how far outside it a place may lie."""
    from flask import current_app

    streets = [str(street.get("code")) for street in region.get("streets") or []]
    return imports.Context(
        shape(region["boundary_geometry"]),
        streets,
        coords=coords,
        max_km_outside=current_app.config["BAOGONG_MAX_KM_OUTSIDE"],
    )


def load_region(region_dir=DEFAULT_REGION):
    """The region description with its boundary geometry (GeoJSON, WGS-84)."""
    region = read_yaml(os.path.join(region_dir, "region.yaml"))
    if not isinstance(region, dict):
        region = {}
    missing = [k for k in ("code", "name", "boundary") if k not in region]
    if missing:
        raise InvalidInput(
            "region.yaml refused", {"region.yaml": [f"missing {', '.join(missing)}"]}
        )
    path = os.path.join(region_dir, str(region["boundary"]))
    name = os.path.basename(path)

    try:
        feature = json.loads(read_text(path))
        geometry = feature.get("geometry", feature)
        boundary = shape(geometry)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, GEOSException) as error:
        raise InvalidInput(
            f"{name} refused", {name: [f"not a GeoJSON boundary: {error}"]}
        ) from None
    if boundary.geom_type not in ("Polygon", "MultiPolygon") or not boundary.is_valid:
        raise InvalidInput(
            f"{name} refused", {name: ["the boundary must be a valid (Multi)Polygon"]}
        )

    region["boundary_geometry"] = geometry
    return region


class _Record:
    """One CSV row or YAML mapping, read field by field; every bad field is noted."""

    def __init__(self, values, line):
        self.values = values
        self.line = line
        self.problems = []

    def read(self, key, convert, *args):
        """The field under `key` converted, or None with the problem noted."""
        return self.check(key, convert, self.values.get(key), *args)

    def check(self, label, convert, *args):
        """`convert(*args)`, or None with its complaint noted under `label`."""
        try:
            return convert(*args)
        except ValueError as error:
            self.problems.append(f"{label} {error}")
            return None


def _length(model, column):
    """The longest text the database column holds."""
    return model.__table__.c[column].type.length


def _text(value, limit, required=True):
    """Trimmed text of at most `limit` characters; None when optional and blank."""
    if isinstance(value, bool) or not isinstance(value, str | int | None):
        raise ValueError(f"must be text, got {value!r}")
    text = "" if value is None else str(value).strip()

    if required and not text:
        raise ValueError("must not be empty")
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in text):
        raise ValueError("must not hold control characters")
    if len(text) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return text or None


def _bool(value):
    """A yes/no flag, as spreadsheets in either language write it."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "是"):
        return True
    if text in ("false", "0", "no", "否", ""):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def _choice(value, allowed):
    """One of a fixed set of codes, such as a rating or a supplier type."""
    text = value.strip() if isinstance(value, str) else value
    if text not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
    return text


def _mappings(value):
    """A YAML list of mappings; none at all is an empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"must be a list, got {value!r}")
    for item in value:
        if not isinstance(item, dict):
            raise ValueError(f"must each be a mapping of keys to values, got {item!r}")
    return value


def _note_repeated(problems, coded_lines, label):
    """Note each code seen on an earlier line, under the later line, naming both."""
    for code, first, line in imports.repeats(coded_lines):
        problems.setdefault(line, []).append(f"{label} {code} on lines {first} and {line}")


def _refuse(name, problems):
    """Refuse a file with its problems, listed in line order."""
    errors = {
        f"{name} line {line}" if line else name: messages
        for line, messages in sorted(problems.items(), key=lambda item: item[0] or 0)
    }
    raise InvalidInput(f"{name} refused, nothing loaded", errors)


def _yaml_record(entry, keys):
    """A record for one mapping in a YAML list, with any unknown key noted."""
    record = _Record(entry, entry.get(LINE))
    unknown = sorted(str(key) for key in entry if key not in keys and key != LINE)
    if unknown:
        record.problems.append(f"unknown keys: {', '.join(unknown)}")
    return record


def _department(record):
    """A department's values from its mapping in departments.yaml."""
    return {
        "code": record.read("code", _text, _length(Department, "code")),
        "name": record.read("name", _text, _length(Department, "name")),
        "name_en": record.read("name_en", _text, _length(Department, "name_en"), False),
        "kind": record.read("kind", _text, _length(Department, "kind")),
    }


def _person(record):
    """A person's values from their mapping in departments.yaml; on duty unless told."""
    return {
        "code": record.read("code", _text, _length(Person, "code")),
        "name": record.read("name", _text, _length(Person, "name")),
        "role": record.read("role", _choice, PERSON_ROLES),
        "title": record.read("title", _text, _length(Person, "title"), False),
        "phone": record.read("phone", _text, _length(Person, "phone"), False),
        "on_duty": record.check("on_duty", _bool, record.values.get("on_duty", True)),
    }


def _read_departments(path):
    """Departments, each with its people, checked whole before anything is written."""
    name = os.path.basename(path)
    document = read_yaml(path, loader=_LineLoader)
    top = _Record(document if isinstance(document, dict) else {}, None)
    entries = top.read("departments", _mappings)
    if not entries:
        _refuse(name, {None: top.problems or ["departments must list at least one department"]})

    departments, records, department_codes, person_codes = [], [], [], []
    for entry in entries:
        department = _yaml_record(entry, DEPARTMENT_KEYS)
        values = _department(department)
        people = []
        for item in department.read("people", _mappings) or ():
            person = _yaml_record(item, PERSON_KEYS)
            people.append(_person(person))
            person_codes.append((people[-1]["code"], person.line))
            records.append(person)
        departments.append((values, people))
        department_codes.append((values["code"], department.line))
        records.append(department)

    problems = {}
    for record in records:
        if record.problems:
            problems.setdefault(record.line, []).extend(record.problems)
    _note_repeated(problems, department_codes, "department code")
    _note_repeated(problems, person_codes, "person code")
    if problems:
        _refuse(name, problems)
    return departments


def _upsert(model, values, counts):
    """Create the row with this code, or bring it up to date; counts what happened."""
    row = db.session.scalar(select(model).filter_by(code=values["code"]))
    imports.upsert(model, values, counts, row)


def _new_counts():
    return {"created": 0, "updated": 0, "unchanged": 0}


def _store_departments(departments):
    """Upsert the departments, then their people; returns the counts of each."""
    counts, people_counts = _new_counts(), _new_counts()
    for values, _ in departments:
        _upsert(Department, values, counts)
    db.session.flush()

    codes = []
    for values, people in departments:
        department = db.session.scalar(select(Department).filter_by(code=values["code"]))
        for person in people:
            _upsert(Person, {**person, "department_id": department.id}, people_counts)
            codes.append(person["code"])
    db.session.flush()

    stored = db.session.scalars(select(Person).where(Person.code.in_(codes))).all()
    users = ensure_person_users(stored)
    return {"departments": counts, "people": people_counts, "users": users}


def load_all(region_dir=DEFAULT_REGION, plan_path=DEFAULT_PLAN, plan_name=None):
    """Load the whole region pack in one transaction; returns counts per kind.

    Every file is read and checked first; a refusal then, or from the plan import, leaves
    the database as it was. `plan_name`, when given, must name the plan loaded or one
    already in the database: it is the plan incidents will run on.
    """
    region = load_region(region_dir)
    context = import_context(region)
    departments = _read_departments(os.path.join(region_dir, "departments.yaml"))
    suppliers = imports.read_rows(os.path.join(region_dir, "suppliers.csv"), "suppliers", context)
    points = imports.read_rows(os.path.join(region_dir, "demand_points.csv"), "demand", context)
    plan_document = read_yaml(plan_path)
    experts, labs = registry.read_pack(region_dir)
    if plan_name is not None:
        _check_plan_name(plan_name, plan_document)

    try:
        summary = _store_departments(departments)
        summary["suppliers"] = imports.store("suppliers", suppliers)
        summary["demand_points"] = imports.store("demand", points)
        summary.update(registry.store_pack(experts, labs))
        db.session.flush()

        plan, outcome = import_plan(plan_document, utcnow())
        summary["plan"] = {"name": plan.name, "version": plan.version, "outcome": outcome}
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise

    log.info("fixtures: region pack loaded %s", summary)
    return summary


def _check_plan_name(plan_name, plan_document):
    from app.process.models import Plan

    names = set(db.session.scalars(select(Plan.name)))
    if isinstance(plan_document, dict) and isinstance(plan_document.get("name"), str):
        names.add(plan_document["name"])
    if plan_name not in names:
        raise InvalidInput(
            "no such plan",
            {"BAOGONG_PLAN": [f"no plan named {plan_name!r}; plans: {', '.join(sorted(names))}"]},
        )


def fixtures_present():
    """Whether the region pack has been loaded into this database."""
    return db.session.scalar(select(Supplier.id).limit(1)) is not None
