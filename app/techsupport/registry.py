"""The expert pool and the labs (专家库、检测机构): the fixed vocabulary of expertise, who may
keep the registry, adding and changing entries, and reading them from the region pack.

The region pack's `experts.yaml` and `labs.yaml` are read and checked whole before
anything is written; rows are matched by code, so loading them again changes nothing.
"""

import logging
import math
import os

from sqlalchemy import select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.supply import imports
from app.techsupport.models import Expert, Lab

log = logging.getLogger(__name__)

# What an expert can be called on for. English codes; pages show translated names.
EXPERTISE = (
    "food_safety",
    "toxicology",
    "epidemiology",
    "clinical_care",
    "emergency_medicine",
    "nutrition",
    "microbiology",
    "testing",
)
MAX_CAPACITY_PER_DAY = 100_000
# A month: a lab that answers later than that is no help in an incident.
MAX_TURNAROUND_HOURS = 720
MAX_ANALYTES = 50
ANALYTE_LENGTH = 100

EXPERT_KEYS = ("code", "name", "organisation", "expertise", "phone", "available", "on_call")
EXPERT_KEYS += ("fictitious",)
LAB_KEYS = ("code", "name", "organisation", "analytes", "capacity_per_day", "turnaround_hours")
LAB_KEYS += ("phone", "address", "available", "fictitious")
# Availability is the office's to keep during an incident: a fixture sets it on a new row
# only, so loading the pack again never undoes what the office marked.
KEPT_BY_THE_OFFICE = ("available", "on_call")


def commander_or_office(user):
    """The commander, or a liaison of the office department the plan names: they keep the
    pool of experts and labs, call experts to incidents and post inspectors."""
    if user is None:
        return False
    if user.role == "commander":
        return True
    if user.role != "liaison" or user.department is None:
        return False
    return user.department.code == office_department_code()


def office_department_code():
    """The department the configured plan's command puts in its office."""
    from flask import current_app

    from app.process.services import latest_plan

    plan = latest_plan(current_app.config["BAOGONG_PLAN"], required=False)
    if plan is None:
        return None
    return (plan.document.get("command") or {}).get("office_department")


def check_expertise(values, field="expertise"):
    """The list of expertise codes, each known and given once; 422 naming the field."""
    unknown = [v for v in values if v not in EXPERTISE]
    if unknown:
        raise InvalidInput(
            "unknown expertise",
            {field: [f"unknown {', '.join(map(str, unknown))}; use {', '.join(EXPERTISE)}"]},
        )
    if len(set(values)) != len(values):
        raise InvalidInput("expertise repeated", {field: ["name each expertise once"]})
    return list(values)


def expert_by_code(code, field="expert"):
    expert = db.session.scalar(select(Expert).filter_by(code=code))
    if expert is None:
        raise InvalidInput("unknown expert", {field: [f"no expert {code!r}"]})
    return expert


def add_expert(values):
    """A new expert of the pool; 409 when the code is taken."""
    check_expertise(values.get("expertise") or [])
    _refuse_taken(Expert, values["code"])
    if values.get("on_call") and values.get("available") is False:
        raise InvalidInput("expert refused", {"on_call": ["an unavailable expert is not on call"]})
    expert = Expert(**values)
    db.session.add(expert)
    db.session.flush()
    log.info("expert %s: added", expert.code)
    return expert


def change_expert(expert, *, available=None, on_call=None):
    """Mark an expert available or not, on call or not. An expert marked unavailable is no
    longer on call; one who is unavailable cannot be put on call."""
    if available is not None:
        expert.available = available
        if not available and on_call is None:
            expert.on_call = False
    if on_call is not None:
        if on_call and not expert.available:
            raise InvalidInput(
                "expert refused", {"on_call": [f"{expert.code} is not available, so not on call"]}
            )
        expert.on_call = on_call
    db.session.flush()
    log.info("expert %s: available=%s on_call=%s", expert.code, expert.available, expert.on_call)
    return expert


def add_lab(values):
    """A new lab; 409 when the code is taken."""
    _refuse_taken(Lab, values["code"])
    lab = Lab(**values)
    db.session.add(lab)
    db.session.flush()
    log.info("lab %s: added", lab.code)
    return lab


def change_lab(lab, changes):
    """Change a lab's availability, daily capacity or turnaround."""
    for key, value in changes.items():
        setattr(lab, key, value)
    db.session.flush()
    log.info("lab %s: changed %s", lab.code, ", ".join(sorted(changes)))
    return lab


def _refuse_taken(model, code):
    if db.session.scalar(select(model.id).filter_by(code=code)) is not None:
        raise Conflict(f"{model.__name__.lower()} {code} exists")


# The region pack --------------------------------------------------------------------


def read_pack(region_dir):
    """The experts and labs of a region pack, each checked; a file that is not there is
    an empty list (a region may have no pool yet)."""
    return (
        _read(os.path.join(region_dir, "experts.yaml"), "experts", EXPERT_KEYS, _expert),
        _read(os.path.join(region_dir, "labs.yaml"), "labs", LAB_KEYS, _lab),
    )


def store_pack(experts, labs):
    """Upsert the checked experts and labs by code; returns the counts of each."""
    return {"experts": _store(Expert, experts), "labs": _store(Lab, labs)}


def _store(model, rows):
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for values in rows:
        row = db.session.scalar(select(model).filter_by(code=values["code"]))
        if row is not None:
            values = {k: v for k, v in values.items() if k not in KEPT_BY_THE_OFFICE}
        imports.upsert(model, values, counts, row)
    db.session.flush()
    return counts


def _read(path, key, keys, convert):
    from app import fixtures

    if not os.path.isfile(path):
        return []
    name = os.path.basename(path)
    document = fixtures.read_yaml(path, loader=fixtures._LineLoader)
    top = fixtures._Record(document if isinstance(document, dict) else {}, None)
    unknown = sorted(str(k) for k in top.values if k not in (key, "sources", fixtures.LINE))
    if unknown:
        top.problems.append(f"unknown keys: {', '.join(unknown)}")
    entries = top.read(key, fixtures._mappings)
    if top.problems:
        fixtures._refuse(name, {None: top.problems})

    rows, problems, coded = [], {}, []
    for entry in entries or ():
        record = fixtures._yaml_record(entry, keys)
        values = convert(record, fixtures)
        if record.problems:
            label = f"{values.get('code') or '?'}: " if values.get("code") else ""
            problems.setdefault(record.line, []).extend(label + p for p in record.problems)
        rows.append(values)
        coded.append((values.get("code"), record.line))
    fixtures._note_repeated(problems, coded, "code")
    if problems:
        fixtures._refuse(name, problems)
    return rows


def _expert(record, fx):
    values = {
        "code": record.read("code", fx._text, fx._length(Expert, "code")),
        "name": record.read("name", fx._text, fx._length(Expert, "name")),
        "organisation": record.read(
            "organisation", fx._text, fx._length(Expert, "organisation"), False
        ),
        "expertise": record.read("expertise", _codes, EXPERTISE),
        "phone": record.read("phone", fx._text, fx._length(Expert, "phone"), False),
        "available": record.check("available", _flag, record.values.get("available", True)),
        "on_call": record.check("on_call", _flag, record.values.get("on_call", False)),
        "fictitious": record.check("fictitious", _flag, record.values.get("fictitious", False)),
    }
    if values["on_call"] and values["available"] is False:
        record.problems.append("on_call an unavailable expert is not on call")
    return values


def _lab(record, fx):
    return {
        "code": record.read("code", fx._text, fx._length(Lab, "code")),
        "name": record.read("name", fx._text, fx._length(Lab, "name")),
        "organisation": record.read(
            "organisation", fx._text, fx._length(Lab, "organisation"), False
        ),
        "analytes": record.read("analytes", _analytes),
        "capacity_per_day": record.read("capacity_per_day", _whole, 0, MAX_CAPACITY_PER_DAY),
        "turnaround_hours": record.read("turnaround_hours", _hours),
        "phone": record.read("phone", fx._text, fx._length(Lab, "phone"), False),
        "address": record.read("address", fx._text, fx._length(Lab, "address"), False),
        "available": record.check("available", _flag, record.values.get("available", True)),
        "fictitious": record.check("fictitious", _flag, record.values.get("fictitious", False)),
    }


def _flag(value):
    """true or false as YAML writes them; "yes" in quotes is a typing error here."""
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _codes(value, allowed):
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a list of at least one of {', '.join(allowed)}")
    unknown = [str(v) for v in value if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {', '.join(unknown)}; use {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError("names a code twice")
    return list(value)


def _analytes(value):
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ANALYTES:
        raise ValueError(f"must be a list of 1 to {MAX_ANALYTES} names")
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > ANALYTE_LENGTH:
            raise ValueError(f"must each be a name of 1 to {ANALYTE_LENGTH} characters")
    return [item.strip() for item in value]


def _whole(value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"must be from {low} to {high}, got {value}")
    return value


def _hours(value):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"must be a number of hours, got {value!r}")
    if not 0 < value <= MAX_TURNAROUND_HOURS:
        raise ValueError(f"must be more than 0 and at most {MAX_TURNAROUND_HOURS}, got {value}")
    return float(value)
