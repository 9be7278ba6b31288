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
