"""Statutory duties of departments and their assignment to an incident."""

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.organisation.models import Department, Person
from app.types import UTCDateTime


class Duty(db.Model):
    """A department's statutory duty (法定职责) under a plan, with its legal basis."""

    __table_args__ = (UniqueConstraint("plan_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"))
    code: Mapped[str] = mapped_column(String(100))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    title: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str | None] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    levels: Mapped[str] = mapped_column(String(20))
    confirm_within_minutes: Mapped[int]

    department: Mapped[Department] = relationship()

    def applies_at(self, level):
        return level in self.levels.split(",")


class DutyAssignment(db.Model):
    """A duty assigned to a department for one incident, to be confirmed by a deadline.

    Status runs assigned -> confirmed (or objected) -> closed; `overdue_at` and
    `escalated_at` record when the clock ran out and when the chain was told.
    """

    __table_args__ = (UniqueConstraint("incident_id", "duty_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    duty_id: Mapped[int] = mapped_column(ForeignKey("duty.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    status: Mapped[str] = mapped_column(String(20), default="assigned")
    assigned_at = mapped_column(UTCDateTime, nullable=False)
    deadline_at = mapped_column(UTCDateTime, nullable=False)
    confirmed_at = mapped_column(UTCDateTime)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    objection: Mapped[str | None] = mapped_column(Text)
    reminded_at = mapped_column(UTCDateTime)
    overdue_at = mapped_column(UTCDateTime)
    escalated_at = mapped_column(UTCDateTime)

    duty: Mapped[Duty] = relationship()
    department: Mapped[Department] = relationship()
    confirmed_by: Mapped[Person | None] = relationship()
