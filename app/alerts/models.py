"""Alerts received, kept as they came, with what was done about each."""

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime

# What ingesting a message did; "refused" messages are never recorded.
ACTIONS = ("opened", "updated", "cancelled", "out_of_region", "not_acted")


class Alert(db.Model):
    """A CAP message received (预警信息), with what was done about it.

    `source` holds the bytes exactly as received; `raw` the same message as text, decoded
    from the encoding it declared. `outcome` is the answer given when it was ingested, so
    that receiving the same message again can give the same answer.
    """

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
    source: Mapped[bytes | None] = mapped_column(LargeBinary)
    digest: Mapped[str | None] = mapped_column(String(64))
    in_region: Mapped[bool | None]
    expired: Mapped[bool | None]
    reason: Mapped[str | None] = mapped_column(Text)
    # Every info block, as plain data, in document order.
    infos: Mapped[list | None] = mapped_column(JSON)
    # The earlier messages it refers to: sender, identifier, sent, and the row when known.
    refs: Mapped[list | None] = mapped_column(JSON)
    outcome: Mapped[dict | None] = mapped_column(JSON)
