"""Inspectors posted on site at suppliers (驻点监管) and inspections against the plan's
checklist (监督检查).

Who records an inspection: a Person of role inspector, or a name when the inspection was
done by someone without one (written up by the commander). An inspector posted at a
supplier is tied to that post while it lasts: they inspect that supplier, and the
inspection is linked to the posting; an inspector posted nowhere at the instant may
inspect any supplier (routine rounds). The request boundary decides which users may
record at all (inspectors and the commander).
"""

import logging

from flask import current_app
from sqlalchemy import select

from app.coordination.services import notify
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.services import record
from app.organisation.models import Person
from app.organisation.services import commander_of, commander_on_duty, department, liaison_of
from app.techsupport.models import (
    CHECK_RESULTS,
    INSPECTION_PURPOSES,
    Inspection,
    InspectorPosting,
)
from app.techsupport.risk import refresh_live_colours, touches_live
from app.types import utcnow

log = logging.getLogger(__name__)


# Postings ---------------------------------------------------------------------------


def _locked_person(person_id):
    """The person, held until the transaction ends, so two postings of one inspector
    cannot both pass the checks."""
    return db.session.scalar(
        select(Person)
        .where(Person.id == person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _in_scope(query, incident):
    """Postings of the same world as `incident`: the incidents of its drill run for a
    drill, real incidents otherwise. A drill's postings never hold a person's real work,
    nor another drill's."""
    from app.incidents.models import Incident

    query = query.join(Incident, InspectorPosting.incident_id == Incident.id)
    if incident is None or not incident.drill:
        return query.where(Incident.drill.is_(False))
    if incident.drill_run_id is None:
        return query.where(Incident.id == incident.id)
    return query.where(Incident.drill_run_id == incident.drill_run_id)


def posting_of(person, at, incident=None):
    """The person's posting open at `at` in the world of `incident` (real incidents when
    None), or None."""
    query = select(InspectorPosting).where(
        InspectorPosting.person_id == person.id,
        InspectorPosting.starts_at <= at,
        InspectorPosting.ends_at.is_(None) | (InspectorPosting.ends_at > at),
    )
    return db.session.scalar(_in_scope(query, incident).order_by(InspectorPosting.id).limit(1))


def open_posting_at(person, supplier):
    """The person's posting at this supplier that has not ended, or None."""
    return db.session.scalar(
        select(InspectorPosting)
        .where(
            InspectorPosting.person_id == person.id,
            InspectorPosting.supplier_id == supplier.id,
            InspectorPosting.ends_at.is_(None),
        )
        .order_by(InspectorPosting.id.desc())
        .limit(1)
    )


def _posting_not_ended(person, at, incident):
    """A posting of the person, in the world of `incident`, that has not ended by `at`:
    one starting later (on a drill's clock) still holds them then, since a new posting
    runs open-ended."""
    query = select(InspectorPosting).where(
        InspectorPosting.person_id == person.id,
        InspectorPosting.ends_at.is_(None) | (InspectorPosting.ends_at > at),
    )
    return db.session.scalar(_in_scope(query, incident).order_by(InspectorPosting.id).limit(1))


def end_postings(incident, at):
    """Every posting of the incident still open ends with it; returns how many."""
    open_ = db.session.scalars(
        select(InspectorPosting).filter_by(incident_id=incident.id, ends_at=None)
    ).all()
    for posting in open_:
        posting.ends_at = max(at, posting.starts_at)
    db.session.flush()
    return len(open_)


def post_inspector(incident, supplier, person, at, by):
    """Station an inspector at a supplier for the incident from `at` until ended.

    Refused (422) when the person is not an inspector or the supplier unknown, and (409)
    when the incident is closed or the inspector is posted somewhere at that time.
    """
    errors = {}
    if person is None or person.role != "inspector":
        name = person.code if person is not None else "nobody"
        errors["person"] = [f"{name} is not an inspector"]
    if supplier is None:
        errors["supplier"] = ["no such supplier"]
    if errors:
        raise InvalidInput("posting refused", errors)
    if incident.status == "closed":
        raise Conflict(f"incident {incident.id} is closed")

    person = _locked_person(person.id)
    held = _posting_not_ended(person, at, incident)
    if held is not None:
        where = held.supplier.code
        raise Conflict(
            f"{person.code} is posted at {where} (posting {held.id}, incident "
            f"{held.incident_id}) at that time; end that posting first"
        )

    posting = InspectorPosting(
        incident_id=incident.id,
        supplier_id=supplier.id,
        person_id=person.id,
        starts_at=at,
        posted_by=by,
    )
    db.session.add(posting)
    db.session.flush()
    record(incident, "inspector_posted", f"{person.name} -> {supplier.name} ({supplier.code})", at)
    log.info("incident %s: %s posted at %s", incident.id, person.code, supplier.code)
    return posting


def end_posting(posting, at):
    """The inspector leaves the post; 409 when it has ended already."""
    if posting.ends_at is not None:
        raise Conflict(f"posting {posting.id} ended already")
    if at < posting.starts_at:
        raise InvalidInput("end refused", {"at": ["before the posting started"]})
    posting.ends_at = at
    db.session.flush()
    from app.incidents.models import Incident

    incident = db.session.get(Incident, posting.incident_id)
    detail = f"{posting.person.name} <- {posting.supplier.name} ({posting.supplier.code})"
    record(incident, "posting_ended", detail, at)
    log.info("incident %s: posting %s ended", incident.id, posting.id)
    return posting


def postings_of(incident=None, supplier=None):
    """Postings of an incident or at a supplier, open ones first, newest first."""
    query = select(InspectorPosting)
    if incident is not None:
        query = query.where(InspectorPosting.incident_id == incident.id)
    if supplier is not None:
        query = query.where(InspectorPosting.supplier_id == supplier.id)
    order = (InspectorPosting.ends_at.is_not(None), InspectorPosting.id.desc())
    return db.session.scalars(query.order_by(*order)).all()


# The checklist ----------------------------------------------------------------------


def checklist_plan(incident):
    """The plan whose checklist applies: the incident's version, else the configured
    plan's latest."""
    from app.process.services import latest_plan

    if incident is not None:
        return incident.plan
    return latest_plan(current_app.config["BAOGONG_PLAN"])


def checklist_for(plan, incident_kind):
    """The plan's checklist items asked in an incident of this kind (outside incidents,
    None: the items meant for every kind)."""
    items = (plan.settings or {}).get("inspection_checklist")
    if not items:
        raise InvalidInput(
            "no checklist",
            {"inspection_checklist": [f"plan {plan.name} v{plan.version} has no checklist"]},
        )
    return [
        item
        for item in items
        if not item.get("incident_kinds") or incident_kind in item["incident_kinds"]
    ]


def _check_answers(items, answers):
    """Every item answered once, nothing else, each with a known result; 422 naming the
    missing and unknown codes."""
    codes = [item["code"] for item in items]
    errors = {}
    missing = [code for code in codes if code not in answers]
    unknown = sorted(set(answers) - set(codes))
    if missing:
        errors.setdefault("answers", []).append(f"missing: {', '.join(missing)}")
    if unknown:
        errors.setdefault("answers", []).append(f"unknown: {', '.join(unknown)}")
    for code, answer in answers.items():
        if code in codes and (answer or {}).get("result") not in CHECK_RESULTS:
            errors[f"answers.{code}.result"] = [f"must be one of {', '.join(CHECK_RESULTS)}"]
    if errors:
        raise InvalidInput("inspection refused", errors)


# Inspections ------------------------------------------------------------------------


def _resolve_posting(supplier, incident, person, posting, at):
    """The posting the inspection belongs to: the one given (checked), or the person's
    posting at this supplier; 403 when the person is posted at another supplier, at the
    inspection's time or now (an inspection dated back does not leave the post)."""
    current = None
    if person is not None:
        from app.clock.services import now

        current = posting_of(person, at, incident)
        present = now(incident)
        if current is None and at < present:
            current = posting_of(person, present, incident)
    if posting is None:
        if current is not None and current.supplier_id != supplier.id:
            raise Forbidden(
                f"{person.code} is posted at {current.supplier.code} and records inspections "
                "of that supplier only until the posting ends"
            )
        posting = current
    if posting is None:
        return None

    problems = []
    if posting.supplier_id != supplier.id:
        problems.append(f"posting {posting.id} is at another supplier")
    if person is not None and posting.person_id != person.id:
        problems.append(f"posting {posting.id} is another inspector's")
    if not (posting.starts_at <= at and (posting.ends_at is None or posting.ends_at > at)):
        problems.append(f"posting {posting.id} is not open at that time")
    if incident is not None and posting.incident_id != incident.id:
        problems.append(f"posting {posting.id} belongs to incident {posting.incident_id}")
    if problems:
        raise InvalidInput("inspection refused", {"posting": problems})
    return posting


def record_inspection(
    supplier,
    *,
    incident,
    inspector,
    answers,
    at,
    posting=None,
    purpose="routine",
    summary=None,
):
    """Record an inspection of the supplier against the plan's checklist.

    `inspector` is a Person of role inspector or a name. Every item must be answered
    (pass, fail or na); failed serious items are serious findings, other failed items
    minor ones, and the inspection passes when no serious item failed. A serious failure
    in a routine inspection tells the commander and market supervision.
    """
    person = inspector if isinstance(inspector, Person) else None
    name = person.name if person is not None else (inspector or "").strip()
    errors = {}
    if person is not None and person.role != "inspector":
        errors["person"] = [f"{person.code} is not an inspector"]
    if not name:
        errors["inspector"] = ["name who inspected"]
    if purpose not in INSPECTION_PURPOSES:
        errors["purpose"] = [f"must be one of {', '.join(INSPECTION_PURPOSES)}"]
    if errors:
        raise InvalidInput("inspection refused", errors)

    posting = _resolve_posting(supplier, incident, person, posting, at)
    if incident is None and posting is not None:
        from app.incidents.models import Incident

        incident = db.session.get(Incident, posting.incident_id)
    if incident is not None and incident.status == "closed":
        raise Conflict(f"incident {incident.id} is closed")
    items = checklist_for(checklist_plan(incident), incident.kind if incident else None)
    _check_answers(items, answers)

    checklist = [_answered(item, answers[item["code"]]) for item in items]
    failed = [row for row in checklist if row["result"] == "fail"]
    serious = sum(1 for row in failed if row["serious"])
    inspection = Inspection(
        incident_id=incident.id if incident is not None else None,
        supplier_id=supplier.id,
        posting_id=posting.id if posting is not None else None,
        person_id=person.id if person is not None else None,
        inspector=name,
        purpose=purpose,
        inspected_at=at,
        checklist=checklist,
        serious_findings=serious,
        minor_findings=len(failed) - serious,
        passed=serious == 0,
        summary=summary or None,
    )
    db.session.add(inspection)
    db.session.flush()

    if incident is not None:
        detail = (
            f"{supplier.name} ({supplier.code}), {purpose}: {inspection.serious_findings} "
            f"serious, {inspection.minor_findings} minor findings"
        )
        record(incident, "inspection_recorded", detail, at)
    if not inspection.passed and purpose == "routine":
        _tell_of_serious_findings(inspection, supplier, incident, failed, at)
    if touches_live(incident):
        refresh_live_colours([supplier], at=max(at, utcnow()))
    log.info(
        "supplier %s: inspection %s by %s, %s serious, %s minor",
        supplier.code, inspection.id, name, serious, inspection.minor_findings,
    )  # fmt: skip
    return inspection


def _answered(item, answer):
    return {
        "code": item["code"],
        "text": item["text"],
        "text_en": item.get("text_en"),
        "serious": bool(item.get("serious")),
        "result": answer["result"],
        "note": (answer.get("note") or "").strip() or None,
    }


def _tell_of_serious_findings(inspection, supplier, incident, failed, at):
    """The commander and market supervision's liaison hear of a serious finding, once
    each per inspection (the key holds the inspection's id)."""
    if incident is not None:
        commander = commander_of(incident, at)
    else:
        commander = commander_on_duty(checklist_plan(None), at)
    market = department("market_supervision")
    items = "; ".join(row["text"] for row in failed if row["serious"])
    body = f"{supplier.name} ({supplier.code}) 检查人 {inspection.inspector}：{items}"
    for person in (commander, liaison_of(market.id, at) if market else None):
        if person is None:
            continue
        notify(
            key=f"inspection-serious-{inspection.id}-{person.id}",
            kind="inspection_serious_finding",
            subject=f"监督检查发现严重问题：{supplier.name}",
            body=body,
            incident=incident,
            person=person,
            at=at,
            data={"inspection_id": inspection.id, "supplier": supplier.code},
        )
    log.warning("supplier %s: serious findings in inspection %s", supplier.code, inspection.id)


def inspections_of(incident=None, supplier=None):
    """Inspections of an incident or of a supplier, newest first."""
    query = select(Inspection)
    if incident is not None:
        query = query.where(Inspection.incident_id == incident.id)
    if supplier is not None:
        query = query.where(Inspection.supplier_id == supplier.id)
    order = (Inspection.inspected_at.desc(), Inspection.id.desc())
    return db.session.scalars(query.order_by(*order)).all()
