"""Situation reports (信息专报): drafted from live data on the plan's schedule, edited by
the command, approved, sent, and read as a page, a printable page or a Word document.

A report's life: `draft` (the schedule or a person drafts it; each save is a new version
and must name the version it was based on), `approved` (the commander approves one
version; a later save makes it a draft again), `sent` (the commander sends the approved
version; final). A new draft replaces a report of the incident not yet sent, which
becomes `superseded` and leaves its number to the new one. A sent report is never
changed: a correction is the next report, which states what changed since.

Generated text is stored in Chinese (the plan's language); the English rendering of the
generated parts is made again from the figures when asked for, and a section a person
edited is shown as written.
"""

import logging
import re
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import func, select, update

from app.coordination.models import SitrepVersion, SituationReport
from app.coordination.sitrep_export import plain_text, title
from app.coordination.sitrep_text import DRILL_MARK, SECTION_KEYS, generate_sections, local_minute
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.types import isoformat_utc

log = logging.getLogger(__name__)

MAX_SECTION_CHARS = 20_000
MAX_NOTE_CHARS = 2_000
# Timeline lines listed in the changes section; the rest are counted.
MAX_TIMELINE_LINES = 30
# Timeline events that come by the dozen: counted, not listed one by one.
ROUTINE_EVENTS = ("duty_confirmed", "meals_delivered", "allocation_solved", "point_opened")
# Characters refused in section text: control characters but line breaks and tabs.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# Live figures -------------------------------------------------------------------------


def _open_tasks(incident, at):
    """Open coordination tasks between departments, as dicts (id, title, priority, kind,
    status, due_at, overdue, departments)."""
    from app.coordination.tasks import open_task_summary

    return open_task_summary(incident, at)


def _departments_by_code(codes):
    from app.organisation.models import Department

    if not codes:
        return {}
    rows = db.session.scalars(select(Department).where(Department.code.in_(sorted(codes))))
    return {d.code: {"code": d.code, "name": d.name, "name_en": d.name_en} for d in rows}


def _level_figures(incident):
    entry = incident.plan.level(incident.level) if incident.level else {}
    return {
        "declared": incident.level,
        "declared_name": entry.get("name"),
        "declared_name_en": entry.get("name_en"),
        "declared_by_higher": bool(entry.get("declared_by_higher")),
        "commanded_by": entry.get("commanded_by"),
        "suggested": incident.suggested_level,
        "phase": incident.phase,
        "status": incident.status,
    }


def _duty_figures(incident):
    from app.duties.models import DutyAssignment
    from app.duties.services import status_of

    counts = Counter()
    waiting = defaultdict(Counter)
    assignments = db.session.scalars(
        select(DutyAssignment)
        .filter_by(incident_id=incident.id)
        .where(DutyAssignment.status != "retired")
        .order_by(DutyAssignment.id)
    )
    for assignment in assignments:
        status = status_of(assignment)
        counts["total"] += 1
        counts[status] += 1
        if assignment.status in ("assigned", "objected"):
            counts["open"] += 1
            waiting[assignment.department.code][status] += 1
    names = _departments_by_code(set(waiting))
    return {
        "assigned": counts["total"],
        "confirmed": counts["confirmed"],
        "open": counts["open"],
        "overdue": counts["overdue"],
        "escalated": counts["escalated"],
        "objected": counts["objected"],
        "closed": counts["closed"],
        "waiting": [
            {
                **names[code],
                "open": sum(by.values()),
                "escalated": by["escalated"],
                "overdue": by["overdue"],
                "objected": by["objected"],
            }
            for code, by in waiting.items()
        ],
    }


def _meal_figures(incident, at):
    """Meals demanded, allocated, delivered and unmet for each meal of each day; unmet is
    None for a meal not yet served."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    from app.supply.models import DELIVERED_TASK_STATUSES, MealDemand, SupplyTask

    zone = ZoneInfo(current_app.config["BAOGONG_TIMEZONE"])
    rows = {}

    def row(serve_at, meal):
        key = (serve_at, meal)
        if key not in rows:
            rows[key] = {
                "serve_at": isoformat_utc(serve_at),
                "meal": meal,
                "day": serve_at.astimezone(zone).date().isoformat(),
                "demand": 0,
                "allocated": 0,
                "delivered": 0,
            }
        return rows[key]

    demand = select(MealDemand.serve_at, MealDemand.meal, func.sum(MealDemand.meals))
    for serve_at, meal, meals in db.session.execute(
        demand.filter_by(incident_id=incident.id).group_by(MealDemand.serve_at, MealDemand.meal)
    ):
        row(serve_at, meal)["demand"] = int(meals or 0)
    tasks = select(
        SupplyTask.serve_at, SupplyTask.meal, SupplyTask.status, func.sum(SupplyTask.meals)
    )
    tasks = tasks.where(SupplyTask.incident_id == incident.id, SupplyTask.status != "cancelled")
    for serve_at, meal, status, meals in db.session.execute(
        tasks.group_by(SupplyTask.serve_at, SupplyTask.meal, SupplyTask.status)
    ):
        entry = row(serve_at, meal)
        entry["allocated"] += int(meals or 0)
        if status in DELIVERED_TASK_STATUSES:
            entry["delivered"] += int(meals or 0)

    ordered = [rows[key] for key in sorted(rows)]
    for (serve_at, _meal), entry in sorted(rows.items()):
        entry["unmet"] = max(0, entry["demand"] - entry["delivered"]) if serve_at <= at else None
    return ordered


def _food_safety_figures(incident):
    from app.supply.models import Supplier, SupplierSuspension
    from app.techsupport.models import RapidTest

    tests = select(func.count(RapidTest.id)).filter_by(incident_id=incident.id)
    failed = db.session.execute(
        select(RapidTest, Supplier)
        .join(Supplier, RapidTest.supplier_id == Supplier.id)
        .where(RapidTest.incident_id == incident.id, RapidTest.passed.is_(False))
        .order_by(RapidTest.tested_at, RapidTest.id)
    ).all()
    suspensions = db.session.scalars(
        select(SupplierSuspension)
        .filter_by(incident_id=incident.id)
        .order_by(SupplierSuspension.started_at, SupplierSuspension.id)
    )
    return {
        "tests_run": int(db.session.scalar(tests) or 0),
        "tests_failed": len(failed),
        "failed": [
            {
                "supplier": s.code,
                "supplier_name": s.name,
                "analyte": t.analyte,
                "value": t.value,
                "limit": t.limit,
                "unit": t.unit,
                "tested_at": isoformat_utc(t.tested_at),
            }
            for t, s in failed
        ],
        "suspended": [
            {
                "supplier": s.supplier.code,
                "supplier_name": s.supplier.name,
                "since": isoformat_utc(s.started_at),
                "lifted_at": isoformat_utc(s.lifted_at),
            }
            for s in suspensions
        ],
    }


def _task_figures(incident, at):
    tasks = _open_tasks(incident, at)
    names = _departments_by_code({code for task in tasks for code in task.get("departments", [])})
    return [
        {
            "id": task["id"],
            "title": task["title"],
            "priority": task.get("priority"),
            "kind": task.get("kind"),
            "status": task.get("status"),
            "due_at": isoformat_utc(task.get("due_at")),
            "overdue": bool(task.get("overdue")),
            "departments": [
                names.get(code, {"code": code, "name": code, "name_en": None})
                for code in task.get("departments", [])
            ],
        }
        for task in tasks
    ]


def _timeline(incident, since, until):
    """What the timeline recorded in the period: routine events counted, the others
    listed (the first MAX_TIMELINE_LINES)."""
    from app.incidents.models import TimelineEntry

    entries = db.session.scalars(
        select(TimelineEntry)
        .where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.at > since,
            TimelineEntry.at <= until,
            TimelineEntry.event.not_like("sitrep_%"),
        )
        .order_by(TimelineEntry.at, TimelineEntry.origin, TimelineEntry.id)
    ).all()
    notable = [e for e in entries if e.event not in ROUTINE_EVENTS]
    routine = Counter(e.event for e in entries if e.event in ROUTINE_EVENTS)
    return {
        "count": len(entries),
        "routine": {event: routine[event] for event in ROUTINE_EVENTS if routine[event]},
        "notable": len(notable),
        "entries": [
            {"at": isoformat_utc(e.at), "event": e.event, "detail": e.detail}
            for e in notable[:MAX_TIMELINE_LINES]
        ],
    }


def _headline(figures):
    """The figures a later report compares with, flat."""
    totals, duties, safety = figures["totals"], figures["duties"], figures["food_safety"]
    return {
        "level": figures["level"]["declared"],
        **{k: totals[k] for k in ("demand_meals", "allocated_meals", "delivered_meals")},
        "unmet_meals": totals["unmet_meals"],
        "suppliers_suspended": totals["suppliers_suspended"],
        "tests_run": safety["tests_run"],
        "tests_failed": safety["tests_failed"],
        "duties_confirmed": duties["confirmed"],
        "duties_open": duties["open"],
        "duties_escalated": duties["escalated"],
        "tasks_open": len(figures["tasks"]),
        "tasks_overdue": sum(1 for task in figures["tasks"] if task["overdue"]),
    }


def _region():
    """The name of the region served, for the title."""
    from app.fixtures import configured_region

    try:
        region = configured_region()
    except InvalidInput:
        region = {}
    return {"name": region.get("name") or "", "name_en": region.get("name_en") or ""}


def _office(incident):
    from app.organisation.models import Department

    department_id = office_department_id(incident)
    found = db.session.get(Department, department_id) if department_id else None
    if found is None:
        return None
    return {"code": found.code, "name": found.name, "name_en": found.name_en}


def collect_figures(incident, at, since, previous=None):
    """The snapshot a report is drafted from: every figure its sections tell, as plain
    JSON, with what changed since `previous` (the last sent report)."""
    from app.supply.services import incident_figures

    figures = {
        "region": _region(),
        "office": _office(incident),
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "kind": incident.kind,
            "drill": incident.drill,
        },
        "level": _level_figures(incident),
        "duties": _duty_figures(incident),
        "totals": incident_figures(incident),
        "meals": _meal_figures(incident, at),
        "food_safety": _food_safety_figures(incident),
        "tasks": _task_figures(incident, at),
        "timeline": _timeline(incident, since, at),
        "period": {"since": isoformat_utc(since), "until": isoformat_utc(at)},
    }
    figures["headline"] = _headline(figures)
    figures["previous"] = None
    figures["changes"] = []
    if previous is not None:
        before = previous.figures.get("headline", {})
        figures["previous"] = {
            "id": previous.id,
            "number": previous.number,
            "until": isoformat_utc(previous.period_end),
        }
        figures["changes"] = [
            {"figure": key, "before": before.get(key), "after": value}
            for key, value in figures["headline"].items()
            # A figure the previous report did not have yet is not a change.
            if key in before and before[key] != value
        ]
    return figures


# Who may do what ----------------------------------------------------------------------


def office_department_id(incident):
    """The department that runs the command's office for this incident."""
    from app.organisation.services import command_post, department

    post = command_post(incident)
    if post is not None and post.office_department_id is not None:
        return post.office_department_id
    code = incident.plan.document.get("command", {}).get("office_department")
    found = department(code) if code else None
    return found.id if found is not None else None


def may_edit(user, incident):
    """The commander, or a liaison of the command's office; None is the system (the drill
    engine playing the commander)."""
    if user is None or user.role == "commander":
        return True
    return (
        user.role == "liaison"
        and user.department_id is not None
        and user.department_id == office_department_id(incident)
    )


def may_decide(user):
    """Approving and sending is the commander's alone."""
    return user is None or user.role == "commander"


def _actor(user, incident, at):
    """Who acted, as (user id, name): the user, or the incident's commander for the
    system."""
    if user is not None:
        return user.id, (user.display_name or user.username)[:100]
    from app.organisation.services import commander_of

    commander = commander_of(incident, at)
    return None, (commander.name if commander is not None else "system")[:100]


# The life of a report -----------------------------------------------------------------


def reports_of(incident):
    """Every report of an incident, newest first."""
    return db.session.scalars(
        select(SituationReport)
        .filter_by(incident_id=incident.id)
        .order_by(SituationReport.number.desc(), SituationReport.id.desc())
    ).all()


def last_sent(incident):
    return db.session.scalar(
        select(SituationReport)
        .filter_by(incident_id=incident.id, status="sent")
        .order_by(SituationReport.number.desc())
        .limit(1)
    )


def version_of(report, number=None):
    """A version of the report (the latest by default), or None."""
    number = report.current_version if number is None else number
    return db.session.scalar(select(SitrepVersion).filter_by(report_id=report.id, number=number))


def sitreps_issued(incident):
    """How many reports of the incident were sent."""
    count = select(func.count(SituationReport.id)).filter_by(incident_id=incident.id, status="sent")
    return int(db.session.scalar(count) or 0)


def _incident_of(report):
    from app.incidents.models import Incident

    return db.session.get(Incident, report.incident_id)


def _lock(incident):
    """Drafts of one incident go one after another (PostgreSQL; SQLite's writers already
    do), so two cannot take the same number."""
    from app.incidents.models import Incident

    db.session.execute(select(Incident.id).where(Incident.id == incident.id).with_for_update())


def draft_sitrep(incident, at, *, user=None):
    """Draft the next report from live data, as version 1; a report not yet sent is
    superseded by it and leaves it its number."""
    from app.incidents.services import record

    if user is not None and not may_edit(user, incident):
        raise Forbidden("situation reports are drafted by the commander or the command's office")
    _lock(incident)
    previous = last_sent(incident)
    since = previous.period_end if previous else (incident.activated_at or incident.opened_at)
    since = min(since, at)
    figures = collect_figures(incident, at, since, previous)
    pending = db.session.scalars(
        select(SituationReport).where(
            SituationReport.incident_id == incident.id,
            SituationReport.status.in_(("draft", "approved")),
        )
    ).all()
    for old in pending:
        old.status = "superseded"
    db.session.flush()

    report = SituationReport(
        incident_id=incident.id,
        number=(previous.number + 1) if previous else 1,
        status="draft",
        period_start=since,
        period_end=at,
        drafted_at=at,
        figures=figures,
        previous_id=previous.id if previous else None,
        current_version=1,
    )
    db.session.add(report)
    db.session.flush()
    for old in pending:
        old.superseded_by_id = report.id
    author_id, author_name = _actor(user, incident, at) if user else (None, "system")
    report.versions.append(
        SitrepVersion(
            number=1,
            sections=generate_sections(figures, "zh"),
            author_id=author_id,
            author_name=author_name,
            note="drafted from live data",
            created_at=at,
        )
    )
    db.session.flush()

    record(incident, "sitrep_drafted", f"no. {report.number}, report {report.id}", at)
    _tell_drafted(report, incident, at)
    log.info(
        "incident %s: situation report %s drafted as no. %s", incident.id, report.id, report.number
    )
    return report


def draft_on_schedule(incident, *, due_at, at):
    """The plan's schedule: draft a report and schedule the next, keeping the cadence
    from the instant this one was due."""
    from app.clock.services import schedule

    report = draft_sitrep(incident, at)
    every = incident.plan.document.get("sitreps", {}).get("every_hours")
    if every and incident.status != "closed":
        step = timedelta(hours=every)
        following = due_at + step
        while following <= at:
            following += step
        schedule("sitrep", incident, incident.id, following)
    return report


def check_sections(sections):
    """The section texts of a save, trimmed, with \\r\\n made \\n; refuses an unknown key,
    a text that is not a string, too long, or holds control characters."""
    if not isinstance(sections, dict):
        raise InvalidInput("sections refused", {"sections": ["must be a mapping of texts"]})
    errors, clean = {}, {}
    for key, text in sections.items():
        field = f"sections.{key}"
        if key not in SECTION_KEYS:
            errors[field] = [f"unknown section; one of {', '.join(SECTION_KEYS)}"]
        elif not isinstance(text, str):
            errors[field] = ["must be text"]
        elif len(text) > MAX_SECTION_CHARS:
            errors[field] = [f"at most {MAX_SECTION_CHARS} characters"]
        else:
            text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
            if _CONTROL.search(text):
                errors[field] = ["must not hold control characters (line breaks and tabs may)"]
            clean[key] = text
    if errors:
        raise InvalidInput("sections refused", errors)
    return clean


def _editable(report):
    if report.status == "sent":
        raise Conflict(
            f"report no. {report.number} was sent and is final; a correction is the next report"
        )
    if report.status == "superseded":
        raise Conflict(
            f"report {report.id} was superseded by report {report.superseded_by_id}; edit that one"
        )


def edit_sitrep(report, sections, *, base_version, user, at, note=None):
    """Save section texts as a new version made from `base_version`; a save from an older
    version is refused, so two editors at once do not overwrite each other unseen. Returns
    the version (the current one when nothing changed)."""
    incident = _incident_of(report)
    if not may_edit(user, incident):
        raise Forbidden("situation reports are edited by the commander or the command's office")
    clean = check_sections(sections)
    if note is not None:
        note = note.strip() or None
        if note and (len(note) > MAX_NOTE_CHARS or _CONTROL.search(note) or "\n" in note):
            raise InvalidInput("note refused", {"note": [f"one line, at most {MAX_NOTE_CHARS}"]})
    _editable(report)
    if base_version != report.current_version:
        raise Conflict(
            f"report {report.id} is at version {report.current_version} now, not {base_version}: "
            "reload it and make the change again"
        )
    base = version_of(report)
    merged = {**base.sections, **clean}
    if merged == base.sections and not note:
        return base

    claimed = db.session.execute(
        update(SituationReport)
        .where(
            SituationReport.id == report.id,
            SituationReport.current_version == base_version,
            SituationReport.status.in_(("draft", "approved")),
        )
        .values(
            current_version=base_version + 1,
            status="draft",
            approved_version=None,
            approved_by_id=None,
            approved_by_name=None,
            approved_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.refresh(report)
        _editable(report)
        raise Conflict(f"report {report.id} was changed meanwhile; reload it")
    db.session.refresh(report)
    author_id, author_name = _actor(user, incident, at)
    version = SitrepVersion(
        number=base_version + 1,
        sections=merged,
        author_id=author_id,
        author_name=author_name,
        note=note,
        created_at=at,
    )
    report.versions.append(version)
    db.session.flush()
    log.info("situation report %s: version %s saved by %s", report.id, version.number, author_name)
    return version


def approve_sitrep(report, *, version, user, at):
    """The commander approves a version, which must be the latest; approving it again
    changes nothing."""
    from app.incidents.services import record

    if not may_decide(user):
        raise Forbidden("only the commander approves a situation report")
    _editable(report)
    if version != report.current_version:
        raise Conflict(
            f"version {version} is not the latest of report {report.id} "
            f"(version {report.current_version}): read it before approving"
        )
    if report.status == "approved" and report.approved_version == version:
        return report
    incident = _incident_of(report)
    by_id, by_name = _actor(user, incident, at)
    # Only while the version is still the latest: an edit saved meanwhile (a concurrent
    # request on PostgreSQL) makes this approval refer to a text nobody would send.
    claimed = db.session.execute(
        update(SituationReport)
        .where(
            SituationReport.id == report.id,
            SituationReport.current_version == version,
            SituationReport.status.in_(("draft", "approved")),
        )
        .values(
            status="approved",
            approved_version=version,
            approved_by_id=by_id,
            approved_by_name=by_name,
            approved_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(report)
    if claimed.rowcount != 1:
        _editable(report)
        raise Conflict(
            f"report {report.id} was edited meanwhile (version {report.current_version}): "
            "read it before approving"
        )
    record(incident, "sitrep_approved", f"no. {report.number}, version {version}", at)
    return report


def recipients(incident, at):
    """Who receives a sent report: the commander, the office's liaison on duty, and the
    liaison on duty of each department the plan's `sitreps.recipients` names; each once."""
    from app.organisation.services import commander_of, department, liaison_of, office_liaison

    people = [commander_of(incident, at), office_liaison(incident, at)]
    for code in incident.plan.document.get("sitreps", {}).get("recipients", []):
        found = department(code)
        if found is not None:
            people.append(liaison_of(found.id, at))
    seen, unique = set(), []
    for person in people:
        if person is not None and person.id not in seen:
            seen.add(person.id)
            unique.append(person)
    return unique


def send_sitrep(report, *, user, at):
    """The commander sends the approved version to its recipients and the report is final;
    sending it again changes nothing and tells nobody twice."""
    from app.incidents.services import record

    if not may_decide(user):
        raise Forbidden("only the commander sends a situation report")
    if report.status == "sent":
        return report
    if report.status != "approved":
        raise Conflict(f"report no. {report.number} is {report.status}: approve a version first")
    incident = _incident_of(report)
    by_id, by_name = _actor(user, incident, at)
    claimed = db.session.execute(
        update(SituationReport)
        .where(
            SituationReport.id == report.id,
            SituationReport.status == "approved",
            SituationReport.approved_version == report.approved_version,
        )
        .values(
            status="sent",
            sent_version=report.approved_version,
            sent_by_id=by_id,
            sent_by_name=by_name,
            sent_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(report)
    if claimed.rowcount != 1:
        if report.status == "sent":
            return report
        raise Conflict(f"report no. {report.number} changed meanwhile; reload it")

    _tell_sent(report, incident, at)
    record(incident, "sitrep_issued", f"no. {report.number}, version {report.sent_version}", at)
    log.info(
        "incident %s: situation report no. %s sent (version %s)",
        incident.id,
        report.number,
        report.sent_version,
    )
    return report


def _tell_drafted(report, incident, at):
    from app.coordination.services import notify
    from app.organisation.services import commander_of, office_liaison

    mark = f"{DRILL_MARK} " if incident.drill else ""
    for person in {
        p.id: p for p in (commander_of(incident, at), office_liaison(incident, at)) if p is not None
    }.values():
        notify(
            key=f"sitrep-draft-{report.id}-p{person.id}",
            kind="sitrep_draft",
            subject=f"{mark}信息专报 第{report.number}期 草稿待审核",
            body=f"草稿已根据 {local_minute(report.figures['period']['until'])} 的数据生成。",
            incident=incident,
            person=person,
            at=at,
            data={"sitrep_id": report.id, "number": report.number},
        )


def _tell_sent(report, incident, at):
    from app.coordination.services import notify

    body = plain_text(report, report.sent_version)
    for person in recipients(incident, at):
        notify(
            key=f"sitrep-{incident.id}-{report.number}-v{report.sent_version}-p{person.id}",
            kind="sitrep",
            subject=title(report, "zh"),
            body=body,
            incident=incident,
            person=person,
            at=at,
            data={
                "sitrep_id": report.id,
                "number": report.number,
                "version": report.sent_version,
            },
        )
