"""Retained samples and rapid tests; a failed test stops the supplier at once."""

import logging
from datetime import timedelta

from app.coordination.services import notify
from app.errors import InvalidInput
from app.extensions import db
from app.incidents.services import record
from app.organisation.services import commander_of, department, liaison_of
from app.techsupport.models import RapidTest, RetainedSample

log = logging.getLogger(__name__)


def retain_samples(batch, *, at, kept_at, grams, min_grams=125, keep_hours=48):
    """One sealed sample per dish of the batch, kept at least `keep_hours`."""
    if grams < min_grams:
        raise InvalidInput("sample too small", {"grams": [f"at least {min_grams} g per dish"]})
    samples = [
        RetainedSample(
            batch_id=batch.id,
            dish=dish,
            grams=grams,
            kept_at=kept_at,
            retained_at=at,
            keep_until=at + timedelta(hours=keep_hours),
        )
        for dish in batch.dishes
    ]
    db.session.add_all(samples)
    batch.supply_task.status = "sampled"
    batch.supply_task.updated_at = at
    db.session.flush()
    return samples


def record_rapid_test(
    *,
    supplier,
    incident,
    analyte,
    method,
    value,
    limit,
    unit,
    tested_by,
    at,
    batch=None,
    sample=None,
):
    """Record a rapid test; a result above its limit suspends the supplier and tells the
    commander and market supervision."""
    from app.supply.services import suspend_supplier

    test = RapidTest(
        incident_id=incident.id if incident is not None else None,
        supplier_id=supplier.id,
        batch_id=batch.id if batch is not None else None,
        sample_id=sample.id if sample is not None else None,
        analyte=analyte,
        method=method,
        value=value,
        limit=limit,
        unit=unit,
        passed=value <= limit,
        tested_by=tested_by,
        tested_at=at,
    )
    db.session.add(test)
    db.session.flush()
    if test.passed:
        return test

    reason = f"rapid test failed: {analyte} {value}{unit} > {limit}{unit}"
    record(incident, "rapid_test_failed", f"{supplier.name}: {reason}", at)
    suspend_supplier(supplier, incident, reason=reason, at=at, rapid_test=test)
    market = department("market_supervision")
    for person in (commander_of(incident), liaison_of(market.id) if market else None):
        if person is None:
            continue
        notify(
            key=f"rapid-test-failed-{test.id}-{person.id}",
            kind="rapid_test_failed",
            subject=f"快检不合格，已暂停供应：{supplier.name}",
            body=reason,
            incident=incident,
            person=person,
            at=at,
        )
    log.warning("supplier %s: %s", supplier.code, reason)
    return test
