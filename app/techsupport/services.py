"""Rapid tests; a failed test stops the supplier at once. Retained samples are in `samples`."""

import logging

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
    **more,
):
    """Record a rapid test (or, with `kind`, `purpose` and `lab_request`, any result); a
    result above its limit suspends the supplier and tells the commander and market
    supervision. See `app.techsupport.results.record_result`."""
    from app.techsupport.results import record_result

    return record_result(supplier=supplier, incident=incident, analyte=analyte, method=method,
                         value=value, limit=limit, unit=unit, tested_by=tested_by, at=at,
                         batch=batch, sample=sample, **more)  # fmt: skip
