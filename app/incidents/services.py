"""Opening incidents, changing their level, and writing their timeline."""

import contextvars
import logging

from sqlalchemy import select

from app.errors import InvalidInput
from app.extensions import db
from app.incidents.models import Incident, LevelChange, TimelineEntry
from app.process.models import LEVELS

log = logging.getLogger(__name__)


# What is writing: "" for a person or the drill engine, "<kind>:<subject>" for a timed
# action's job. Lines of one instant sort by it, so parallel workers cannot reorder them.
ORIGIN = contextvars.ContextVar("timeline_origin", default="")


def record(incident, event, detail, at):
    """Add one line to the incident's timeline."""
    entry = TimelineEntry(
        incident_id=incident.id, at=at, event=event, detail=detail, origin=ORIGIN.get()
    )
    db.session.add(entry)
    return entry


def open_incident(
    *, kind, title, plan, at, drill_run=None, drill=False, evacuees=None, towns=None, severity=None
):
    """Create an incident on a plan; a drill run, or an exercise alert (drill=True), makes it
    a drill incident."""
    incident = Incident(
        kind=kind,
        title=title,
        plan_id=plan.id,
        drill=drill or drill_run is not None,
        drill_run_id=drill_run.id if drill_run is not None else None,
        opened_at=at,
        evacuees=evacuees,
        towns=towns,
        severity=severity,
    )
    db.session.add(incident)
    db.session.flush()
    record(incident, "incident_opened", title, at)
    log.info("incident %s: opened (%s, drill=%s)", incident.id, kind, incident.drill)
    return incident


def change_level(incident, to_level, *, reason, at, by=None):
    """Set, raise, lower or end (to_level None) the response level, with a reason."""
    if to_level is not None and to_level not in LEVELS:
        raise InvalidInput("unknown level", {"level": [f"must be one of {', '.join(LEVELS)}"]})
    if not reason or not reason.strip():
        raise InvalidInput("a level change needs a reason", {"reason": ["required"]})

    change = LevelChange(
        incident_id=incident.id,
        from_level=incident.level,
        to_level=to_level,
        reason=reason,
        by_person_id=by.id if by is not None else None,
        at=at,
    )
    db.session.add(change)
    previous = incident.level
    incident.level = to_level
    if to_level is None:
        incident.status = "closed"
        incident.closed_at = at
        record(incident, "response_ended", reason, at)
    else:
        record(incident, "level_set", f"{previous or '-'} -> {to_level}: {reason}", at)
    log.info("incident %s: level %s -> %s", incident.id, previous, to_level)
    return change


def live_incident_ids():
    """Open real incidents: the ones that run on the wall clock."""
    return list(
        db.session.scalars(
            select(Incident.id).where(Incident.drill.is_(False), Incident.status != "closed")
        )
    )
