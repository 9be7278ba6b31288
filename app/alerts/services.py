"""Receiving CAP alerts: parse safely, record every message, and decide what it does.

`ingest` is the door for alerts from real services (the CLI and the API): it records the
message, works out whether it is current and whether its area touches the region, follows
the references of updates and cancellations, and opens, updates or cancels an incident
only when the rules allow. `receive` is the drill's door: it records the scenario's alert
in the run's own scope and leaves the acting to the drill engine.
"""

import hashlib
import logging
import math
from dataclasses import dataclass

from sqlalchemy import select

from app.alerts.cap import parse_cap
from app.alerts.models import Alert
from app.errors import InvalidInput
from app.extensions import db
from app.incidents.models import Incident

log = logging.getLogger(__name__)

LIVE_SCOPE = "live"
# Geocode schemes whose values are Chinese administrative division codes (GB/T 2260 and
# its 9- and 12-digit extensions). CMA writes "CPEAS Geographic Code"; compared casefolded.
ADMINISTRATIVE_SCHEMES = frozenset(
    name.casefold()
    for name in ("CPEAS Geographic Code", "GB/T 2260", "行政区划代码", "administrative code")
)
CPEAS_SCHEME = "CPEAS Geographic Code"
# A 12-digit administrative division code: province 2, city 4, county 6, town 9 digits.
LEVEL_LENGTHS = (2, 4, 6, 9, 12)
# Statuses and message types that are recorded but never acted on.
NOT_ACTED_STATUSES = ("Test", "System", "Draft")
NOT_ACTED_TYPES = ("Ack", "Error")
KM_PER_DEGREE = 111.32


def division_prefix(code):
    """The significant prefix of an administrative code (330211000000 -> 330211)."""
    code = code.strip()
    if not code.isascii() or not code.isdigit() or len(code) not in (6, 9, 12):
        return None
    code = code.ljust(12, "0")
    for length in LEVEL_LENGTHS:
        if set(code[length:]) <= {"0"}:
            return code[:length]
    return code


def touches_region(code, region_code):
    """True when the code is the region, an ancestor of it or a place inside it."""
    prefix, region = division_prefix(code), division_prefix(region_code)
    if prefix is None or region is None:
        return None
    return prefix.startswith(region) or region.startswith(prefix)


def _circle(lat, lon, radius_km):
    """A circle as a lon/lat polygon: degrees of longitude shrink with the latitude."""
    from shapely import affinity
    from shapely.geometry import Point

    radius = max(radius_km, 0.01) / KM_PER_DEGREE
    shrink = max(math.cos(math.radians(lat)), 0.01)
    return affinity.scale(Point(lon, lat).buffer(radius), xfact=1 / shrink, yfact=1.0)


def _shapes(alert):
    """Every polygon and circle of the alert as valid shapely geometry in lon/lat (WGS-84)."""
    from shapely import make_valid
    from shapely.geometry import Polygon

    for info in alert.infos:
        for area in info.areas:
            for polygon in area.polygons:
                # A self-crossing ring is repaired rather than refused: the area still counts.
                yield make_valid(Polygon([(lon, lat) for lat, lon in polygon]))
            for lat, lon, radius_km in area.circles:
                yield _circle(lat, lon, radius_km)


@dataclass(frozen=True)
class AreaVerdict:
    """Whether the alert's area touches the region (None: it cannot be told), and the
    geocode schemes that were given but could not be resolved."""

    in_region: bool | None
    unresolved: tuple[str, ...]


def area_verdict(alert, region_code, boundary=None):
    """Test the alert's areas against the region.

    Chinese administrative codes are compared by level; polygons and circles against the
    region's boundary (a shapely geometry in WGS-84) when one is given. The area touches
    the region when any part of it does; it is outside when every part that could be
    resolved is outside; otherwise it cannot be told.
    """
    verdicts, unresolved = [], []
    for name, value in alert.geocodes():
        verdict = None
        if name.casefold() in ADMINISTRATIVE_SCHEMES:
            verdict = touches_region(value, region_code)
            if verdict is None:
                unresolved.append(f"{name} (unreadable code {value!r})")
        else:
            unresolved.append(name)
        if verdict is not None:
            verdicts.append(verdict)
    if boundary is not None:
        verdicts.extend(shape.intersects(boundary) for shape in _shapes(alert))

    in_region = any(verdicts) if verdicts else None
    return AreaVerdict(in_region, tuple(dict.fromkeys(unresolved)))


def alert_in_region(alert, region_code, boundary=None):
    """True, False, or None when no area is given in a form the project can resolve."""
    return area_verdict(alert, region_code, boundary).in_region


def timing_problems(alert, at):
    """(expired, problems): whether the alert has expired at `at`, and what in its own
    times contradicts itself (expires before sent, effective or onset after expires)."""
    problems = []
    expiries = [info.expires for info in alert.infos if info.expires is not None]
    for info in alert.infos:
        if info.expires is None:
            continue
        if info.expires < alert.sent:
            problems.append(f"expires {info.expires.isoformat()} is before sent")
        for name in ("effective", "onset"):
            start = getattr(info, name)
            if start is not None and start > info.expires:
                problems.append(
                    f"{name} is after expires ({start.isoformat()} > "
                    f"{info.expires.isoformat()}, {info.language})"
                )
    expired = bool(expiries) and max(expiries) <= at
    return expired, list(dict.fromkeys(problems))


def _info_data(info):
    """One info block as plain data, for the record and the answer."""

    def when(value):
        return value.isoformat() if value is not None else None

    return {
        "language": info.language,
        "event": info.event,
        "headline": info.headline,
        "description": info.description,
        "instruction": info.instruction,
        "sender_name": info.sender_name,
        "categories": list(info.categories),
        "urgency": info.urgency,
        "severity": info.severity,
        "certainty": info.certainty,
        "effective": when(info.effective),
        "onset": when(info.onset),
        "expires": when(info.expires),
        "areas": [
            {
                "desc": area.desc,
                "polygons": len(area.polygons),
                "circles": len(area.circles),
                "geocodes": [list(pair) for pair in area.geocodes],
            }
            for area in info.areas
        ],
    }


def _record(data, parsed, *, at, scope, drill_run=None):
    """Write the message as received; the action is filled in by whoever acts on it."""
    from app.alerts.cap import message_text

    info = parsed.info_for("zh-CN")
    row = Alert(
        identifier=parsed.identifier,
        sender=parsed.sender,
        sent=parsed.sent,
        status=parsed.status,
        msg_type=parsed.msg_type,
        languages=list(parsed.languages),
        headline=info.headline if info else None,
        severity=info.severity if info else None,
        geocodes=[list(pair) for pair in parsed.geocodes()],
        infos=[_info_data(info) for info in parsed.infos],
        action="not_acted",
        drill_run_id=drill_run.id if drill_run is not None else None,
        scope=scope,
        received_at=at,
        raw=message_text(data),
        source=bytes(data),
        digest=hashlib.sha256(data).hexdigest(),
    )
    db.session.add(row)
    db.session.flush()
    log.info("alert %s: received from %s (%s)", parsed.identifier, parsed.sender, parsed.status)
    return row


def receive(data, *, region_code, at, drill_run=None):
    """Parse and record a CAP message; returns (Alert row, parsed alert, in_region).

    Re-receiving the same sender and identifier returns the row recorded first.
    """
    parsed = parse_cap(data)
    scope = f"drill-{drill_run.id}" if drill_run is not None else LIVE_SCOPE
    existing = db.session.scalar(
        select(Alert).filter_by(sender=parsed.sender, identifier=parsed.identifier, scope=scope)
    )
    in_region = alert_in_region(parsed, region_code)
    if existing is not None:
        return existing, parsed, in_region
    row = _record(data, parsed, at=at, scope=scope, drill_run=drill_run)
    row.in_region = in_region
    return row, parsed, in_region


def ingest(data, *, at, region, plan_name, language="zh-CN"):
    """Take one CAP message from outside and do the right thing with it.

    Returns the outcome as a dict (see `_outcome`). Raises CapError for a message that
    cannot be read as CAP 1.2, and InvalidInput for one whose identifier was already used
    for different content or when no plan is loaded to act on; nothing is written then.
    """
    from shapely.geometry import shape

    parsed = parse_cap(data)
    existing = db.session.scalar(
        select(Alert).filter_by(
            sender=parsed.sender, identifier=parsed.identifier, scope=LIVE_SCOPE
        )
    )
    if existing is not None:
        return _repeat(existing, data, language)

    verdict = area_verdict(parsed, region["code"], shape(region["boundary_geometry"]))
    expired, problems = timing_problems(parsed, at)
    references = _references(parsed)

    row = _record(data, parsed, at=at, scope=LIVE_SCOPE)
    row.in_region = verdict.in_region
    row.expired = expired
    row.refs = [
        {
            "sender": sender,
            "identifier": identifier,
            "sent": sent.isoformat(),
            "alert_id": found.id if found is not None else None,
        }
        for (sender, identifier, sent), found in references
    ]
    action, incident, reason = _act(
        parsed, row, references, verdict, expired, problems, at, plan_name
    )
    row.action = action
    row.incident_id = incident.id if incident is not None else None
    row.reason = reason
    row.outcome = _outcome(row, parsed, verdict, problems)
    db.session.flush()
    log.info("alert %s: %s (%s)", parsed.identifier, action, reason or "-")
    return _answer(row.outcome, row.infos, language, duplicate=False)


def _repeat(existing, data, language):
    """The same message again: the first answer, marked as a repeat. Different content
    under an identifier already used is refused, as CAP makes identifiers unique."""
    if existing.digest != hashlib.sha256(data).hexdigest():
        raise InvalidInput(
            "identifier already used",
            {
                "identifier": [
                    f"{existing.identifier!r} from {existing.sender!r} was received before "
                    f"(alert {existing.id}) with different content; a changed message needs "
                    "a new identifier, and an Update referring to the earlier one"
                ]
            },
        )
    return _answer(existing.outcome or {}, existing.infos or [], language, duplicate=True)


def _answer(outcome, infos, language, duplicate):
    """The outcome in the asker's language: headline and info blocks in it first."""
    summaries = _summaries(infos, language)
    headline = summaries[0]["headline"] or summaries[0]["event"] if summaries else None
    return dict(outcome, duplicate=duplicate, headline=headline, infos=summaries)


def _references(parsed):
    """Each (sender, identifier, sent) the message refers to, with its row when known."""
    found = []
    for sender, identifier, sent in parsed.references:
        row = db.session.scalar(
            select(Alert).filter_by(sender=sender, identifier=identifier, scope=LIVE_SCOPE)
        )
        found.append(((sender, identifier, sent), row))
    return found


def _act(parsed, row, references, verdict, expired, problems, at, plan_name):
    """Decide and do: returns (action, incident or None, reason or None)."""
    if parsed.status in NOT_ACTED_STATUSES:
        return "not_acted", None, f"status {parsed.status}: recorded, not acted on"
    if parsed.msg_type in NOT_ACTED_TYPES:
        return "not_acted", None, f"{parsed.msg_type} message: recorded, not acted on"

    known = [found for _triple, found in references if found is not None]
    unknown = [triple for triple, found in references if found is None]
    if parsed.msg_type == "Cancel":
        return _cancel(parsed, row, known, unknown, at)

    if expired:
        return "not_acted", None, "expired: recorded, not acted on"
    if problems:
        return "not_acted", None, "contradicts itself: " + "; ".join(problems)
    if not parsed.infos:
        return "not_acted", None, "no info block: nothing says what the alert is"
    if verdict.in_region is False:
        return "out_of_region", None, "its area does not touch the region"
    if verdict.in_region is None:
        if verdict.unresolved:
            schemes = ", ".join(verdict.unresolved)
            return "not_acted", None, f"area cannot be resolved: geocode scheme {schemes}"
        return "not_acted", None, "area cannot be resolved: no polygon, circle or geocode"

    if parsed.msg_type == "Update":
        open_incidents = _open_incidents_of(known, drill=parsed.status == "Exercise")
        if open_incidents:
            return _update(parsed, row, open_incidents[0], at)
        if unknown:
            note = "updates unknown message(s) " + ", ".join(
                f"{sender},{identifier}" for sender, identifier, _sent in unknown
            )
        else:
            note = "the message(s) it updates opened no incident that is still open"
        incident = _open(parsed, row, at, plan_name)
        return "opened", incident, f"{note}; acted on as a new alert"

    return "opened", _open(parsed, row, at, plan_name), None


def _open_incidents_of(alerts, drill):
    """Open incidents opened or updated by these alerts, of the same kind (drill or not)."""
    ids = {alert.incident_id for alert in alerts if alert.incident_id is not None}
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(Incident)
            .where(Incident.id.in_(ids), Incident.status != "closed", Incident.drill.is_(drill))
            .order_by(Incident.id)
        )
    )


def _headline(parsed):
    info = parsed.info_for("zh-CN")
    return (info.headline or info.event) if info else parsed.identifier


def _open(parsed, row, at, plan_name):
    """Open an incident on the plan for a current, in-region alert, and suggest a level."""
    from app.coordination.services import notify
    from app.incidents.services import open_incident, record
    from app.organisation.services import commander_on_duty
    from app.process.services import latest_plan, suggest_level

    plan = latest_plan(plan_name, required=False)
    if plan is None:
        raise InvalidInput(
            "no plan to act on",
            {
                "plan": [
                    f"no plan named {plan_name!r} is loaded; run `flask --app app fixtures "
                    "load` or `plans import` first"
                ]
            },
        )
    drill = parsed.status == "Exercise"
    headline = _headline(parsed)
    title = f"[演练] {headline}" if drill and not headline.startswith("[演练]") else headline
    severity = parsed.info_for("zh-CN").severity
    incident = open_incident(
        kind="supply_emergency", title=title[:300], plan=plan, at=at, drill=drill, severity=severity
    )
    record(incident, "alert_received", f"{parsed.sender}: {headline}", at)
    level, rule = suggest_level(plan, {"severity": severity})
    incident.suggested_level = level
    incident.suggested_rule = rule
    record(incident, "level_suggested", f"{level or '-'}: {rule or 'no rule fires yet'}", at)
    notify(
        key=f"alert-{row.id}-opened",
        kind="alert",
        subject=f"预警：{headline}"[:300],
        body=f"{parsed.sender} {parsed.identifier}; suggested level {level or '-'}",
        incident=incident,
        person=commander_on_duty(plan),
        at=at,
    )
    return incident


def _update(parsed, row, incident, at):
    """An update to the alert of an open incident: note it, take the new severity, and
    suggest the level again; the commander decides any change."""
    from app.coordination.services import notify
    from app.incidents.services import record
    from app.organisation.services import commander_on_duty
    from app.process.services import suggest_level

    headline = _headline(parsed)
    severity = parsed.info_for("zh-CN").severity
    record(incident, "alert_updated", f"{parsed.sender}: {headline} ({severity})", at)
    if severity != incident.severity:
        incident.severity = severity
        figures = {"severity": severity, "evacuees": incident.evacuees, "towns": incident.towns}
        level, rule = suggest_level(incident.plan, figures)
        incident.suggested_level = level
        incident.suggested_rule = rule
        record(incident, "level_suggested", f"{level or '-'}: {rule or 'no rule fires'}", at)
    notify(
        key=f"alert-{row.id}-updated",
        kind="alert",
        subject=f"预警更新：{headline}"[:300],
        body=f"{parsed.sender} {parsed.identifier}; severity {severity}",
        incident=incident,
        person=commander_on_duty(incident.plan),
        at=at,
    )
    return "updated", incident, None


def _cancel(parsed, row, known, unknown, at):
    """A cancellation of earlier messages. An incident they opened that has no response
    level yet is closed; an activated response is left to the commander, who is told."""
    from app.coordination.services import notify
    from app.incidents.services import record
    from app.organisation.services import commander_on_duty

    if not known:
        if unknown:
            names = ", ".join(f"{sender},{identifier}" for sender, identifier, _ in unknown)
            return "not_acted", None, f"cancels unknown message(s) {names}: nothing to cancel"
        return "not_acted", None, "a Cancel without references: nothing to cancel"

    incidents = _open_incidents_of(known, drill=parsed.status == "Exercise")
    if not incidents:
        return "cancelled", None, "the cancelled message(s) opened no incident that is open"
    incident = incidents[0]
    record(incident, "alert_cancelled", f"{parsed.sender}: {parsed.identifier}", at)
    if incident.level is None:
        incident.status = "closed"
        incident.closed_at = at
        record(incident, "incident_closed", "the alert that opened it was cancelled", at)
        reason = "the incident had no response level yet and is closed"
    else:
        reason = f"the response at level {incident.level} stays until the commander ends it"
    notify(
        key=f"alert-{row.id}-cancelled",
        kind="alert",
        subject=f"预警解除：{incident.title}"[:300],
        body=reason,
        incident=incident,
        person=commander_on_duty(incident.plan),
        at=at,
    )
    return "cancelled", incident, reason


def _outcome(row, parsed, verdict, problems):
    """The answer to the sender: what the message is and what was done with it."""
    info = parsed.info_for("zh-CN")
    return {
        "alert_id": row.id,
        "identifier": parsed.identifier,
        "sender": parsed.sender,
        "sent": parsed.sent.isoformat(),
        "status": parsed.status,
        "msg_type": parsed.msg_type,
        "languages": list(parsed.languages),
        "expired": bool(row.expired),
        "problems": problems,
        "in_region": verdict.in_region,
        "unresolved_schemes": list(verdict.unresolved),
        "references": row.refs or [],
        "action": row.action,
        "reason": row.reason,
        "incident_id": row.incident_id,
        "severity": info.severity if info else None,
    }


def ordered_infos(infos, language):
    """The info blocks, the one in the user's language first (then same language family),
    document order otherwise."""
    from app.alerts.cap import language_rank

    return sorted(infos, key=lambda info: language_rank(info["language"], language))


# What an answer shows of each info block; the full text is on the alert's page and API.
SUMMARY_KEYS = (
    "language", "event", "headline", "severity", "urgency", "certainty",
    "effective", "onset", "expires",
)  # fmt: skip


def _summaries(infos, language):
    return [
        {
            **{key: info.get(key) for key in SUMMARY_KEYS},
            "areas": [a["desc"] for a in info["areas"]],
        }
        for info in ordered_infos(infos, language)
    ]


def ingest_and_commit(data, *, at, language="zh-CN"):
    """Ingest one message for the configured region and plan, in one transaction.

    Two deliveries of the same message racing each other both end well: the loser's
    insert collides with the winner's row, and it answers as a repeat.
    """
    from flask import current_app
    from sqlalchemy.exc import IntegrityError

    from app.fixtures import configured_region

    region = configured_region()
    plan_name = current_app.config["BAOGONG_PLAN"]
    for attempt in (1, 2):
        try:
            outcome = ingest(data, at=at, region=region, plan_name=plan_name, language=language)
            db.session.commit()
            return outcome
        except IntegrityError:
            db.session.rollback()
            if attempt == 2:
                raise
        except BaseException:
            db.session.rollback()
            raise
    raise AssertionError("unreachable")


def read_limited(stream, name):
    """Read a message from a binary stream, refusing it past the CAP size limit without
    reading the rest."""
    from app.alerts.cap import MAX_BYTES, CapError

    data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise CapError(f"{name} is larger than {MAX_BYTES} bytes; refused unread")
    return data
