"""Situation reports and notifications."""

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

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
