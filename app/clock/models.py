"""Deadlines and timed actions, as rows so they survive restarts and fire once."""

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime


class ScheduledAction(db.Model):
    """Something to do at an instant: remind, escalate, issue a situation report.

    The tick puts due rows on the queue with the row's id as the job id; the job marks the
    row done, so a second tick or a second run of the job does nothing.
    """

    __table_args__ = (UniqueConstraint("kind", "incident_id", "subject_id", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    subject_id: Mapped[int] = mapped_column()
    due_at = mapped_column(UTCDateTime, nullable=False, index=True)
    enqueued_at = mapped_column(UTCDateTime)
    done_at = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)
