"""Retained samples and rapid tests; a failed test stops the supplier at once."""

import logging
from datetime import timedelta

from app.errors import InvalidInput
from app.extensions import db
from app.techsupport.models import RetainedSample

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
    **more,
):
    """Record a rapid test (or, with `kind`, `purpose` and `lab_request`, any result); a
    result above its limit suspends the supplier and tells the commander and market
    supervision. See `app.techsupport.results.record_result`."""
    from app.techsupport.results import record_result

    return record_result(supplier=supplier, incident=incident, analyte=analyte, method=method,
                         value=value, limit=limit, unit=unit, tested_by=tested_by, at=at,
                         batch=batch, sample=sample, **more)  # fmt: skip
