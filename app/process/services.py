"""Plans as data: import with versions, suggest a response level, activate for an incident."""

import hashlib
import json
import logging

from sqlalchemy import func, select

from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.process.models import LEVELS, Plan

log = logging.getLogger(__name__)

RULE_TABLES = ("food_safety", "supply_emergency")
# When a duty is assigned: while a level asks for it, or on a suspected food poisoning.
DUTY_TRIGGERS = ("level", "suspected_poisoning")
# The conditions a rule may hold, and the figure each one reads.
CONDITIONS = {
    "harmed_min": "harmed",
    "deaths_min": "deaths",
    "counties_min": "counties",
    "townships_min": "townships",
    "evacuees_min": "evacuees",
    "towns_min": "towns",
}


def _digest(document):
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def validate_plan(document):
    """Refuse a plan document that the clock could not run, naming the key."""
    errors = {}
    if not isinstance(document, dict):
        raise InvalidInput("a plan is one mapping", {"plan": ["expected a mapping"]})
    for key in ("name", "title", "jurisdiction", "levels", "rules", "duties", "settings"):
        if key not in document:
            errors[key] = ["required"]
    levels = document.get("levels") or {}
    if isinstance(levels, dict) and set(levels) != set(LEVELS):
        errors["levels"] = [f"must define exactly {', '.join(LEVELS)}"]
    for i, duty in enumerate(document.get("duties") or []):
        for key in (
            "code",
            "department",
            "title",
            "legal_basis",
            "levels",
            "confirm_within_minutes",
        ):
            if key not in duty:
                errors.setdefault(f"duties[{i}].{key}", []).append("required")
        if duty.get("trigger", "level") not in DUTY_TRIGGERS:
            errors.setdefault(f"duties[{i}].trigger", []).append(
                f"must be one of {', '.join(DUTY_TRIGGERS)}"
            )
        bad = [lv for lv in duty.get("levels", []) if lv not in LEVELS]
        if bad:
            errors.setdefault(f"duties[{i}].levels", []).append(f"unknown levels {bad}")
    for table in RULE_TABLES:
        for i, rule in enumerate((document.get("rules") or {}).get(table, [])):
            if rule.get("level") not in LEVELS:
                errors.setdefault(f"rules.{table}[{i}].level", []).append("unknown level")
            unknown = (
                set(rule.get("when", {})) - set(CONDITIONS) - {"severity", "school_or_major_event"}
            )
            if unknown:
                errors.setdefault(f"rules.{table}[{i}].when", []).append(
                    f"unknown conditions {sorted(unknown)}"
                )
    if errors:
        raise InvalidInput("plan refused", errors)


def import_plan(document, at):
    """Store a plan: a new name is created, a changed one gets a new version.

    Returns the plan and "created", "versioned" or "unchanged". Duties become rows of the
    new version; departments they name must exist.
    """
    from app.duties.models import Duty
    from app.organisation.models import Department

    validate_plan(document)
    digest = _digest(document)
    latest = latest_plan(document["name"], required=False)
    if latest is not None and latest.digest == digest:
        return latest, "unchanged"

    departments = {d.code: d for d in db.session.scalars(select(Department))}
    missing = sorted({d["department"] for d in document["duties"]} - set(departments))
    if missing:
        raise InvalidInput("plan names unknown departments", {"duties.department": missing})

    plan = Plan(
        name=document["name"],
        version=(latest.version + 1) if latest else 1,
        title=document["title"],
        jurisdiction=str(document["jurisdiction"]),
        document=document,
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
                confirm_within_minutes=int(entry["confirm_within_minutes"]),
                trigger=entry.get("trigger", "level"),
                measure=entry.get("measure"),
            )
        )
    log.info("plan %s: version %s imported", plan.name, plan.version)
    return plan, "versioned" if latest else "created"


def latest_plan(name, required=True):
    plan = db.session.scalar(
        select(Plan).where(Plan.name == name).order_by(Plan.version.desc()).limit(1)
    )
    if plan is None and required:
        raise NotFound(f"no plan named {name!r}")
    return plan


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
    conditions = ", ".join(f"{k}={v}" for k, v in rule["when"].items())
    return f"{table}: level {rule['level']} when {conditions}"


def suggest_level(plan, figures):
    """The most serious level any rule of the plan's tables gives for these figures.

    Returns (level, rule) where rule describes the rule that fired; (None, None) when none.
    """
    best = None
    for table in RULE_TABLES:
        for rule in plan.document["rules"].get(table, []):
            if not _rule_fires(rule["when"], figures):
                continue
            if best is None or LEVELS.index(rule["level"]) < LEVELS.index(best[0]):
                best = (rule["level"], _describe(table, rule))
    return best or (None, None)


PHASES = ("warning", "response", "recovery", "closure")


def checklist_for(plan, level, phase):
    """The checklist lines of a level and phase, each with a stable code."""
    entry = plan.document["levels"][level]
    lines = entry.get("checklist", []) if phase == "response" else []
    return [
        {"code": hashlib.sha256(text.encode()).hexdigest()[:16], "text": text, "measure": None}
        for text in lines
    ]
