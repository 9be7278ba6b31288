"""Plans as data: import with versions, suggest a response level, activate for an incident."""

import copy
import hashlib
import json
import logging
import math
import re

from sqlalchemy import func, select

from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.process.models import LEVELS, Plan
from app.process.schemas import CONDITIONS, PHASES, RULE_TABLES, PlanDocumentSchema

log = logging.getLogger(__name__)


def _digest(document):
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def validate_plan(document):
    """Refuse a plan document that the clock could not run, naming every bad key."""
    if not isinstance(document, dict):
        raise InvalidInput("a plan is one mapping", {"plan": ["expected a mapping"]})
    errors = _not_json(document, "")
    if not errors:
        errors = _flatten(PlanDocumentSchema().validate(document))
    if not errors:
        errors = _cross_check(document)
    if errors:
        raise InvalidInput("plan refused", errors)


# No plan nests deeper than this; a deeper document is a mistake or an attack.
MAX_DEPTH = 12
# Text may hold line breaks and tabs, but no other control character (PostgreSQL cannot
# store NUL; the others, and the bidirectional overrides, hide what text says).
_HIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _not_json(value, path, depth=0):
    """Values JSON cannot keep as they are (dates, sets, NaN, keys that are not text), text
    with control characters, and nesting deeper than any plan has."""
    if depth > MAX_DEPTH:
        return {path: [f"nested more than {MAX_DEPTH} deep"]}
    if isinstance(value, str):
        return {path: ["must not hold control characters"]} if _HIDDEN.search(value) else {}
    if isinstance(value, dict):
        errors = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                errors[where] = [f"a key must be text, got {key!r}; put it in quotes"]
            elif _HIDDEN.search(key):
                errors[path or "plan"] = ["a key must not hold control characters"]
            else:
                errors.update(_not_json(item, where, depth + 1))
        return errors
    if isinstance(value, list):
        errors = {}
        for index, item in enumerate(value):
            errors.update(_not_json(item, f"{path}[{index}]", depth + 1))
        return errors
    if isinstance(value, float) and not math.isfinite(value):
        return {path: ["must be a finite number"]}
    if value is None or isinstance(value, str | int | float | bool):
        return {}
    return {path: [f"must be text, a number, true/false, a list or a mapping; quote {value}"]}


def _flatten(messages, path=""):
    """marshmallow's nested messages as one mapping of key paths (`duties[3].levels`)."""
    flat = {}
    if isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, dict):
                for key, found in _flatten(message, path).items():
                    flat.setdefault(key, []).extend(found)
            else:
                flat.setdefault(path or "plan", []).append(str(message))
        return flat
    for key, value in messages.items():
        if key == "_schema":
            where = path
        elif isinstance(key, int):
            where = f"{path}[{key}]"
        else:
            where = f"{path}.{key}" if path else str(key)
        for found_key, found in _flatten(value, where).items():
            flat.setdefault(found_key, []).extend(found)
    return flat


def _cross_check(document):
    """What a schema cannot see: codes given once, measures named in the measures list."""
    errors = {}
    measures = {m["code"] for m in document["measures"]}

    def once(items, label):
        codes = [item["code"] for item in items if isinstance(item, dict)]
        for index, code in enumerate(codes):
            if code in codes[:index]:
                errors.setdefault(f"{label}[{index}].code", []).append(
                    f"{code} given twice; codes are given once"
                )

    def known(codes, where):
        unknown = [code for code in codes if code not in measures]
        if unknown:
            errors.setdefault(where, []).append(f"not in the measures list: {', '.join(unknown)}")

    once(document["measures"], "measures")
    once(document["duties"], "duties")
    for index, duty in enumerate(document["duties"]):
        if "measure" in duty:
            known([duty["measure"]], f"duties[{index}].measure")
    once(document.get("working_groups") or [], "working_groups")
    for code, level in document["levels"].items():
        if code == "note":
            continue
        known(level["measures"], f"levels.{code}.measures")
        phases = level.get("phases") or {}
        for phase, content in phases.items():
            if phase == "note":
                continue
            where = f"levels.{code}.phases.{phase}"
            known(content.get("measures", []), f"{where}.measures")
            items = content.get("checklist", [])
            once(items, f"{where}.checklist")
            for index, item in enumerate(items):
                if isinstance(item, dict) and "measure" in item:
                    known([item["measure"]], f"{where}.checklist[{index}].measure")
    return errors


def import_plan(document, at):
    """Store a plan: a new name is created, a changed one gets a new version.

    Returns the plan and "created", "versioned" or "unchanged". Duties become rows of the
    new version; departments they name must exist. Rows of earlier versions are never
    changed: an incident keeps the version it was activated with.
    """
    from app.duties.models import Duty
    from app.organisation.models import Department

    validate_plan(document)
    digest = _digest(document)
    lock_plan(document["name"])
    latest = latest_plan(document["name"], required=False)
    if latest is not None and latest.digest == digest:
        return latest, "unchanged"

    departments = {d.code: d for d in db.session.scalars(select(Department))}
    missing = _unknown_departments(document, set(departments))
    if missing:
        raise InvalidInput("plan names unknown departments", missing)

    plan = Plan(
        name=document["name"],
        version=(latest.version + 1) if latest else 1,
        title=document["title"],
        jurisdiction=document["jurisdiction"],
        # A copy: the caller's mapping may change later, the stored version may not.
        document=copy.deepcopy(document),
        digest=digest,
        imported_at=at,
    )
    db.session.add(plan)
    db.session.flush()
    for entry in document["duties"]:
        db.session.add(
            Duty(
                plan_id=plan.id,
                code=entry["code"],
                department_id=departments[entry["department"]].id,
                title=entry["title"],
                title_en=entry.get("title_en"),
                legal_basis=entry["legal_basis"],
                levels=",".join(entry["levels"]),
                confirm_within_minutes=entry["confirm_within_minutes"],
                trigger=entry.get("trigger", "level"),
                measure=entry.get("measure"),
                incident_kinds=",".join(entry.get("incident_kinds", [])) or None,
            )
        )
    db.session.flush()
    log.info("plan %s: version %s imported", plan.name, plan.version)
    return plan, "versioned" if latest else "created"


def _unknown_departments(document, known):
    """Each key naming a department that does not exist, with the code it names."""
    named = [(f"duties[{i}].department", d["department"]) for i, d in enumerate(document["duties"])]
    for key in ("commander_department", "office_department"):
        if key in (document.get("command") or {}):
            named.append((f"command.{key}", document["command"][key]))
    for i, group in enumerate(document.get("working_groups") or []):
        if "lead" in group:
            named.append((f"working_groups[{i}].lead", group["lead"]))
        for j, code in enumerate(group.get("members", [])):
            named.append((f"working_groups[{i}].members[{j}]", code))
    for i, code in enumerate((document.get("sitreps") or {}).get("recipients", [])):
        named.append((f"sitreps.recipients[{i}]", code))
    return {key: [f"no department {code}"] for key, code in named if code not in known}


def lock_plan(name):
    """Hold the rows of a plan until the transaction ends, so two writers of one plan go
    one after the other (PostgreSQL; SQLite's writers already do). Reads after this see
    what the first writer committed."""
    db.session.execute(select(Plan.id).where(Plan.name == name).with_for_update()).all()


def check_base_version(name, base_version):
    """A change made from version `base_version` is refused once another is current, so
    two people editing at once do not overwrite each other unseen."""
    from app.errors import Conflict

    if base_version is None:
        return
    lock_plan(name)
    current = latest_plan(name, required=False)
    if current is not None and current.version != base_version:
        raise Conflict(
            f"{name} is at version {current.version} now, not {base_version}: "
            "reload it and make the change again"
        )


def latest_plan(name, required=True):
    """The current (highest) version of the plan called `name`."""
    plan = db.session.scalar(
        select(Plan).where(Plan.name == name).order_by(Plan.version.desc()).limit(1)
    )
    if plan is None and required:
        raise NotFound(f"no plan named {name!r}")
    return plan


def plan_version(name, version=None):
    """One version of a plan, the current one when `version` is None; NotFound if none."""
    if version is None:
        return latest_plan(name)
    plan = db.session.scalar(select(Plan).filter_by(name=name, version=version))
    if plan is None:
        raise NotFound(f"plan {name!r} has no version {version}")
    return plan


def plan_versions(name):
    """Every version of a plan, newest first; NotFound when there is none."""
    plans = db.session.scalars(
        select(Plan).where(Plan.name == name).order_by(Plan.version.desc())
    ).all()
    if not plans:
        raise NotFound(f"no plan named {name!r}")
    return plans


def latest_plans():
    """The current version of every plan, by name."""
    newest = (
        select(Plan.name, func.max(Plan.version).label("version")).group_by(Plan.name).subquery()
    )
    query = select(Plan).join(
        newest, (Plan.name == newest.c.name) & (Plan.version == newest.c.version)
    )
    return db.session.scalars(query.order_by(Plan.name)).all()


def plan_count():
    return db.session.scalar(select(func.count(Plan.id)))


def _rule_fires(when, figures):
    for condition, figure in CONDITIONS.items():
        if condition in when and (figures.get(figure) or 0) < when[condition]:
            return False
    if "severity" in when and figures.get("severity") not in when["severity"]:
        return False
    if when.get("school_or_major_event"):
        return bool(figures.get("school") or figures.get("major_event"))
    return True


def _describe(table, rule):
    conditions = ", ".join(f"{k}={v}" for k, v in rule["when"].items() if k != "note")
    return f"{table}: level {rule['level']} when {conditions}"


def _most_serious_rule(plan, figures):
    """(table, rule) of the most serious level any rule gives; the first such rule wins."""
    best = None
    for table in RULE_TABLES:
        for rule in plan.document["rules"].get(table, []):
            if not _rule_fires(rule["when"], figures):
                continue
            if best is None or LEVELS.index(rule["level"]) < LEVELS.index(best[1]["level"]):
                best = (table, rule)
    return best


def suggest_level(plan, figures):
    """The most serious level any rule of the plan's tables gives for these figures.

    Returns (level, rule) where rule describes the rule that fired; (None, None) when none.
    """
    best = _most_serious_rule(plan, figures)
    if best is None:
        return None, None
    table, rule = best
    return rule["level"], _describe(table, rule)


def level_suggestion(plan, figures):
    """The suggested level with the rule and table it comes from and who commands it.

    A level declared by a higher government is only suggested here: the district works
    within the response declared above it.
    """
    best = _most_serious_rule(plan, figures)
    if best is None:
        return {
            "level": None,
            "rule": None,
            "table": None,
            "declared_by_higher": None,
            "commanded_by": None,
        }
    table, rule = best
    level = plan.level(rule["level"])
    return {
        "level": rule["level"],
        "rule": _describe(table, rule),
        "table": table,
        "declared_by_higher": level["declared_by_higher"],
        "commanded_by": level["commanded_by"],
    }


def _item_code(text):
    """A code for a checklist line written as plain text: the same text, the same code."""
    return "item-" + hashlib.sha256(text.strip().encode()).hexdigest()[:10]


def checklist_for(plan, level, phase, kind=None):
    """What to do at `level` in `phase`, as items with a stable code, text and measure;
    with `kind`, only the items asked of that kind of incident.

    A level written in the older form (one checklist, no phases) has that checklist as its
    response and nothing in the other phases. Items of the same code at two levels are the
    same item: a level change keeps them.
    """
    if phase not in PHASES:
        raise InvalidInput("unknown phase", {"phase": [f"one of {', '.join(PHASES)}"]})
    entry = _level(plan, level)
    if "phases" in entry:
        items = entry["phases"][phase].get("checklist", [])
    else:
        items = entry.get("checklist", []) if phase == "response" else []

    checklist = []
    for item in items:
        if isinstance(item, str):
            item = {"code": _item_code(item), "text": item}
        if kind is not None and kind not in item.get("incident_kinds", [kind]):
            continue
        checklist.append(
            {
                "code": item["code"],
                "text": item["text"],
                "text_en": item.get("text_en"),
                "measure": item.get("measure"),
            }
        )
    return checklist


def measures_for(plan, level, phase):
    """The codes of the measures taken at `level` in `phase`."""
    if phase not in PHASES:
        raise InvalidInput("unknown phase", {"phase": [f"one of {', '.join(PHASES)}"]})
    entry = _level(plan, level)
    if "phases" in entry:
        return list(entry["phases"][phase].get("measures", []))
    return list(entry["measures"]) if phase == "response" else []


def duties_for(plan, level):
    """The duties of the plan that apply at `level`, in the plan's order."""
    _level(plan, level)
    return [dict(duty) for duty in plan.document["duties"] if level in duty["levels"]]


def _level(plan, level):
    if level not in LEVELS:
        raise InvalidInput("unknown level", {"level": [f"one of {', '.join(LEVELS)}"]})
    return plan.level(level)
