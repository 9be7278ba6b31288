"""What a supplier can still take: capacity reports, bookings, hazard areas, travel times.

Every supply task books its meals from its supplier for its serving time. A booking is one
conditional UPDATE (`booked + n <= capacity`), so on PostgreSQL and on SQLite alike two
requests that would together over-book a supplier cannot both succeed: the second finds
the row changed and gets a Conflict. Real incidents book from one shared scope, since a
kitchen's stove is the same whichever incident asks; each drill books in its own.
"""

import logging

from shapely.errors import GEOSException
from shapely.geometry import Point, shape
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.supply.models import (
    MEALS,
    CapacityReport,
    HazardArea,
    Supplier,
    SupplierBooking,
    TravelTime,
)
from app.types import local_iso

log = logging.getLogger(__name__)

LIVE_SCOPE = "live"
MAX_MEALS = 1_000_000


def scope_of(incident):
    """The booking scope of an incident: shared by real incidents, one per drill."""
    if incident is not None and incident.drill:
        return f"drill-{incident.id}"
    return LIVE_SCOPE


def capacities(incident, meal, serve_at, suppliers):
    """Each supplier's capacity for one meal at one serving time: its latest report in
    the incident's scope that is valid by then, else its standing figure."""
    reports = db.session.scalars(
        select(CapacityReport)
        .where(
            CapacityReport.scope == scope_of(incident),
            CapacityReport.meal == meal,
            CapacityReport.valid_from <= serve_at,
        )
        .order_by(CapacityReport.valid_from, CapacityReport.id)
    )
    reported = {report.supplier_id: report.meals for report in reports}
    return {s.id: reported.get(s.id, s.capacity_for(meal)) for s in suppliers}


def booked(incident, serve_at):
    """Meals booked per supplier for one serving time, in the incident's scope."""
    rows = db.session.execute(
        select(SupplierBooking.supplier_id, SupplierBooking.booked).where(
            SupplierBooking.scope == scope_of(incident), SupplierBooking.serve_at == serve_at
        )
    )
    return dict(rows.all())


def book(incident, supplier, serve_at, meals, capacity):
    """Book meals from a supplier, or raise Conflict when they would exceed `capacity`."""
    scope = scope_of(incident)
    insert = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    try:
        db.session.execute(
            insert(SupplierBooking)
            .values(scope=scope, supplier_id=supplier.id, serve_at=serve_at, booked=0)
            .on_conflict_do_nothing()
        )
        result = db.session.execute(
            update(SupplierBooking)
            .where(
                SupplierBooking.scope == scope,
                SupplierBooking.supplier_id == supplier.id,
                SupplierBooking.serve_at == serve_at,
                SupplierBooking.booked + meals <= capacity,
            )
            .values(booked=SupplierBooking.booked + meals),
            execution_options={"synchronize_session": False},
        )
    except OperationalError as error:
        if "locked" not in str(error).lower():
            raise
        raise Conflict(
            f"supplier {supplier.code}: changed by a concurrent request; try again"
        ) from None
    if result.rowcount != 1:
        left = max(capacity - booked(incident, serve_at).get(supplier.id, 0), 0)
        raise Conflict(
            f"supplier {supplier.code} can take {left} more meals at {local_iso(serve_at)}, "
            f"not {meals}"
        )


def release(incident, task):
    """Give a cancelled task's meals back to its supplier."""
    db.session.execute(
        update(SupplierBooking)
        .where(
            SupplierBooking.scope == scope_of(incident),
            SupplierBooking.supplier_id == task.supplier_id,
            SupplierBooking.serve_at == task.serve_at,
        )
        .values(booked=SupplierBooking.booked - task.meals),
        execution_options={"synchronize_session": False},
    )


def report_capacity(supplier, incident, *, meal, meals, valid_from, at, note=None):
    """A supplier's new capacity for a meal from an instant on; the plan is solved again
    for every serving time it touches (a job, on the incident's clock)."""
    errors = {}
    if meal not in MEALS:
        errors["meal"] = [f"must be one of {', '.join(MEALS)}"]
    if isinstance(meals, bool) or not isinstance(meals, int) or not 0 <= meals <= MAX_MEALS:
        errors["meals"] = [f"must be a whole number from 0 to {MAX_MEALS}"]
    if errors:
        raise InvalidInput("capacity report refused", errors)

    report = CapacityReport(
        scope=scope_of(incident),
        supplier_id=supplier.id,
        incident_id=incident.id if incident is not None else None,
        meal=meal,
        meals=meals,
        valid_from=valid_from,
        reported_at=at,
        note=note,
    )
    db.session.add(report)
    db.session.flush()
    log.info("supplier %s: %s capacity %d from %s", supplier.code, meal, meals, valid_from)
    _replan_later("replan_capacity", incident, report.id, at)
    return report


def declare_hazard(incident, *, name, geometry, at):
    """Declare an area unsafe: suppliers inside it get no new work, and their open tasks
    move elsewhere (a job, on the incident's clock)."""
    area = hazard_shape(geometry)
    if not name or not str(name).strip():
        raise InvalidInput("hazard area refused", {"name": ["must not be empty"]})

    hazard = HazardArea(
        incident_id=incident.id,
        name=str(name).strip()[:200],
        geometry=area.__geo_interface__,
        declared_at=at,
    )
    db.session.add(hazard)
    db.session.flush()
    from app.incidents.services import record

    record(incident, "hazard_declared", hazard.name, at)
    _replan_later("replan_hazard", incident, hazard.id, at)
    return hazard


def hazard_shape(geometry):
    """A GeoJSON Polygon or MultiPolygon in WGS-84, checked; InvalidInput otherwise."""
    try:
        area = shape(geometry)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, GEOSException):
        raise InvalidInput(
            "hazard area refused", {"geometry": ["must be a GeoJSON Polygon or MultiPolygon"]}
        ) from None
    if area.geom_type not in ("Polygon", "MultiPolygon") or area.is_empty:
        raise InvalidInput(
            "hazard area refused", {"geometry": ["must be a GeoJSON Polygon or MultiPolygon"]}
        )
    minx, miny, maxx, maxy = area.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            "hazard area refused",
            {"geometry": ["coordinates are [longitude, latitude] in WGS-84 degrees"]},
        )
    if not area.is_valid:
        raise InvalidInput("hazard area refused", {"geometry": ["the polygon crosses itself"]})
    return area


def suppliers_in_hazard(incident, suppliers):
    """Ids of the suppliers inside any standing hazard area of the incident, with the
    name of the area."""
    areas = db.session.scalars(
        select(HazardArea).where(
            HazardArea.incident_id == incident.id, HazardArea.lifted_at.is_(None)
        )
    ).all()
    inside = {}
    for area in areas:
        polygon = shape(area.geometry)
        for s in suppliers:
            if s.id not in inside and polygon.covers(Point(s.lon, s.lat)):
                inside[s.id] = area.name
    return inside


def travel_times(suppliers, points):
    """Measured minutes for the pairs among these suppliers and points."""
    supplier_ids = {s.id for s in suppliers}
    point_ids = {p.id for p in points}
    if not supplier_ids or not point_ids:
        return {}
    rows = db.session.scalars(select(TravelTime).where(TravelTime.demand_point_id.in_(point_ids)))
    return {
        (row.supplier_id, row.demand_point_id): row.minutes
        for row in rows
        if row.supplier_id in supplier_ids
    }


def active_suppliers():
    return db.session.scalars(select(Supplier).where(Supplier.status == "active")).all()


def _replan_later(kind, incident, subject_id, at):
    """Solve the plan again in a job: for the incident given, or for every open real
    incident when a live report was made outside one."""
    from app.clock.services import schedule
    from app.incidents.models import Incident

    if incident is not None:
        schedule(kind, incident, subject_id, at)
        return
    for live in db.session.scalars(
        select(Incident).where(Incident.drill.is_(False), Incident.status != "closed")
    ):
        schedule(kind, live, subject_id, at)
