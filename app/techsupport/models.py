"""Technical support: retained samples, rapid tests and lab results, labs and experts,
inspectors posted at suppliers and their inspections. The evidence that food was safe,
and what stops a supplier when it was not."""

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import UTCDateTime

# What a test was for: routine testing during service, or the re-inspection a suspended
# supplier needs before it may serve again.
TEST_PURPOSES = ("routine", "reinspection")
# Where a result comes from: an on-site rapid test (快检) or a laboratory (实验室检测).
TEST_KINDS = ("rapid", "lab")
LAB_REQUEST_STATUSES = ("requested", "reported", "cancelled")
INSPECTION_PURPOSES = ("routine", "reinspection")
# A checklist answer; "fail" on an item the plan marks serious is a serious finding.
CHECK_RESULTS = ("pass", "fail", "na")


class RetainedSample(db.Model):
    """A sealed, refrigerated sample of one dish of one batch (留样), kept at least 48 h.

    `keep_until` is the end of the countdown; a sample held for an open food-safety
    incident (an open `SampleHold`) is kept past it until every hold is released.
    """

    __table_args__ = (UniqueConstraint("batch_id", "dish"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    dish: Mapped[str] = mapped_column(String(200))
    grams: Mapped[int]
    kept_at: Mapped[str] = mapped_column(String(200))
    retained_by: Mapped[str | None] = mapped_column(String(100))
    retained_at = mapped_column(UTCDateTime, nullable=False)
    keep_until = mapped_column(UTCDateTime, nullable=False)
    discarded_at = mapped_column(UTCDateTime)
    discarded_by: Mapped[str | None] = mapped_column(String(100))

    batch = relationship("Batch")
    holds: Mapped[list["SampleHold"]] = relationship(
        back_populates="sample", order_by="SampleHold.id"
    )


class SampleHold(db.Model):
    """A retained sample kept for a food-safety incident (封存) until released."""

    __table_args__ = (UniqueConstraint("sample_id", "incident_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("retained_sample.id"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    held_at = mapped_column(UTCDateTime, nullable=False)
    released_at = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(100))
    release_reason: Mapped[str | None] = mapped_column(Text)

    sample: Mapped[RetainedSample] = relationship(back_populates="holds")


class Lab(db.Model):
    """A testing laboratory: what it can test, how many samples a day, how fast."""

    __table_args__ = (
        CheckConstraint("capacity_per_day >= 0", name="capacity_not_negative"),
        CheckConstraint("turnaround_hours > 0", name="turnaround_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(200))
    analytes: Mapped[list] = mapped_column(JSON, default=list)
    capacity_per_day: Mapped[int]
    turnaround_hours: Mapped[float]
    phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(300))
    available: Mapped[bool] = mapped_column(default=True)
    fictitious: Mapped[bool] = mapped_column(default=False, server_default=sa_false())


class LabRequest(db.Model):
    """Samples sent to a lab (送检), with the result expected by `expected_by`."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"), index=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("lab.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), index=True)
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("retained_sample.id"))
    analytes: Mapped[list] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(20), default="routine")
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at = mapped_column(UTCDateTime, nullable=False)
    expected_by = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="requested")
    reported_at = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)

    lab: Mapped[Lab] = relationship()
    supplier = relationship("Supplier")
    sample: Mapped[RetainedSample | None] = relationship()


class RapidTest(db.Model):
    """A test result: an on-site rapid test (快检) or a lab's result for a request.

    A fail suspends the supplier; a passed `reinspection` result is part of what
    reinstates it.
    """

    __table_args__ = (Index("ix_rapid_test_supplier_time", "supplier_id", "tested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id"))
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("retained_sample.id"), index=True)
    lab_request_id: Mapped[int | None] = mapped_column(ForeignKey("lab_request.id"))
    kind: Mapped[str] = mapped_column(String(10), default="rapid", server_default="rapid")
    purpose: Mapped[str] = mapped_column(String(20), default="routine", server_default="routine")
    analyte: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(200))
    value: Mapped[float]
    limit: Mapped[float]
    unit: Mapped[str] = mapped_column(String(20))
    passed: Mapped[bool]
    tested_by: Mapped[str] = mapped_column(String(100))
    tested_at = mapped_column(UTCDateTime, nullable=False)
    note: Mapped[str | None] = mapped_column(Text)

    supplier = relationship("Supplier")
    sample: Mapped[RetainedSample | None] = relationship()
    lab_request: Mapped[LabRequest | None] = relationship()


class Expert(db.Model):
    """A member of the expert pool (专家库): food safety, toxicology, epidemiology,
    clinical care, nutrition, testing."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    organisation: Mapped[str | None] = mapped_column(String(200))
    expertise: Mapped[list] = mapped_column(JSON, default=list)
    phone: Mapped[str | None] = mapped_column(String(40))
    # Can be called on at all (not abroad, not ill); on call: answers at any hour now.
    available: Mapped[bool] = mapped_column(default=True)
    on_call: Mapped[bool] = mapped_column(default=False)
    fictitious: Mapped[bool] = mapped_column(default=False, server_default=sa_false())


class ExpertAssignment(db.Model):
    """An expert called to an incident, for a role, until released."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("expert.id"), index=True)
    role: Mapped[str] = mapped_column(String(200))
    assigned_by: Mapped[str | None] = mapped_column(String(100))
    assigned_at = mapped_column(UTCDateTime, nullable=False)
    released_at = mapped_column(UTCDateTime)

    expert: Mapped[Expert] = relationship()


class InspectorPosting(db.Model):
    """An inspector stationed on site at a supplier (驻点监管) during an incident or a
    major event, from `starts_at` until `ends_at` (open while null)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    starts_at = mapped_column(UTCDateTime, nullable=False)
    ends_at = mapped_column(UTCDateTime)
    posted_by: Mapped[str | None] = mapped_column(String(100))

    supplier = relationship("Supplier")
    person = relationship("Person")


class Inspection(db.Model):
    """One inspection of a supplier against the plan's checklist, with its findings.

    `checklist` is a list of {code, text, serious, result, note}; `serious_findings` and
    `minor_findings` count the failed items, and `passed` is true when no serious item
    failed.
    """

    __table_args__ = (Index("ix_inspection_supplier_time", "supplier_id", "inspected_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"))
    posting_id: Mapped[int | None] = mapped_column(ForeignKey("inspector_posting.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    inspector: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(20), default="routine")
    inspected_at = mapped_column(UTCDateTime, nullable=False)
    checklist: Mapped[list] = mapped_column(JSON)
    serious_findings: Mapped[int] = mapped_column(default=0)
    minor_findings: Mapped[int] = mapped_column(default=0)
    passed: Mapped[bool]
    summary: Mapped[str | None] = mapped_column(Text)

    supplier = relationship("Supplier")
    posting: Mapped[InspectorPosting | None] = relationship()
