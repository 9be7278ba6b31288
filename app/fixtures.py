"""Loading the region pack: departments and people, suppliers, demand points, the plan.

Loading is idempotent: rows are matched by code, and loading the same files again
changes nothing. Every file is read and checked before anything is written, so a bad file
is refused whole, naming the file and line, and the database is left as it was.
"""

import codecs
import csv
import io
import json
import logging
import math
import os

import yaml
from shapely.errors import GEOSException
from shapely.geometry import Point, shape
from sqlalchemy import select

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

SUPPLIER_COLUMNS = (
    "code", "name", "type", "street_code", "lat", "lon", "breakfast", "lunch", "dinner",
    "rating", "risk_colour", "halal", "vegetarian", "infant", "soft_diet", "hot_holding",
    "fictitious",
)  # fmt: skip
DEMAND_POINT_COLUMNS = (
    "code", "name", "type", "street_code", "lat", "lon", "capacity", "fictitious",
)  # fmt: skip
DEPARTMENT_KEYS = ("code", "name", "name_en", "kind", "people")
PERSON_KEYS = ("code", "name", "role", "title", "phone", "on_duty")

# A point further than this from the district boundary is refused as a likely typo or a
# swapped latitude/longitude pair.
MAX_KM_OUTSIDE = 20.0
KM_PER_DEGREE = 111.0
# No kitchen cooks, and no shelter holds, a million of anything: a larger count is a typo.
MAX_COUNT = 1_000_000
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

    encodings = ("utf-8-sig",) if data.startswith(codecs.BOM_UTF8) else ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput(
        f"{name} refused: not UTF-8 or GB18030 text",
        {name: ["save the file as UTF-8 or as GB18030 (GBK) text"]},
    )


def read_yaml(path, loader=yaml.SafeLoader):
    """A YAML document from the region pack; a syntax error refuses the file with its line."""
    name = os.path.basename(path)
    text = read_text(path)

    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{name} line {mark.line + 1}" if mark else name
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidInput(f"{name} refused: not valid YAML", {where: [problem]}) from None


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


def _count(value):
    """A whole number, such as a meal capacity, written without thousands separators."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        plain = text.replace(",", "")
        hint = f"; write {plain}" if plain.isascii() and plain.isdigit() else ""
        raise ValueError(f"must be a whole number, got {value!r}{hint}")

    if int(text) > MAX_COUNT:
        raise ValueError(f"must be at most {MAX_COUNT}, got {text}")
    return int(text)


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


def _coordinates(lat_text, lon_text, boundary):
    """Latitude and longitude of a point in or near the region."""
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ValueError("must be numbers") from None

    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError("must be finite numbers")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        hint = "; swapped latitude and longitude?" if -90 <= lon <= 90 else ""
        raise ValueError(f"are outside the world ({lat}, {lon}){hint}")

    distance_km = boundary.distance(Point(lon, lat)) * KM_PER_DEGREE
    if distance_km > MAX_KM_OUTSIDE:
        raise ValueError(
            f"({lat}, {lon}) lie {distance_km:.0f} km outside the region; "
            "swapped latitude and longitude?"
        )
    return lat, lon


def _read_coordinates(record, boundary):
    """The row's lat and lon, or None for both with the problem noted."""
    row = record.values
    found = record.check("lat/lon", _coordinates, row["lat"], row["lon"], boundary)
    return found or (None, None)


def _supplier(record, boundary):
    """A supplier's values from one row of suppliers.csv."""
    lat, lon = _read_coordinates(record, boundary)
    return {
        "code": record.read("code", _text, _length(Supplier, "code")),
        "name": record.read("name", _text, _length(Supplier, "name")),
        "type": record.read("type", _choice, SUPPLIER_TYPES),
        "street_code": record.read("street_code", _text, _length(Supplier, "street_code"), False),
        "lat": lat,
        "lon": lon,
        "breakfast_capacity": record.read("breakfast", _count),
        "lunch_capacity": record.read("lunch", _count),
        "dinner_capacity": record.read("dinner", _count),
        "rating": record.read("rating", _choice, RATINGS),
        "risk_colour": record.read("risk_colour", _choice, RISK_COLOURS),
        "halal": record.read("halal", _bool),
        "vegetarian": record.read("vegetarian", _bool),
        "infant": record.read("infant", _bool),
        "soft_diet": record.read("soft_diet", _bool),
        "hot_holding": record.read("hot_holding", _bool),
        "fictitious": record.read("fictitious", _bool),
    }


def _demand_point(record, boundary):
    """A demand point's values from one row of demand_points.csv."""
    lat, lon = _read_coordinates(record, boundary)
    return {
        "code": record.read("code", _text, _length(DemandPoint, "code")),
        "name": record.read("name", _text, _length(DemandPoint, "name")),
        "type": record.read("type", _choice, DEMAND_POINT_TYPES),
        "street_code": record.read(
            "street_code", _text, _length(DemandPoint, "street_code"), False
        ),
        "lat": lat,
        "lon": lon,
        "capacity": record.read("capacity", _count),
        "fictitious": record.read("fictitious", _bool),
    }


def _note_repeated(problems, coded_lines, label):
    """Note each code seen on an earlier line, under the later line, naming both."""
    first_lines = {}
    for code, line in coded_lines:
        if code is None:
            continue
        if code in first_lines:
            message = f"{label} {code} on lines {first_lines[code]} and {line}"
            problems.setdefault(line, []).append(message)
        else:
            first_lines[code] = line


def _refuse(name, problems):
    """Refuse a file with its problems, listed in line order."""
    errors = {
        f"{name} line {line}" if line else name: messages
        for line, messages in sorted(problems.items(), key=lambda item: item[0] or 0)
    }
    raise InvalidInput(f"{name} refused, nothing loaded", errors)


def _csv_records(path):
    """Each non-blank row of a CSV file as cells, with the line the row starts on."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            name = os.path.basename(path)
            raise InvalidInput(
                f"{name} refused: not readable as CSV", {f"{name} line {line}": [str(error)]}
            ) from None

        if any(cell.strip() for cell in cells):
            yield line, cells


def _check_header(name, header_line, header, columns):
    """Refuse a header that lacks, repeats or adds columns, in one message per problem."""
    if header is None:
        raise InvalidInput(f"{name} refused: no rows", {name: ["the file is empty"]})

    missing = [column for column in columns if column not in header]
    unknown = [column or "(blank)" for column in header if column not in columns]
    repeated = sorted({column for column in header if header.count(column) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)}")
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        _refuse(name, {header_line: problems})


def _field_count_problem(found, expected):
    """Why a row has the wrong number of fields; too many is nearly always a stray comma."""
    if found > expected:
        return (
            "too many fields: a number like 1,200 must be written 1200 or quoted "
            f"({found} fields for {expected} columns)"
        )
    return f"too few fields ({found} fields for {expected} columns)"


def _read_rows(path, columns, parse):
    """Parse every row of a CSV file; refuse the file with every bad row listed."""
    name = os.path.basename(path)
    records = _csv_records(path)
    header_line, header = next(records, (1, None))
    header = header and [column.strip() for column in header]
    _check_header(name, header_line, header, columns)

    rows, problems, codes = [], {}, []
    code_index = header.index("code")
    for line, cells in records:
        if len(cells) != len(header):
            problems[line] = [_field_count_problem(len(cells), len(header))]
            # The code usually comes before the stray comma; a repeat is still worth naming.
            if code_index < len(cells):
                codes.append((cells[code_index].strip() or None, line))
            continue

        record = _Record(dict(zip(header, cells, strict=True)), line)
        values = parse(record)
        if record.problems:
            problems[line] = record.problems
        rows.append(values)
        codes.append((values["code"], line))

    _note_repeated(problems, codes, "code")
    if problems:
        _refuse(name, problems)
    if not rows:
        raise InvalidInput(f"{name} refused: no rows", {name: ["no rows below the header"]})
    return rows


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


def _new_counts():
    return {"created": 0, "updated": 0, "unchanged": 0}


def _store_departments(departments):
    """Upsert the departments, then their people; returns the counts of each."""
    counts, people_counts = _new_counts(), _new_counts()
    for values, _ in departments:
        _upsert(Department, values, counts)
    db.session.flush()

    for values, people in departments:
        department = db.session.scalar(select(Department).filter_by(code=values["code"]))
        for person in people:
            _upsert(Person, {**person, "department_id": department.id}, people_counts)
    return {"departments": counts, "people": people_counts}


def _store_rows(model, rows):
    """Upsert checked rows of one kind; returns the counts."""
    counts = _new_counts()
    for values in rows:
        _upsert(model, values, counts)
    return counts


def load_all(region_dir=DEFAULT_REGION, plan_path=DEFAULT_PLAN, plan_name=None):
    """Load the whole region pack in one transaction; returns counts per kind.

    Every file is read and checked first; a refusal then, or from the plan import, leaves
    the database as it was. `plan_name`, when given, must name the plan loaded or one
    already in the database: it is the plan incidents will run on.
    """
    region = load_region(region_dir)
    boundary = shape(region["boundary_geometry"])
    departments = _read_departments(os.path.join(region_dir, "departments.yaml"))
    suppliers = _read_rows(
        os.path.join(region_dir, "suppliers.csv"),
        SUPPLIER_COLUMNS,
        lambda record: _supplier(record, boundary),
    )
    points = _read_rows(
        os.path.join(region_dir, "demand_points.csv"),
        DEMAND_POINT_COLUMNS,
        lambda record: _demand_point(record, boundary),
    )
    plan_document = read_yaml(plan_path)
    if plan_name is not None:
        _check_plan_name(plan_name, plan_document)

    try:
        summary = _store_departments(departments)
        summary["suppliers"] = _store_rows(Supplier, suppliers)
        summary["demand_points"] = _store_rows(DemandPoint, points)
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
