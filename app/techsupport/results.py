"""Test results and lab requests: a rapid test on site (快检) or a lab's result for a
request sent to it (送检). Every result is checked before it is written; a failed one goes
through the food-safety gate (`app.techsupport.gate`)."""

import logging
import math
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, or_, select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.techsupport.batches import FUTURE_LEEWAY
from app.techsupport.models import TEST_KINDS, TEST_PURPOSES, LabRequest, RapidTest
from app.types import isoformat_utc, utcnow

log = logging.getLogger(__name__)

# No rapid test or lab reports a figure this large in any unit; a larger one is a typo.
MAX_VALUE = 1e9


def _check_text(errors, name, value, limit):
    if not isinstance(value, str) or not value.strip():
        errors[name] = ["must not be blank"]
    elif len(value) > limit:
        errors[name] = [f"must be at most {limit} characters"]


def _check_figure(errors, name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors[name] = ["must be a number"]
    elif not math.isfinite(value):
        errors[name] = ["must be a finite number"]
    elif positive and value <= 0:
        errors[name] = ["must be greater than 0"]
    elif value < 0:
        errors[name] = ["must not be negative"]
    elif value > MAX_VALUE:
        errors[name] = [f"must be at most {MAX_VALUE:g}"]


def _check_source(errors, supplier, incident, batch, sample):
    """The batch and sample a result was taken from belong to the supplier (a sample
    through its batch) and to the same incident."""
    if sample is not None:
        if sample.batch.supplier_id != supplier.id:
            errors["sample"] = [f"sample {sample.id} is of another supplier, not {supplier.code}"]
        elif batch is not None and sample.batch_id != batch.id:
            errors["sample"] = [f"sample {sample.id} is not of batch {batch.id}"]
    for name, source in (("batch", batch), ("sample", sample.batch if sample else None)):
        if source is None or name in errors:
            continue
        if source.supplier_id != supplier.id:
            errors[name] = [f"{name} is of another supplier, not {supplier.code}"]
        elif source.supply_task.incident_id != (incident.id if incident else None):
            source_incident = db.session.get(Incident, source.supply_task.incident_id)
            if incident is not None or source_incident.drill:
                errors[name] = [f"{name} belongs to incident {source_incident.id}"]


def check_result(*, supplier, incident, analyte, method, value, limit, unit, tested_by,
                 kind, purpose, batch, sample, lab_request):  # fmt: skip
    """Refuse a result that cannot stand, naming each field (InvalidInput)."""
    errors = {}
    _check_text(errors, "analyte", analyte, 200)
    _check_text(errors, "method", method, 200)
    _check_text(errors, "unit", unit, 20)
    _check_text(errors, "tested_by", tested_by, 100)
    _check_figure(errors, "value", value)
    _check_figure(errors, "limit", limit, positive=True)
    if kind not in TEST_KINDS:
        errors["kind"] = [f"must be one of {', '.join(TEST_KINDS)}"]
    elif (kind == "lab") != (lab_request is not None):
        errors["kind"] = ["a lab result is recorded against its lab request, and only it"]
    if purpose not in TEST_PURPOSES:
        errors["purpose"] = [f"must be one of {', '.join(TEST_PURPOSES)}"]
    _check_source(errors, supplier, incident, batch, sample)
    if errors:
        raise InvalidInput("test result refused", errors)


def record_result(
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
    kind="rapid",
    purpose="routine",
    lab_request=None,
    note=None,
):
    """Record one result; passed means value <= limit. A failed one stops the supplier at
    once and tells the commander and market supervision (see the gate)."""
    from app.techsupport import gate
    from app.techsupport.risk import refresh_live_colours, touches_live

    check_result(supplier=supplier, incident=incident, analyte=analyte, method=method,
                 value=value, limit=limit, unit=unit, tested_by=tested_by, kind=kind,
                 purpose=purpose, batch=batch, sample=sample,
                 lab_request=lab_request)  # fmt: skip
    if batch is None and sample is not None:
        batch = sample.batch
    test = RapidTest(
        incident_id=incident.id if incident is not None else None,
        supplier_id=supplier.id,
        batch_id=batch.id if batch is not None else None,
        sample_id=sample.id if sample is not None else None,
        lab_request_id=lab_request.id if lab_request is not None else None,
        kind=kind,
        purpose=purpose,
        analyte=analyte.strip(),
        method=method.strip(),
        value=float(value),
        limit=float(limit),
        unit=unit.strip(),
        passed=value <= limit,
        tested_by=tested_by.strip(),
        tested_at=at,
        note=note,
    )
    db.session.add(test)
    db.session.flush()

    if not test.passed:
        gate.stop_supplier(test, supplier, incident, at)
    if touches_live(incident):
        refresh_live_colours([supplier], at=max(at, utcnow()))
    return test


def tests_query(*, supplier=None, incident=None, failed=None):
    """Results newest first, narrowed to a supplier, an incident and passed or failed."""
    query = select(RapidTest)
    if supplier is not None:
        query = query.where(RapidTest.supplier_id == supplier.id)
    if incident is not None:
        query = query.where(RapidTest.incident_id == incident.id)
    if failed is not None:
        query = query.where(RapidTest.passed.is_(not failed))
    return query.order_by(RapidTest.tested_at.desc(), RapidTest.id.desc())


# Lab requests


def _lock(model, row_id):
    """The row read afresh and held until the commit (PostgreSQL; SQLite's transactions
    already hold the write lock)."""
    return db.session.scalar(
        select(model)
        .where(model.id == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def local_day(at):
    """The start and end of the local day (in the configured zone) holding `at`."""
    zone = ZoneInfo(current_app.config["BAOGONG_TIMEZONE"])
    day = at.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, start + timedelta(days=1)


def requests_on_day(lab, at, incident=None):
    """Requests made to the lab on the local day of `at`, cancelled ones left out. A drill
    counts real requests and its own; real requests never count a drill's."""
    start, end = local_day(at)
    query = (
        select(func.count(LabRequest.id))
        .outerjoin(Incident, Incident.id == LabRequest.incident_id)
        .where(
            LabRequest.lab_id == lab.id,
            LabRequest.status != "cancelled",
            LabRequest.requested_at >= start,
            LabRequest.requested_at < end,
        )
    )
    real = or_(LabRequest.incident_id.is_(None), Incident.drill.is_(False))
    if incident is not None and incident.drill:
        query = query.where(or_(real, LabRequest.incident_id == incident.id))
    else:
        query = query.where(real)
    return db.session.scalar(query)


def _check_analytes(lab, analytes):
    errors = []
    if not analytes:
        return ["name at least one analyte"]
    seen = set()
    for analyte in analytes:
        if not isinstance(analyte, str) or not analyte.strip():
            errors.append("an analyte must not be blank")
        elif analyte.strip() in seen:
            errors.append(f"{analyte} is named twice")
        elif analyte.strip() not in (lab.analytes or []):
            errors.append(f"lab {lab.code} does not test {analyte}")
        else:
            seen.add(analyte.strip())
    return errors


def request_lab_test(
    *, lab, supplier, incident, analytes, requested_by, at, sample=None, purpose="routine",
    note=None,
):  # fmt: skip
    """Send a sample (or the supplier's food) to a lab for analytes it tests, within its
    capacity of the local day; the result is expected `turnaround_hours` later."""
    errors = {}
    analyte_errors = _check_analytes(lab, analytes)
    if analyte_errors:
        errors["analytes"] = analyte_errors
    _check_text(errors, "requested_by", requested_by, 100)
    if purpose not in TEST_PURPOSES:
        errors["purpose"] = [f"must be one of {', '.join(TEST_PURPOSES)}"]
    if sample is not None:
        _check_source(errors, supplier, incident, None, sample)
    if errors:
        raise InvalidInput("lab request refused", errors)

    lab = _lock(type(lab), lab.id)
    if not lab.available:
        raise Conflict(f"lab {lab.code} ({lab.name}) is not available")
    if sample is not None and sample.discarded_at is not None:
        raise Conflict(f"sample {sample.id} was discarded at {sample.discarded_at.isoformat()}")
    made = requests_on_day(lab, at, incident)
    if made >= lab.capacity_per_day:
        raise Conflict(
            f"lab {lab.code} ({lab.name}) takes {lab.capacity_per_day} requests a day and has "
            f"{made} for {local_day(at)[0].date().isoformat()}"
        )

    request = LabRequest(
        incident_id=incident.id if incident is not None else None,
        lab_id=lab.id,
        supplier_id=supplier.id,
        sample_id=sample.id if sample is not None else None,
        analytes=[a.strip() for a in analytes],
        purpose=purpose,
        requested_by=requested_by.strip(),
        requested_at=at,
        expected_by=at + timedelta(hours=lab.turnaround_hours),
        status="requested",
        note=note,
    )
    db.session.add(request)
    db.session.flush()
    log.info("lab request %s: %s to lab %s, expected %s", request.id, supplier.code, lab.code,
             request.expected_by.isoformat())  # fmt: skip
    return request


def is_late(request, at):
    """A request still waiting for its result after the time it was expected."""
    return request.status == "requested" and at > request.expected_by


def record_lab_result(request, *, results, tested_by, at):
    """The lab's result for every analyte of a request: each becomes a lab result (a
    failed one goes through the gate) and the request is reported."""
    request = _lock(LabRequest, request.id)
    if request.status != "requested":
        raise Conflict(f"lab request {request.id} is {request.status}")
    errors = {}
    if at < request.requested_at:
        errors["at"] = ["is before the request was made"]
    given = [r.get("analyte") for r in results]
    missing = [a for a in request.analytes if a not in given]
    unknown = [a for a in given if a not in request.analytes]
    repeated = sorted({a for a in given if given.count(a) > 1})
    if missing:
        errors["results"] = [f"no result for {', '.join(missing)}"]
    if unknown:
        errors.setdefault("results", []).append(f"not requested: {', '.join(map(str, unknown))}")
    if repeated:
        errors.setdefault("results", []).append(f"given twice: {', '.join(repeated)}")
    if errors:
        raise InvalidInput(f"result of lab request {request.id} refused", errors)

    incident = db.session.get(Incident, request.incident_id) if request.incident_id else None
    common = {"supplier": request.supplier, "incident": incident, "tested_by": tested_by,
              "sample": request.sample, "kind": "lab", "purpose": request.purpose,
              "lab_request": request}  # fmt: skip
    figures = ("analyte", "method", "value", "limit", "unit")
    # Every result is checked before any is written, so a bad one stops the whole report.
    for index, result in enumerate(results):
        try:
            check_result(**common, **{k: result.get(k) for k in figures}, batch=None)
        except InvalidInput as error:
            raise InvalidInput(
                error.args[0], {f"results.{index}.{k}": v for k, v in error.errors.items()}
            ) from None
    tests = [
        record_result(**common, **{k: result[k] for k in figures}, at=at, note=result.get("note"))
        for result in results
    ]
    request.status = "reported"
    request.reported_at = at
    db.session.flush()
    return tests


def result_row(test):
    """A result as the API answers it; instants ISO-8601 UTC."""
    return {
        "id": test.id,
        "supplier": test.supplier.code,
        "incident_id": test.incident_id,
        "batch_id": test.batch_id,
        "sample_id": test.sample_id,
        "lab_request_id": test.lab_request_id,
        "kind": test.kind,
        "purpose": test.purpose,
        "analyte": test.analyte,
        "method": test.method,
        "value": test.value,
        "limit": test.limit,
        "unit": test.unit,
        "passed": test.passed,
        "tested_by": test.tested_by,
        "tested_at": isoformat_utc(test.tested_at),
        "note": test.note,
    }


# How far back a result or an inspection may be written up: a failure dated further back
# would start a suspension long past, and let old re-inspections lift it.
BACKDATE_LIMIT = timedelta(days=7)


def clock_of(incident, given=None, field="tested_at"):
    """The instant of a record: the one given (not ahead of the clock), else the
    incident's clock (a drill's is simulated), else now."""
    from app.clock.services import now

    clock = now(incident) if incident is not None else utcnow()
    if given is None:
        return clock
    if given > clock + FUTURE_LEEWAY:
        raise InvalidInput("time refused", {field: ["is in the future"]})
    if given < clock - BACKDATE_LIMIT:
        raise InvalidInput(
            "time refused", {field: [f"is more than {BACKDATE_LIMIT.days} days ago"]}
        )
    if incident is not None and given < incident.opened_at:
        raise InvalidInput("time refused", {field: ["is before the incident opened"]})
    return given
