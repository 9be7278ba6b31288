"""Receiving a CAP alert: parse it safely, record it, and decide whether it opens an incident."""

import logging

from sqlalchemy import select

from app.alerts.cap import parse_cap
from app.alerts.models import Alert
from app.extensions import db

log = logging.getLogger(__name__)

CPEAS_SCHEME = "CPEAS Geographic Code"
# A 12-digit administrative division code: province 2, city 4, county 6, town 9 digits.
LEVEL_LENGTHS = (2, 4, 6, 9, 12)


def division_prefix(code):
    """The significant prefix of an administrative code (330211000000 -> 330211)."""
    code = code.strip()
    if not code.isdigit() or len(code) not in (6, 9, 12):
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


def _shapes(alert):
    """Every polygon and circle of the alert as shapely geometry in lon/lat (WGS-84)."""
    from shapely.geometry import Point, Polygon

    for info in alert.infos:
        for area in info.areas:
            for polygon in area.polygons:
                yield Polygon([(lon, lat) for lat, lon in polygon])
            for lat, lon, radius_km in area.circles:
                # Degrees of latitude are ~111 km; a circle this size needs no projection.
                yield Point(lon, lat).buffer(max(radius_km, 0.01) / 111.0)


def alert_in_region(alert, region_code, boundary=None):
    """Whether the alert's area touches the region: True, False, or None when no area
    is given in a form the project can resolve.

    CPEAS administrative codes are compared by level; polygons and circles are tested
    against the region's boundary (a shapely geometry) when one is given.
    """
    verdicts = [
        touches_region(value, region_code)
        for name, value in alert.geocodes()
        if name == CPEAS_SCHEME
    ]
    if boundary is not None:
        verdicts.extend(shape.intersects(boundary) for shape in _shapes(alert))
    verdicts = [v for v in verdicts if v is not None]
    if not verdicts:
        return None
    return any(verdicts)


def receive(data, *, region_code, at, drill_run=None):
    """Parse and record a CAP message; returns (Alert row, parsed alert, in_region).

    Re-receiving the same sender and identifier returns the row recorded first.
    """
    parsed = parse_cap(data)
    scope = f"drill-{drill_run.id}" if drill_run is not None else "live"
    existing = db.session.scalar(
        select(Alert).filter_by(sender=parsed.sender, identifier=parsed.identifier, scope=scope)
    )
    in_region = alert_in_region(parsed, region_code)
    if existing is not None:
        return existing, parsed, in_region

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
        action="recorded",
        drill_run_id=drill_run.id if drill_run is not None else None,
        scope=scope,
        received_at=at,
        # TODO: a message in GB18030 is kept with replacement characters; the parsed
        # fields are right, but the raw copy is not byte-exact evidence.
        raw=data.decode("utf-8", errors="replace"),
    )
    db.session.add(row)
    db.session.flush()
    log.info("alert %s: received from %s (%s)", parsed.identifier, parsed.sender, parsed.status)
    return row, parsed, in_region
