"""Suppliers and their capacity, demand points and their needs, allocations and tasks."""

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import UTCDateTime

MEALS = ("breakfast", "lunch", "dinner")
DIETS = ("halal", "vegetarian", "infant", "soft_diet")
SUPPLIER_TYPES = ("central_kitchen", "group_meal", "canteen", "restaurant")
DEMAND_POINT_TYPES = ("shelter", "venue", "hospital", "school")
RATINGS = ("A", "B", "C")
RISK_COLOURS = ("green", "yellow", "orange", "red")

# A supply task moves forward through these; "cancelled" ends it early.
TASK_STATUSES = (
    "created",
    "notified",
    "accepted",
    "cooking",
    "sampled",
    "in_transit",
    "delivered",
    "received",
    "cancelled",
)
OPEN_TASK_STATUSES = ("created", "notified", "accepted", "cooking", "sampled")
DELIVERED_TASK_STATUSES = ("delivered", "received")


class Supplier(db.Model):
    """A catering supplier (保供单位): central kitchen, group-meal firm, canteen, restaurant.

    Master data; what changes during an incident (suspension, reported capacity) lives in
    incident-scoped rows so a drill never touches it.
    """

    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(30))
    street_code: Mapped[str | None] = mapped_column(String(12))
    lat: Mapped[float]
    lon: Mapped[float]
    breakfast_capacity: Mapped[int] = mapped_column(default=0)
    lunch_capacity: Mapped[int] = mapped_column(default=0)
    dinner_capacity: Mapped[int] = mapped_column(default=0)
    rating: Mapped[str] = mapped_column(String(1))
    risk_colour: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="active")
    halal: Mapped[bool] = mapped_column(default=False)
    vegetarian: Mapped[bool] = mapped_column(default=False)
    infant: Mapped[bool] = mapped_column(default=False)
    soft_diet: Mapped[bool] = mapped_column(default=False)
    hot_holding: Mapped[bool] = mapped_column(default=False)
    chilled: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    fictitious: Mapped[bool] = mapped_column(default=False)

    def capacity_for(self, meal):
        return getattr(self, f"{meal}_capacity")

    def can_serve(self, diet):
        return diet == "regular" or getattr(self, diet)


class SupplierSuspension(db.Model):
    """A supplier stopped from serving, e.g. after a failed rapid test.

    A drill suspension belongs to its incident and never changes the supplier row.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), index=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"), index=True)
    drill: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(Text)
    rapid_test_id: Mapped[int | None] = mapped_column(ForeignKey("rapid_test.id"))
    started_at = mapped_column(UTCDateTime, nullable=False)
    lifted_at = mapped_column(UTCDateTime)
    # Reinstatement: who lifted it, why, and the passed re-inspection (and re-test, when a
    # test caused the suspension) it rests on.
    lifted_by: Mapped[str | None] = mapped_column(String(100))
    lift_reason: Mapped[str | None] = mapped_column(Text)
    reinspection_id: Mapped[int | None] = mapped_column(ForeignKey("inspection.id"))
    retest_id: Mapped[int | None] = mapped_column(ForeignKey("rapid_test.id"))

    supplier: Mapped[Supplier] = relationship()


class CapacityReport(db.Model):
    """Meals a supplier says it can cook for one meal from an instant on (产能上报),
    replacing its standing figure; a drill's reports belong to the drill's incident."""

    __table_args__ = (
        CheckConstraint("meals >= 0", name="meals_not_negative"),
        Index("ix_capacity_report_lookup", "scope", "supplier_id", "meal", "valid_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    meal: Mapped[str] = mapped_column(String(10))
    meals: Mapped[int]
    valid_from = mapped_column(UTCDateTime, nullable=False)
    reported_at = mapped_column(UTCDateTime, nullable=False)
    note: Mapped[str | None] = mapped_column(Text)

    supplier: Mapped[Supplier] = relationship()


class SupplierBooking(db.Model):
    """Meals booked from a supplier for one serving time, in one scope (real incidents
    share "live"; each drill has its own). Bookings change only by a conditional update,
    so two requests can never together book more than the supplier can cook."""

    __table_args__ = (
        UniqueConstraint("scope", "supplier_id", "serve_at"),
        CheckConstraint("booked >= 0", name="booked_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"))
    serve_at = mapped_column(UTCDateTime, nullable=False)
    booked: Mapped[int] = mapped_column(default=0)


class TravelTime(db.Model):
    """Measured minutes from a supplier to a demand point (from a routing engine or a
    survey), used by the allocation in place of the great-circle estimate."""

    __table_args__ = (
        UniqueConstraint("supplier_id", "demand_point_id"),
        CheckConstraint("minutes >= 0", name="minutes_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"))
    demand_point_id: Mapped[int] = mapped_column(ForeignKey("demand_point.id"))
    minutes: Mapped[float]
    source: Mapped[str | None] = mapped_column(String(200))


class HazardArea(db.Model):
    """An area declared unsafe during an incident (flooded, cordoned): no supplier inside
    it is given work while it stands. `geometry` is GeoJSON in WGS-84."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    geometry: Mapped[dict] = mapped_column(JSON)
    declared_at = mapped_column(UTCDateTime, nullable=False)
    lifted_at = mapped_column(UTCDateTime)


class DemandPoint(db.Model):
    """A place that needs meals: a shelter, a venue, a hospital, a school (需求点)."""

    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    street_code: Mapped[str | None] = mapped_column(String(12))
    lat: Mapped[float]
    lon: Mapped[float]
    capacity: Mapped[int] = mapped_column(default=0)
    fictitious: Mapped[bool] = mapped_column(default=False)


class PointOpening(db.Model):
    """A demand point opened for an incident, with its headcount and dietary needs.

    The latest row for a point is its current state; a headcount of zero closes it.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    demand_point_id: Mapped[int] = mapped_column(ForeignKey("demand_point.id"))
    at = mapped_column(UTCDateTime, nullable=False)
    headcount: Mapped[int]
    halal: Mapped[int] = mapped_column(default=0)
    vegetarian: Mapped[int] = mapped_column(default=0)
    infant: Mapped[int] = mapped_column(default=0)
    soft_diet: Mapped[int] = mapped_column(default=0)

    demand_point: Mapped[DemandPoint] = relationship()


class MealDemand(db.Model):
    """Meals a demand point needs for one meal of one day, split by diet."""

    __table_args__ = (UniqueConstraint("incident_id", "demand_point_id", "serve_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    demand_point_id: Mapped[int] = mapped_column(ForeignKey("demand_point.id"))
    meal: Mapped[str] = mapped_column(String(10))
    serve_at = mapped_column(UTCDateTime, nullable=False)
    meals: Mapped[int]
    by_diet: Mapped[dict] = mapped_column(JSON)

    demand_point: Mapped[DemandPoint] = relationship()


class AllocationRun(db.Model):
    """One solve of the allocation for a meal, with what could not be met and why."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    meal: Mapped[str] = mapped_column(String(10))
    serve_at = mapped_column(UTCDateTime, nullable=False)
    trigger: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(40))
    cost: Mapped[float]
    demand_meals: Mapped[int]
    allocated_meals: Mapped[int]
    shortfall: Mapped[list] = mapped_column(JSON)
    # Tasks this solve took away from their supplier, each with why and what replaced it.
    moves: Mapped[list | None] = mapped_column(JSON)
    solved_at = mapped_column(UTCDateTime, nullable=False)


class SupplyTask(db.Model):
    """Meals one supplier cooks and delivers to one demand point for one meal (保供任务).

    `key` is stable for the life of the task; the supplier uses it to recognise a repeat.
    """

    __table_args__ = (
        CheckConstraint("meals > 0", name="meals_positive"),
        Index("ix_supply_task_supplier_status", "supplier_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    allocation_run_id: Mapped[int] = mapped_column(ForeignKey("allocation_run.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"))
    demand_point_id: Mapped[int] = mapped_column(ForeignKey("demand_point.id"))
    meal: Mapped[str] = mapped_column(String(10))
    serve_at = mapped_column(UTCDateTime, nullable=False)
    meals: Mapped[int]
    by_diet: Mapped[dict] = mapped_column(JSON)
    travel_minutes: Mapped[float]
    status: Mapped[str] = mapped_column(String(20), default="created")
    created_at = mapped_column(UTCDateTime, nullable=False)
    notified_at = mapped_column(UTCDateTime)
    updated_at = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("supply_task.id"))

    supplier = relationship("Supplier")
    demand_point = relationship("DemandPoint")


class DispatchIntent(db.Model):
    """The outbox row written with a supply task: the promise to put it on the queue.

    pending -> enqueued (the relay put the job on RQ) -> done (the worker notified the
    supplier). The reconciler re-enqueues rows left enqueued whose job went missing.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    supply_task_id: Mapped[int] = mapped_column(ForeignKey("supply_task.id"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    created_at = mapped_column(UTCDateTime, nullable=False)
    enqueued_at = mapped_column(UTCDateTime)
    done_at = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)

    supply_task: Mapped[SupplyTask] = relationship()


class Batch(db.Model):
    """One cooked batch of a supply task, from the kitchen to the demand point (批次)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    supply_task_id: Mapped[int] = mapped_column(ForeignKey("supply_task.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"))
    demand_point_id: Mapped[int] = mapped_column(ForeignKey("demand_point.id"))
    meal: Mapped[str] = mapped_column(String(10))
    meals: Mapped[int]
    dishes: Mapped[list] = mapped_column(JSON)
    cooked_at = mapped_column(UTCDateTime)
    left_at = mapped_column(UTCDateTime)
    delivered_at = mapped_column(UTCDateTime)
    received_at = mapped_column(UTCDateTime)
    dispatch_temp_c: Mapped[float | None]
    arrival_temp_c: Mapped[float | None]
    status: Mapped[str] = mapped_column(String(20), default="cooking")
    flag: Mapped[str | None] = mapped_column(Text)

    supply_task: Mapped[SupplyTask] = relationship()
