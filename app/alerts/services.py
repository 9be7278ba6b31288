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
# The first two digits of every province-level division (GB/T 2260), Hong Kong, Macao and
# Taiwan included; any other pair is no administrative code.
PROVINCE_PREFIXES = frozenset(
    ("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
     "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
     "65", "71", "81", "82")
)  # fmt: skip
# Statuses and message types that are recorded but never acted on.
NOT_ACTED_STATUSES = ("Test", "System", "Draft")
NOT_ACTED_TYPES = ("Ack", "Error")
EARTH_RADIUS_KM = 6371.0088
# An alert sent later than this after the instant it is judged at is from the future: a
# wrong clock or a made-up message.
CLOCK_SKEW_MINUTES = 15
# An alert that takes effect further ahead than this is not current yet; it is recorded.
EFFECTIVE_HORIZON_HOURS = 72


def division_prefix(code):
    """The significant prefix of an administrative code (330211000000 -> 330211, 33 -> 33);
    None for what is no such code."""
    code = code.strip()
    if not code.isascii() or not code.isdigit() or len(code) not in (2, 4, 6, 9, 12):
        return None
    if code[:2] not in PROVINCE_PREFIXES:
        return None
    code = code.ljust(12, "0")
    for start, length in zip((0, *LEVEL_LENGTHS), LEVEL_LENGTHS, strict=False):
        if set(code[length:]) <= {"0"}:
            return code[:length]
        if set(code[start:length]) <= {"0"}:
            return None  # a town under no county, a village under no town
    return code


def touches_region(code, region_code):
    """True when the code is the region, an ancestor of it or a place inside it."""
    prefix, region = division_prefix(code), division_prefix(region_code)
    if prefix is None or region is None:
        return None
    return prefix.startswith(region) or region.startswith(prefix)


def _circle_touches(lat, lon, radius_km, boundary):
    """Whether a circle on the Earth reaches the region: the great-circle distance from its
    centre to the nearest point of the boundary (sampled every 100 m or so) is within the
    radius, or the centre lies inside. Exact across the 180th meridian and near the poles."""
    import numpy as np
    from shapely import segmentize
    from shapely.geometry import Point

    if boundary.covers(Point(lon, lat)):
        return True
    points = np.concatenate(
        [np.asarray(ring.coords) for ring in _rings(segmentize(boundary, 0.001))]
    )
    p1, p2 = math.radians(lat), np.radians(points[:, 1])
    dl = np.radians(points[:, 0] - lon)
    a = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    km = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    return bool(km.min() <= radius_km)


def _rings(geometry):
    polygons = geometry.geoms if geometry.geom_type == "MultiPolygon" else [geometry]
    for polygon in polygons:
        yield polygon.exterior
        yield from polygon.interiors


def _polygon_touches(points, boundary):
    """Whether a CAP polygon (lat, lon points) touches the region. A ring whose edges jump
    more than 180 degrees of longitude crosses the 180th meridian: it is unwrapped and
    tested against the region shifted by a turn either way."""
    from shapely import affinity, make_valid
    from shapely.geometry import Polygon

    lons = [points[0][1]]
    for _lat, lon in points[1:]:
        lon += 360 * round((lons[-1] - lon) / 360)
        lons.append(lon)
    # A self-crossing ring is repaired rather than refused: the area still counts.
    ring = make_valid(Polygon(zip(lons, (lat for lat, _lon in points), strict=True)))
    return any(ring.intersects(affinity.translate(boundary, xoff=turn)) for turn in (0, 360, -360))


@dataclass(frozen=True)
class AreaVerdict:
    """Whether the alert's area touches the region (None: it cannot be told), and the
    geocode schemes that were given but could not be resolved."""

    in_region: bool | None
    unresolved: tuple[str, ...]


def area_verdict(alert, region_code, boundary=None):
    """Test the alert's areas against the region.

    Chinese administrative codes are compared by level; polygons and circles against the
    region's boundary (a shapely geometry in WGS-84) when one is given. Within one <area>,
    shapes and codes describe the same place: any part inside puts it inside, and its
    shapes, when it has any, settle that it is outside. The alert touches the region when
    any area does, is outside when every area is, and otherwise cannot be told: an area
    that cannot be read might be the one inside.
    """
    verdicts, unresolved = [], []
    for info in alert.infos:
        for area in info.areas:
            verdict, schemes = _area_verdict(area, region_code, boundary)
            verdicts.append(verdict)
            unresolved.extend(schemes)

    if any(verdicts):
        in_region = True
    elif not verdicts or None in verdicts:
        in_region = None
    else:
        in_region = False
    return AreaVerdict(in_region, tuple(dict.fromkeys(unresolved)))


def _area_verdict(area, region_code, boundary):
    """(True, False or None, schemes not resolved) for one <area>."""
    parts, unresolved = [], []
    for name, value in area.geocodes:
        if name.casefold() not in ADMINISTRATIVE_SCHEMES:
            unresolved.append(name)
            continue
        verdict = touches_region(value, region_code)
        if verdict is None:
            unresolved.append(f"{name} (unreadable code {value!r})")
        else:
            parts.append(verdict)
    shapes = boundary is not None and bool(area.polygons or area.circles)
    if shapes:
        parts.extend(_polygon_touches(points, boundary) for points in area.polygons)
        parts.extend(
            _circle_touches(lat, lon, radius, boundary) for lat, lon, radius in area.circles
        )

    if any(parts):
        return True, unresolved
    if shapes or (parts and not unresolved):
        return False, unresolved
    return None, unresolved


def alert_in_region(alert, region_code, boundary=None):
    """True, False, or None when no area is given in a form the project can resolve."""
    return area_verdict(alert, region_code, boundary).in_region


def timing_problems(alert, at, max_age_hours=None):
    """(expired, problems): whether the alert has expired at `at`, and what in its own
    times contradicts itself (expires before sent, effective or onset after expires).

    An alert that gives no expiry at all counts as expired `max_age_hours` after it was
    sent, when that is given: an old warning without an end is no longer news."""
    from datetime import timedelta

    problems = []
    if alert.sent > at + timedelta(minutes=CLOCK_SKEW_MINUTES):
        problems.append(f"sent {alert.sent.isoformat()} is in the future")
    horizon = at + timedelta(hours=EFFECTIVE_HORIZON_HOURS)
    for info in alert.infos:
        if info.effective is not None and info.effective > horizon:
            problems.append(f"not effective until {info.effective.isoformat()} ({info.language})")
    expiries = [info.expires for info in alert.infos if info.expires is not None]
    if not expiries and max_age_hours is not None:
        return alert.sent + timedelta(hours=max_age_hours) <= at, problems
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
        digest=content_digest(data),
    )
    db.session.add(row)
    db.session.flush()
    log.info("alert %s: received from %s (%s)", parsed.identifier, parsed.sender, parsed.status)
    return row


def content_digest(data):
    """A digest of what the message says: the same message sent again with other line
    ends, indentation, a trailing newline or another encoding digests the same (XML C14N
    2.0, text stripped of surrounding white space)."""
    from xml.etree.ElementTree import canonicalize

    from app.alerts.cap import message_text

    text = message_text(data)
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :]  # the declaration names an encoding no more true
    return hashlib.sha256(canonicalize(text, strip_text=True).encode()).hexdigest()


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


def ingest(data, *, at, region, plan_name, language="zh-CN", max_age_hours=None):
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
    expired, problems = timing_problems(parsed, at, max_age_hours)
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
            "sent_differs": found is not None and found.sent != sent,
        }
        for (sender, identifier, sent), found in references
    ]
    action, incidents, reason = _act(
        parsed, row, references, verdict, expired, problems, at, plan_name
    )
    row.action = action
    row.incident_id = incidents[0].id if incidents else None
    row.reason = reason
    row.outcome = _outcome(row, parsed, verdict, problems)
    row.outcome["incident_ids"] = [incident.id for incident in incidents]
    db.session.flush()
    log.info("alert %s: %s (%s)", parsed.identifier, action, reason or "-")
    return _answer(row.outcome, row.infos, language, duplicate=False)


def _repeat(existing, data, language):
    """The same message again: nothing is done, and the answer says so, with what was done
    the first time. Different content under an identifier already used is refused, as CAP
    makes identifiers unique."""
    if existing.digest != content_digest(data):
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
    first = existing.outcome or {}
    repeat = dict(
        first,
        action="not_acted",
        first_action=first.get("action"),
        reason=f"already received as alert {existing.id}, which was {first.get('action')}; "
        "nothing done again",
    )
    return _answer(repeat, existing.infos or [], language, duplicate=True)


def _answer(outcome, infos, language, duplicate):
    """The outcome in the asker's language: headline and info blocks in it first."""
    summaries = _summaries(infos, language)
    headline = summaries[0]["headline"] or summaries[0]["event"] if summaries else None
    return dict(outcome, duplicate=duplicate, headline=headline, infos=summaries)


def _references(parsed):
    """Each (sender, identifier, sent) the message refers to, with its row when known.

    A sender's identifiers are unique, so sender and identifier find the message; the
    instant is only compared, since some services (CMA among them) write the update's own
    sent time there. A difference is noted on the reference."""
    found = []
    for sender, identifier, sent in parsed.references:
        row = db.session.scalar(
            select(Alert).filter_by(sender=sender, identifier=identifier, scope=LIVE_SCOPE)
        )
        found.append(((sender, identifier, sent), row))
    return found


def _act(parsed, row, references, verdict, expired, problems, at, plan_name):
    """Decide and do: returns (action, incidents touched, reason or None)."""
    if parsed.status in NOT_ACTED_STATUSES:
        return "not_acted", [], f"status {parsed.status}: recorded, not acted on"
    if parsed.msg_type in NOT_ACTED_TYPES:
        return "not_acted", [], f"{parsed.msg_type} message: recorded, not acted on"

    # Only the sender of a message may update or cancel it; a reference to another
    # sender's message is kept but acts on nothing.
    known = [found for _triple, found in references if found is not None]
    own = [found for found in known if found.sender == parsed.sender]
    foreign = sorted({found.sender for found in known if found.sender != parsed.sender})
    unknown = [triple for triple, found in references if found is None]
    drill = parsed.status == "Exercise"
    if parsed.msg_type == "Cancel":
        return _cancel(parsed, row, own, foreign, unknown, at)

    notes = _update_notes(parsed, own, foreign, unknown) if parsed.msg_type == "Update" else []
    refusal = _gate(parsed, verdict, expired, problems)
    if refusal is not None:
        action, reason = refusal
        if parsed.msg_type == "Update":
            _note_update_not_acted(parsed, row, _open_incidents_of(own, drill), reason, at)
        return action, [], "; ".join([reason, *notes])

    if parsed.msg_type == "Update":
        open_incidents = _open_incidents_of(own, drill)
        if open_incidents:
            for incident in open_incidents:
                _update(parsed, row, incident, at)
            return "updated", open_incidents, None
        if _open_incidents_of(own, not drill):
            kind, other = ("an exercise", "a real") if drill else ("a real", "an exercise")
            return "not_acted", [], f"{kind} message does not update {other} incident"
        incident = _open(parsed, row, at, plan_name)
        return "opened", [incident], "; ".join(notes) + "; acted on as a new alert"

    return "opened", [_open(parsed, row, at, plan_name)], None


def _update_notes(parsed, own, foreign, unknown):
    """What an Update's references say when they lead to no open incident."""
    notes = []
    if not parsed.references:
        notes.append("an Update without references")
    if unknown:
        notes.append(
            "updates unknown message(s) "
            + ", ".join(f"{sender},{identifier}" for sender, identifier, _ in unknown)
        )
    if foreign:
        notes.append(f"updates messages of another sender ({', '.join(foreign)})")
    if own and not _open_incidents_of(own):
        notes.append("the message(s) it updates opened no incident that is still open")
    return notes


def _gate(parsed, verdict, expired, problems):
    """(action, reason) when the message may not open or update anything, else None."""
    if expired:
        return "not_acted", "expired: recorded, not acted on"
    if problems:
        return "not_acted", "contradicts itself: " + "; ".join(problems)
    if not parsed.infos:
        return "not_acted", "no info block: nothing says what the alert is"
    if verdict.in_region is False:
        return "out_of_region", "its area does not touch the region"
    if verdict.in_region is None:
        if verdict.unresolved:
            schemes = ", ".join(verdict.unresolved)
            return "not_acted", f"area cannot be resolved: geocode scheme {schemes}"
        return "not_acted", "area cannot be resolved: no polygon, circle or geocode"
    return None


def _open_incidents_of(alerts, drill=None):
    """Open incidents opened or updated by these alerts; of one kind when drill is given."""
    ids = {alert.incident_id for alert in alerts if alert.incident_id is not None}
    for alert in alerts:
        ids.update((alert.outcome or {}).get("incident_ids") or [])
    if not ids:
        return []
    query = select(Incident).where(Incident.id.in_(ids), Incident.status != "closed")
    if drill is not None:
        query = query.where(Incident.drill.is_(drill))
    return list(db.session.scalars(query.order_by(Incident.id)))


def _headline(parsed):
    info = parsed.info_for("zh-CN")
    return (info.headline or info.event) if info else parsed.identifier


def _tell_commander(row, incident, what, subject, body, at):
    from app.coordination.services import notify
    from app.organisation.services import commander_on_duty

    notify(
        key=f"alert-{row.id}-{what}-{incident.id}",
        kind="alert",
        subject=subject[:300],
        body=body,
        incident=incident,
        person=commander_on_duty(incident.plan),
        at=at,
    )


def _open(parsed, row, at, plan_name):
    """Open an incident on the plan for a current, in-region alert, and suggest a level."""
    from app.incidents.services import open_incident, record
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
    body = f"{parsed.sender} {parsed.identifier}; suggested level {level or '-'}"
    _tell_commander(row, incident, "opened", f"预警：{headline}", body, at)
    return incident


def _update(parsed, row, incident, at):
    """An update to the alert of an open incident: note it, take the new severity, and
    suggest the level again; the commander decides any change."""
    from app.incidents.services import record
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
    body = f"{parsed.sender} {parsed.identifier}; severity {severity}"
    _tell_commander(row, incident, "updated", f"预警更新：{headline}", body, at)


def _note_update_not_acted(parsed, row, incidents, reason, at):
    """An update of an open incident's alert that cannot be acted on (expired, moved out of
    the region...) still goes on the incident's record and to its commander."""
    from app.incidents.services import record

    for incident in incidents:
        record(incident, "alert_update_not_acted", f"{parsed.identifier}: {reason}", at)
        subject = f"预警更新未处置：{incident.title}"
        _tell_commander(row, incident, "update-not-acted", subject, reason, at)


def _cancel(parsed, row, own, foreign, unknown, at):
    """A cancellation of earlier messages of the same sender. An incident they opened that
    has no response level yet is closed; an activated response is left to the commander,
    who is told."""
    from app.incidents.services import record

    if not own:
        if foreign:
            senders = ", ".join(foreign)
            return "not_acted", [], f"cancels messages of another sender ({senders}): not acted on"
        if unknown:
            names = ", ".join(f"{sender},{identifier}" for sender, identifier, _ in unknown)
            return "not_acted", [], f"cancels unknown message(s) {names}: nothing to cancel"
        return "not_acted", [], "a Cancel without references: nothing to cancel"

    drill = parsed.status == "Exercise"
    incidents = _open_incidents_of(own, drill)
    if not incidents:
        if _open_incidents_of(own, not drill):
            kind = "an exercise" if drill else "a real"
            other = "a real" if drill else "an exercise"
            return "not_acted", [], f"{kind} message does not cancel {other} incident"
        return "cancelled", [], "the cancelled message(s) opened no incident that is open"
    reasons = []
    for incident in incidents:
        record(incident, "alert_cancelled", f"{parsed.sender}: {parsed.identifier}", at)
        if incident.level is None:
            incident.status = "closed"
            incident.closed_at = at
            record(incident, "incident_closed", "the alert that opened it was cancelled", at)
            reason = f"incident {incident.id} had no response level yet and is closed"
        else:
            reason = (
                f"incident {incident.id}: the response at level {incident.level} stays "
                "until the commander ends it"
            )
        reasons.append(reason)
        _tell_commander(row, incident, "cancelled", f"预警解除：{incident.title}", reason, at)
    return "cancelled", incidents, "; ".join(reasons)


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
            outcome = ingest(
                data,
                at=at,
                region=region,
                plan_name=plan_name,
                language=language,
                max_age_hours=current_app.config["BAOGONG_ALERT_MAX_AGE_HOURS"],
            )
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
    from app.alerts.cap import MAX_BYTES, OversizedMessage

    data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise OversizedMessage(f"{name} is larger than {MAX_BYTES} bytes; refused unread")
    return data
