"""Situation reports and notifications."""

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import UTCDateTime

# draft: being written; approved: a version approved, waiting to be sent; sent: issued,
# final; superseded: a newer draft of the same number took its place before it was sent.
SITREP_STATUSES = ("draft", "approved", "sent", "superseded")


class SituationReport(db.Model):
    """A situation report (信息专报): drafted from live data on the plan's schedule, edited,
    approved and sent by the command.

    Its text lives in immutable versions; `figures` is the snapshot taken at drafting, so
    the next report can say what changed. Numbers count issues: a draft superseded before
    it was sent leaves its number to the draft that replaced it.
    """

    __table_args__ = (
        Index(
            "uq_situation_report_live_number",
            "incident_id",
            "number",
            unique=True,
            sqlite_where=text("status != 'superseded'"),
            postgresql_where=text("status != 'superseded'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="draft")
    period_start = mapped_column(UTCDateTime, nullable=False)
    period_end = mapped_column(UTCDateTime, nullable=False)
    drafted_at = mapped_column(UTCDateTime, nullable=False)
    figures: Mapped[dict] = mapped_column(JSON)
    # The sent report whose figures this one is compared with, if any.
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("situation_report.id"))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("situation_report.id"))
    # The number of the latest version; a save names it as its base.
    current_version: Mapped[int] = mapped_column(default=1)
    approved_version: Mapped[int | None]
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    approved_by_name: Mapped[str | None] = mapped_column(String(100))
    approved_at = mapped_column(UTCDateTime)
    sent_version: Mapped[int | None]
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    sent_by_name: Mapped[str | None] = mapped_column(String(100))
    sent_at = mapped_column(UTCDateTime)

    versions: Mapped[list["SitrepVersion"]] = relationship(
        back_populates="report", order_by="SitrepVersion.number"
    )


class SitrepVersion(db.Model):
    """One saved text of a situation report, by section key; never changed once written."""

    __table_args__ = (UniqueConstraint("report_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("situation_report.id"), index=True)
    number: Mapped[int]
    sections: Mapped[dict] = mapped_column(JSON)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    author_name: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, nullable=False)

    report: Mapped[SituationReport] = relationship(back_populates="versions")


CHANNELS = ("inapp", "email", "dingtalk", "sms")
# pending: waiting for the relay (or for `next_attempt_at` after a failure); enqueued: on
# the queue; sending: a worker has it; then sent, failed (attempts used up or refused for
# good) or skipped (no address, or the channel is not configured, `skip_reason` says which).
DELIVERY_STATUSES = ("pending", "enqueued", "sending", "sent", "failed", "skipped")
UNFINISHED_DELIVERY = ("pending", "enqueued", "sending")


class Notification(db.Model):
    """A message (通知) to a person or a supplier; `key` is stable so a repeat is recognised.

    Written to the database first; the in-app inbox reads it from here and each other
    channel has a Delivery row a worker works through. When the person it was meant for
    is off duty, it goes to whoever covers them and `skipped_person_id` names the first.
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
    skipped_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    cover_note: Mapped[str | None] = mapped_column(Text)

    deliveries: Mapped[list["Delivery"]] = relationship(
        back_populates="notification", order_by="Delivery.id"
    )


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


class Delivery(db.Model):
    """One notification on one channel: where it goes, and how the tries went.

    Attempts and the next attempt's instant live here, not in Redis, so a restart of
    either loses nothing. Bookkeeping instants are on the wall clock.
    """

    __table_args__ = (UniqueConstraint("notification_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id"))
    channel: Mapped[str] = mapped_column(String(20))
    # The email address or phone number, or the group robot's name; never a secret.
    address: Mapped[str | None] = mapped_column(String(200))
    robot_id: Mapped[int | None] = mapped_column(ForeignKey("group_robot.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at = mapped_column(UTCDateTime)
    enqueued_at = mapped_column(UTCDateTime)
    job_id: Mapped[str | None] = mapped_column(String(80))
    last_error: Mapped[str | None] = mapped_column(Text)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, nullable=False)
    sent_at = mapped_column(UTCDateTime)

    notification: Mapped[Notification] = relationship(back_populates="deliveries")


class ChannelPreference(db.Model):
    """The channels a person wants to be reached on; the in-app inbox is always one.

    A person with no row is reached on every channel they have an address for.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), unique=True)
    channels: Mapped[list] = mapped_column(JSON)
    updated_at = mapped_column(UTCDateTime, nullable=False)


class GroupRobot(db.Model):
    """A DingTalk group robot (钉钉群机器人) of a department, or of the command post when
    `department_id` is empty; messages are signed with its secret."""

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    webhook_url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(Text)
    updated_at = mapped_column(UTCDateTime, nullable=False)
