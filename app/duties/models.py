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
    # "level": assigned while the response level is one of `levels`; "suspected_poisoning":
    # assigned the moment a suspected food poisoning is reported, before any level.
    trigger: Mapped[str] = mapped_column(String(30), default="level", server_default="level")
    measure: Mapped[str | None] = mapped_column(String(64))
    # The kinds of incident the duty is asked for, comma-separated; every kind when null.
    incident_kinds: Mapped[str | None] = mapped_column(String(100))

    department: Mapped[Department] = relationship()

    def applies_at(self, level, kind=None):
        kinds = self.incident_kinds.split(",") if self.incident_kinds else None
        if kind is not None and kinds is not None and kind not in kinds:
            return False
        return self.trigger == "level" and level in self.levels.split(",")


class DutyAssignment(db.Model):
    """A duty assigned to a department for one incident, to be confirmed by a deadline.

    Status runs assigned -> confirmed or objected -> closed. A level change that no longer
    asks for the duty retires it; one that asks for it again assigns it afresh. An
    objection goes to the commander, who upholds the duty (assigned again, with a new
    deadline) or withdraws it (closed). `overdue_at` and `escalated_at` record when the
    clock ran out and when the chain was first told; `escalation_step` counts the steps
    of the chain told so far.
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
    escalation_step: Mapped[int] = mapped_column(default=0, server_default="0")
    objected_at = mapped_column(UTCDateTime)
    closed_at = mapped_column(UTCDateTime)
    close_note: Mapped[str | None] = mapped_column(Text)

    duty: Mapped[Duty] = relationship()
    department: Mapped[Department] = relationship()
    confirmed_by: Mapped[Person | None] = relationship()


# Statuses in which an assignment still waits for its department.
OPEN_STATUSES = ("assigned", "objected")


class ChecklistItem(db.Model):
    """One line of the plan's checklist for the incident's level and phase; a level or
    phase change keeps the lines both ask for, retires the others and adds the new."""

    __table_args__ = (UniqueConstraint("incident_id", "phase", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    phase: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(4))
    text: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str | None] = mapped_column(Text)
    measure: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at = mapped_column(UTCDateTime, nullable=False)
    done_at = mapped_column(UTCDateTime)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    done_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    retired_at = mapped_column(UTCDateTime)
