"""Incidents, their response levels over time, and what happened when."""

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.process.models import Plan
from app.types import UTCDateTime

INCIDENT_KINDS = ("supply_emergency", "food_safety", "major_event")


class Incident(db.Model):
    """A public emergency or major event the command responds to (事件).

    A drill incident belongs to a drill run; every record hanging on it is a drill record.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(300))
    drill: Mapped[bool] = mapped_column(default=False)
    drill_run_id: Mapped[int | None] = mapped_column(ForeignKey("drill_run.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    level: Mapped[str | None] = mapped_column(String(4))
    suggested_level: Mapped[str | None] = mapped_column(String(4))
    suggested_rule: Mapped[str | None] = mapped_column(Text)
    evacuees: Mapped[int | None]
    towns: Mapped[int | None]
    severity: Mapped[str | None] = mapped_column(String(20))
    # warning, response, recovery or closure: which of the plan's checklists applies.
    phase: Mapped[str | None] = mapped_column(String(20))
    # The figures the level was suggested from (harmed, deaths, evacuees...), as reported.
    figures: Mapped[dict | None] = mapped_column(JSON)
    # Where a food-safety incident was reported: a demand point, or a place in words.
    demand_point_id: Mapped[int | None] = mapped_column(ForeignKey("demand_point.id"))
    place: Mapped[str | None] = mapped_column(Text)
    # A suspected poisoning at a demand point: the trace of what was delivered there
    # (batches, suppliers, samples, tests) as it stood when the report came in.
    trace: Mapped[dict | None] = mapped_column(JSON)
    # A reported incident's key (the reporter's Idempotency-Key, or one made from the
    # report): the same report sent twice opens one incident.
    report_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    opened_at = mapped_column(UTCDateTime, nullable=False)
    activated_at = mapped_column(UTCDateTime)
    closed_at = mapped_column(UTCDateTime)

    plan: Mapped[Plan] = relationship()
    level_changes: Mapped[list["LevelChange"]] = relationship(
        back_populates="incident", order_by="LevelChange.at"
    )


class LevelChange(db.Model):
    """A response level set, raised, lowered or ended, always with a reason."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    from_level: Mapped[str | None] = mapped_column(String(4))
    to_level: Mapped[str | None] = mapped_column(String(4))
    reason: Mapped[str] = mapped_column(Text)
    by_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    at = mapped_column(UTCDateTime, nullable=False)

    incident: Mapped[Incident] = relationship(back_populates="level_changes")


class TimelineEntry(db.Model):
    """One thing that happened in an incident, on its clock (real or simulated)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    at = mapped_column(UTCDateTime, nullable=False)
    event: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(80), default="", server_default="")
