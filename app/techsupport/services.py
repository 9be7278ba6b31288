"""Rapid tests; a failed test stops the supplier at once. Retained samples are in `samples`."""

import logging

from app.coordination.services import notify
from app.extensions import db
from app.incidents.services import record
from app.organisation.services import commander_of, department, liaison_of
from app.techsupport.models import RapidTest

# Kept importable from here; samples have a module of their own.
from app.techsupport.samples import retain_samples as retain_samples

log = logging.getLogger(__name__)


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
