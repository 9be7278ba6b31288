"""The food-safety gate: a failed result stops the supplier at once (its open tasks move
elsewhere through the queue), and only a passed re-inspection, with a passed re-test of
every analyte that failed, lets it serve again."""

import logging

from flask import current_app
from sqlalchemy import or_, select

from app.coordination.services import notify
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.incidents.services import live_incident_ids, record
from app.organisation.services import commander_of, commander_on_duty, department, liaison_of
from app.process.services import latest_plan
from app.techsupport.models import Inspection, RapidTest
from app.types import local_iso, utcnow

log = logging.getLogger(__name__)


def _recipients(incident, at):
    """The commander (of the incident, or on duty under the configured plan) and the
    liaison of market supervision."""
    if incident is not None:
        commander = commander_of(incident, at)
    else:
        plan = latest_plan(current_app.config["BAOGONG_PLAN"], required=False)
        commander = commander_on_duty(plan, at) if plan is not None else None
    market = department("market_supervision")
    people = (commander, liaison_of(market.id, at) if market else None)
    return [person for person in people if person is not None]


def _tell(key, kind, subject, body, incident, at):
    for person in _recipients(incident, at):
        notify(key=f"{key}-{person.id}", kind=kind, subject=subject, body=body,
               incident=incident, person=person, at=at)  # fmt: skip


def stop_supplier(test, supplier, incident, at):
    """A failed result: record it on the timeline, suspend the supplier (once: a supplier
    already stopped stays under its first suspension), tell the command."""
    from app.supply.services import suspend_supplier

    word = "rapid test" if test.kind == "rapid" else "lab test"
    reason = f"{word} failed: {test.analyte} {test.value:g}{test.unit} > {test.limit:g}{test.unit}"
    if incident is not None:
        record(incident, f"{test.kind}_test_failed", f"{supplier.name}: {reason}", at)
    suspension = suspend_supplier(supplier, incident, reason=reason, at=at, rapid_test=test)
    again = suspension.rapid_test_id != test.id

    prefix = "[演练] " if incident is not None and incident.drill else ""
    label = "快检" if test.kind == "rapid" else "实验室检测"
    state = "已在暂停中" if again else "已暂停供应"
    _tell(f"{test.kind}-test-failed-{test.id}", f"{test.kind}_test_failed",
          f"{prefix}{label}不合格，{state}：{supplier.name}", reason, incident, at)  # fmt: skip
    log.warning("supplier %s: %s%s", supplier.code, reason, " (already suspended)" if again else "")
    return suspension


def _scoped(query, model, suspension):
    """Records that may lift this suspension: real ones, and a drill's own for a drill's."""
    query = query.outerjoin(Incident, Incident.id == model.incident_id)
    real = or_(model.incident_id.is_(None), Incident.drill.is_(False))
    if suspension.drill:
        return query.where(or_(real, model.incident_id == suspension.incident_id))
    return query.where(real)


def passed_reinspection(suspension, at):
    """The latest passed re-inspection of the supplier since the suspension began."""
    query = select(Inspection).where(
        Inspection.supplier_id == suspension.supplier_id,
        Inspection.purpose == "reinspection",
        Inspection.passed.is_(True),
        Inspection.inspected_at >= suspension.started_at,
        Inspection.inspected_at <= at,
    )
    query = _scoped(query, Inspection, suspension)
    return db.session.scalar(query.order_by(Inspection.inspected_at.desc()).limit(1))


def retests_needed(suspension, at):
    """For each analyte that failed (the cause, and any failure since the suspension
    began): the latest failure, and the passed re-test after it, or None."""
    # TODO: analytes match by their exact text, so a re-test written "Nitrite" does not
    # clear a "nitrite" failure and Chinese and English names are not linked; the
    # commander must ask for the re-test under the failure's own name.
    failures = select(RapidTest).where(
        RapidTest.supplier_id == suspension.supplier_id,
        RapidTest.passed.is_(False),
        RapidTest.tested_at >= suspension.started_at,
        RapidTest.tested_at <= at,
    )
    last_failure = {}
    cause = _cause(suspension)
    if cause is not None:
        last_failure[cause.analyte] = cause
    for test in db.session.scalars(
        _scoped(failures, RapidTest, suspension).order_by(RapidTest.tested_at, RapidTest.id)
    ):
        last_failure[test.analyte] = test

    needed = {}
    for analyte, failure in last_failure.items():
        retest = db.session.scalar(
            _scoped(select(RapidTest), RapidTest, suspension)
            .where(
                RapidTest.supplier_id == suspension.supplier_id,
                RapidTest.analyte == analyte,
                RapidTest.purpose == "reinspection",
                RapidTest.passed.is_(True),
                RapidTest.tested_at >= max(failure.tested_at, suspension.started_at),
                RapidTest.tested_at <= at,
                RapidTest.id > failure.id,
            )
            .order_by(RapidTest.tested_at.desc(), RapidTest.id.desc())
            .limit(1)
        )
        needed[analyte] = (failure, retest)
    return needed


def _cause(suspension):
    if suspension.rapid_test_id is None:
        return None
    return db.session.get(RapidTest, suspension.rapid_test_id)


def reinstate_supplier(suspension, *, by, reason, at):
    """Lift a suspension on a passed re-inspection since it began and, when results
    failed, a passed re-test of each failed analyte after its failure; refused (Conflict)
    naming what is missing. A real supplier is active again; a drill's row is left alone."""
    from app.supply.services import lock_supplier, open_suspension
    from app.techsupport.risk import refresh_live_colours

    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reinstatement refused", {"reason": ["must not be blank"]})
    lock_supplier(suspension.supplier)
    db.session.refresh(suspension)
    if suspension.lifted_at is not None:
        raise Conflict(
            f"suspension {suspension.id} was lifted at {local_iso(suspension.lifted_at)} "
            f"by {suspension.lifted_by}"
        )
    if at < suspension.started_at:
        raise InvalidInput("reinstatement refused", {"at": ["is before the suspension began"]})

    since = local_iso(suspension.started_at)
    missing = []
    inspection = passed_reinspection(suspension, at)
    if inspection is None:
        missing.append(f"a passed re-inspection (purpose reinspection) since {since}")
    retests = retests_needed(suspension, at)
    for analyte, (failure, retest) in retests.items():
        if retest is None:
            missing.append(
                f"a passed re-test (purpose reinspection) of {analyte} after its failure at "
                f"{local_iso(failure.tested_at)}"
            )
    supplier = suspension.supplier
    if missing:
        raise Conflict(f"{supplier.code} cannot be reinstated: it needs {'; '.join(missing)}")

    cause = _cause(suspension)
    first = retests.get(cause.analyte) if cause is not None else next(iter(retests.values()), None)
    suspension.lifted_at = at
    suspension.lifted_by = by
    suspension.lift_reason = reason.strip()
    suspension.reinspection_id = inspection.id
    suspension.retest_id = first[1].id if first is not None else None
    db.session.flush()

    incident = db.session.get(Incident, suspension.incident_id) if suspension.incident_id else None
    if not suspension.drill:
        if open_suspension(supplier, None) is None:
            supplier.status = "active"
        refresh_live_colours([supplier], at=max(at, utcnow()))
    detail = f"{supplier.name}: {reason.strip()} ({by})"
    for found in _timelines(suspension, incident):
        record(found, "supplier_reinstated", detail, at)
    prefix = "[演练] " if suspension.drill else ""
    _tell(f"supplier-reinstated-{suspension.id}", "supplier_reinstated",
          f"{prefix}恢复供应：{supplier.name}", detail, incident, at)  # fmt: skip
    log.info("supplier %s: reinstated (suspension %s) by %s", supplier.code, suspension.id, by)
    return suspension


def _timelines(suspension, incident):
    """Where the reinstatement is written: the suspension's incident and, for a real one,
    every open real incident, as the suspension was."""
    found = [incident] if incident is not None else []
    if not suspension.drill:
        for incident_id in live_incident_ids():
            if incident is None or incident_id != incident.id:
                found.append(db.session.get(Incident, incident_id))
    return found
