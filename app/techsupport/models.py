"""Retained samples and rapid tests: the evidence that food was safe."""

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import UTCDateTime


class RetainedSample(db.Model):
    """A sealed, refrigerated sample of one dish of one batch (留样), kept at least 48 h."""

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    dish: Mapped[str] = mapped_column(String(200))
    grams: Mapped[int]
    kept_at: Mapped[str] = mapped_column(String(200))
    retained_at = mapped_column(UTCDateTime, nullable=False)
    keep_until = mapped_column(UTCDateTime, nullable=False)
    discarded_at = mapped_column(UTCDateTime)

    batch = relationship("Batch")


class RapidTest(db.Model):
    """An on-site rapid test (快检) of a supplier's food; a fail suspends the supplier."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id"))
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("retained_sample.id"))
    analyte: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(200))
    value: Mapped[float]
    limit: Mapped[float]
    unit: Mapped[str] = mapped_column(String(20))
    passed: Mapped[bool]
    tested_by: Mapped[str] = mapped_column(String(100))
    tested_at = mapped_column(UTCDateTime, nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
