"""Alerts received, kept as they came."""

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime


class Alert(db.Model):
    """A CAP message received (预警信息), with what was done about it."""

    # A drill run receives its scenario's alert afresh, so each run has its own scope.
    __table_args__ = (UniqueConstraint("sender", "identifier", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(200))
    sender: Mapped[str] = mapped_column(String(200))
    sent = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(20))
    msg_type: Mapped[str] = mapped_column(String(20))
    languages: Mapped[list] = mapped_column(JSON)
    headline: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str | None] = mapped_column(String(20))
    geocodes: Mapped[list] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(20))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    drill_run_id: Mapped[int | None] = mapped_column(ForeignKey("drill_run.id"))
    scope: Mapped[str] = mapped_column(String(30), default="live")
    received_at = mapped_column(UTCDateTime, nullable=False)
    raw: Mapped[str] = mapped_column(Text)
