"""The response as the plan drives it: activation at a confirmed level, level changes,
phases, the end of the response, and a reported suspected food poisoning.

Each change works out from the plan which duties and checklist lines now apply: those
still asked for are kept, the new ones assigned and the dropped ones retired.
"""

import logging
from datetime import timedelta

from sqlalchemy import select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.incidents.services import change_level, open_incident, record
from app.process.models import LEVELS
from app.process.services import PHASES, suggest_level

log = logging.getLogger(__name__)


def _note_declared_above(incident, level, at):
    """Levels I to III are declared by higher government; the district works within them."""
    entry = incident.plan.level(level)
    if entry.get("declared_by_higher"):
        by = entry.get("commanded_by") or "higher"
        record(
            incident, "level_declared_above", f"level {level}: declared by the {by} government", at
        )


def activate(incident, level, *, at, reason, by=None):
    """Activate the plan at a confirmed level: command, working groups, duties, reports.
    Returns the assignments made."""
    return _activate(incident, level, at=at, reason=reason, by=by)[0]


def _activate(incident, level, *, at, reason, by=None):
    from app.clock.services import schedule
    from app.duties.services import assign_duties, reconcile_checklist
    from app.organisation.services import set_up_command

    if incident.status == "closed":
        raise Conflict("the incident is closed")
    if incident.activated_at is not None:
        raise Conflict("the plan is already activated for this incident; change its level")
    change_level(incident, level, reason=reason, at=at, by=by)
    _note_declared_above(incident, level, at)
    incident.status = "active"
    incident.activated_at = at
    incident.phase = "response"
    set_up_command(incident, at)
    assignments = assign_duties(incident, at)
    checklist = reconcile_checklist(incident, at)

    every = incident.plan.document.get("sitreps", {}).get("every_hours")
    if every:
        schedule("sitrep", incident, incident.id, at + timedelta(hours=every))
    record(incident, "plan_activated", f"level {level}, {len(assignments)} duties assigned", at)
    return assignments, checklist


def set_level(incident, level, *, at, reason, by=None):
    """The commander confirms, raises or lowers the level (None ends the response), always
    with a reason. Returns what happened to duties and checklist lines."""
    from app.duties.services import reconcile_checklist, reconcile_duties

    if not reason or not reason.strip():
        raise InvalidInput("a level change needs a reason", {"reason": ["required"]})
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    if level is None:
        return end_response(incident, at=at, reason=reason, by=by)
    if level not in LEVELS:
        raise InvalidInput("unknown level", {"level": [f"must be one of {', '.join(LEVELS)}"]})
    if incident.activated_at is None:
        assignments, checklist = _activate(incident, level, at=at, reason=reason, by=by)
        from app.duties.models import OPEN_STATUSES, DutyAssignment

        held = db.session.scalars(
            select(DutyAssignment.id).where(
                DutyAssignment.incident_id == incident.id,
                DutyAssignment.status.in_(OPEN_STATUSES + ("confirmed",)),
            )
        ).all()
        # Those a poisoning report started stay as they were.
        duties = {"assigned": len(assignments), "kept": len(held) - len(assignments), "retired": 0}
        return {"duties": duties, "checklist": checklist}
    if level == incident.level:
        raise Conflict(f"the level is already {level}")
    change_level(incident, level, reason=reason, at=at, by=by)
    _note_declared_above(incident, level, at)
    if incident.phase not in ("response", "recovery"):
        incident.phase = "response"
    duties = reconcile_duties(incident, at)
    checklist = reconcile_checklist(incident, at)
    record(
        incident,
        "duties_reconciled",
        f"level {level}: {duties['assigned']} assigned, {duties['kept']} kept, "
        f"{duties['retired']} retired",
        at,
    )
    return {"duties": duties, "checklist": checklist}


def enter_phase(incident, phase, *, at, reason=None):
    """Move the response to the warning, response, recovery or closure phase: the
    checklist follows."""
    from app.duties.services import reconcile_checklist

    if phase not in PHASES:
        raise InvalidInput("unknown phase", {"phase": [f"must be one of {', '.join(PHASES)}"]})
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    if phase in ("response", "recovery") and incident.level is None:
        raise Conflict(f"the {phase} phase needs a confirmed level; set the level first")
    if phase == "closure":
        raise Conflict("the closure phase opens when the response ends (level null)")
    if phase == incident.phase:
        raise Conflict(f"the response is already in the {phase} phase")
    incident.phase = phase
    counts = reconcile_checklist(incident, at)
    record(incident, "phase_entered", phase + (f": {reason}" if reason else ""), at)
    return {"checklist": counts}


def end_response(incident, *, at, reason, by=None):
    """End the response: every assignment is closed, every coordination task still open
    is called off, inspectors posted for it leave their posts, and the closure checklist
    opens."""
    from app.coordination.tasks import cancel_open_tasks
    from app.duties.services import close_all, reconcile_checklist
    from app.techsupport.inspections import end_postings

    if incident.status == "closed":
        raise Conflict("the incident is closed")
    last = incident.level
    change_level(incident, None, reason=reason, at=at, by=by)
    closed = close_all(incident, f"response ended: {reason}", at)
    cancelled = cancel_open_tasks(incident, f"response ended: {reason}", at)
    end_postings(incident, at)
    checklist = {"added": 0, "kept": 0, "retired": 0}
    if last is not None:
        # The closure lines are those of the level the response ended at.
        incident.level, incident.phase = last, "closure"
        checklist = reconcile_checklist(incident, at)
        incident.level = None
    return {"duties": {"closed": closed}, "tasks": {"cancelled": cancelled}, "checklist": checklist}


FOOD_SAFETY_FIGURES = ("harmed", "deaths", "counties", "townships")


def _report_key(plan, title, place, demand_point, figures, drill_run, at):
    """The same report within ten minutes has the same key."""
    import hashlib
    import json

    content = [plan.name, title, place, demand_point.id if demand_point else None, figures]
    content += [drill_run.id if drill_run else None, int(at.timestamp() // 600)]
    return "auto-" + hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


def _reports_alike(incident, title, place, demand_point, figures):
    point_id = demand_point.id if demand_point is not None else None
    return (
        incident.title == title
        and incident.demand_point_id == point_id
        and (place is None or incident.place == place)
        and incident.figures == figures
    )


def _same_report(title, place, demand_point, figures, drill_run, at):
    """An open food-safety incident reported with the same words in the last ten minutes."""
    recent = db.session.scalars(
        select(Incident).where(
            Incident.kind == "food_safety",
            Incident.status != "closed",
            Incident.title == title,
            Incident.opened_at >= at - timedelta(minutes=10),
            Incident.drill_run_id == (drill_run.id if drill_run else None)
            if drill_run
            else Incident.drill_run_id.is_(None),
        )
    ).all()
    return next((i for i in recent if _reports_alike(i, title, place, demand_point, figures)), None)


def report_suspected_poisoning(
    plan,
    *,
    at,
    title,
    figures,
    place=None,
    demand_point=None,
    drill_run=None,
    by=None,
    report_key=None,
):
    """A suspected food poisoning is reported: open a food-safety incident, suggest its
    level from the plan's food-safety table and start at once the duties the plan sets
    for a report (the 2-hour initial report, medical rescue, sealing and testing the
    suspect food, the CDC's epidemiological investigation), each with its deadline.

    A report naming a demand point gets the trace of what was delivered there attached,
    and the retained samples in it held for the new incident; the same report again
    returns the incident it opened and attaches and holds nothing more."""
    from app.duties.services import assign_on_report, reconcile_checklist

    errors = {}
    clean = {}
    for key in FOOD_SAFETY_FIGURES:
        value = figures.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors[key] = ["must be a whole number, 0 or more"]
        clean[key] = value
    for key in ("school", "major_event"):
        if not isinstance(figures.get(key, False), bool):
            errors[key] = ["must be true or false"]
        clean[key] = bool(figures.get(key, False))
    if not errors and clean["deaths"] > clean["harmed"]:
        errors["deaths"] = ["cannot exceed harmed"]
    if not (title or "").strip():
        errors["title"] = ["required"]
    if demand_point is None and not (place or "").strip():
        errors["place"] = ["give the demand point or the place"]
    if errors:
        raise InvalidInput("report refused", errors)

    title, place = title.strip(), (place or "").strip() or None
    key = report_key or _report_key(plan, title, place, demand_point, clean, drill_run, at)
    existing = db.session.scalar(select(Incident).filter_by(report_key=key))
    same = _same_report(title, place, demand_point, clean, drill_run, at)
    if existing is not None and same is not None and existing.id != same.id:
        existing = None
    if existing is not None and report_key and not _reports_alike(existing, title, place,
                                                                  demand_point, clean):  # fmt: skip
        raise Conflict("this Idempotency-Key was used for another report")
    existing = existing or same
    if existing is not None:
        log.info("incident %s: the same report again, nothing new opened", existing.id)
        existing.duplicate = True
        return existing

    incident = open_incident(kind="food_safety", title=title, plan=plan, at=at, drill_run=drill_run)
    incident.report_key = key
    incident.duplicate = False
    incident.figures = clean
    incident.place = place or (demand_point.name if demand_point else None)
    incident.demand_point_id = demand_point.id if demand_point is not None else None
    incident.phase = "warning"
    level, rule = suggest_level(plan, clean)
    incident.suggested_level, incident.suggested_rule = level, rule
    record(incident, "poisoning_reported", f"{incident.place}: {clean}", at)
    record(incident, "level_suggested", f"{level or '-'}: {rule or 'no rule fires'}", at)
    assignments = assign_on_report(incident, at)
    reconcile_checklist(incident, at)
    if demand_point is not None:
        from app.techsupport.trace import attach_trace

        attach_trace(incident, demand_point, at)
    log.info("incident %s: suspected poisoning, %d duties started", incident.id, len(assignments))
    return incident
