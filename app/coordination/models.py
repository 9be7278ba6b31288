"""Situation reports and notifications."""

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime


class SituationReport(db.Model):
    """A situation report (信息专报) drafted from live data on the plan's schedule."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    number: Mapped[int]
    at = mapped_column(UTCDateTime, nullable=False)
    figures: Mapped[dict] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="issued")


class Notification(db.Model):
    """A message to a person or a supplier; `key` is stable so a repeat is recognised.

    Written to the database first; the in-app inbox reads it from here.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("supplier.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20), default="inapp")
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict | None] = mapped_column(JSON)
    created_at = mapped_column(UTCDateTime, nullable=False)
    read_at = mapped_column(UTCDateTime)


# Coordination tasks -------------------------------------------------------------------

TASK_PRIORITIES = ("urgent", "routine", "low")
TASK_KINDS = ("task", "joint_inspection")
TASK_STATUSES = ("open", "in_progress", "done", "cancelled")
SHARE_STATES = ("assigned", "accepted", "declined", "done", "reassigned")
# A share still owes its department's work: the clock chases it.
SHARE_OPEN_STATES = ("assigned", "accepted")


class CoordinationTask(db.Model):
    """A task the command centre or one department sets for others (协同任务), with a due
    time and a priority. A joint inspection (联合检查) is one with two or more departments,
    naming the supplier or place inspected.

    Each department's part is a `TaskShare`; the task is done once every share that was
    not declined or moved away is done. `created_by_department_id` is null when the command
    centre set it.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    details: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20), default="task")
    status: Mapped[str] = mapped_column(String(20), default="open")
    due_at = mapped_column(UTCDateTime, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_by_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("supplier.id"))
    place: Mapped[str | None] = mapped_column(Text)
    done_at = mapped_column(UTCDateTime)
    cancelled_at = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    shares: Mapped[list["TaskShare"]] = db.relationship(
        back_populates="task", order_by="TaskShare.id"
    )
    updates: Mapped[list["TaskUpdate"]] = db.relationship(order_by="TaskUpdate.id")
    created_by_department = db.relationship("Department")
    supplier = db.relationship("Supplier")


class TaskShare(db.Model):
    """One department's part of a coordination task and its own clock.

    State runs assigned -> accepted -> done, or declined (with a reason), or reassigned
    (moved to another department's new share, `reassigned_to_id`, which keeps the way
    back in `reassigned_from_id`). `overdue_at` is when its due time passed undone,
    `escalated_at` when the plan's chain was first told, `escalation_step` how many steps
    of the chain were told.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("coordination_task.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="assigned")
    due_at = mapped_column(UTCDateTime, nullable=False)
    assigned_at = mapped_column(UTCDateTime, nullable=False)
    accepted_at = mapped_column(UTCDateTime)
    declined_at = mapped_column(UTCDateTime)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    done_at = mapped_column(UTCDateTime)
    done_note: Mapped[str | None] = mapped_column(Text)
    overdue_at = mapped_column(UTCDateTime)
    escalated_at = mapped_column(UTCDateTime)
    escalation_step: Mapped[int] = mapped_column(default=0, server_default="0")
    reassigned_at = mapped_column(UTCDateTime)
    reassign_reason: Mapped[str | None] = mapped_column(Text)
    reassigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("task_share.id"))
    reassigned_from_id: Mapped[int | None] = mapped_column(ForeignKey("task_share.id"))

    task: Mapped[CoordinationTask] = db.relationship(back_populates="shares")
    department = db.relationship("Department")


class TaskUpdate(db.Model):
    """One line of a task's history: who did what when (created, accepted, declined,
    progress with an optional percent, done, reassigned, cancelled, overdue, escalated)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("coordination_task.id"), index=True)
    share_id: Mapped[int | None] = mapped_column(ForeignKey("task_share.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    event: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    percent: Mapped[int | None]
    at = mapped_column(UTCDateTime, nullable=False)

    department = db.relationship("Department")
    user = db.relationship("User")
