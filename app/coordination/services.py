"""Notifications and situation reports."""

import logging
from datetime import timedelta

from sqlalchemy import func, select

from app.coordination.models import Notification, SituationReport
from app.extensions import db

log = logging.getLogger(__name__)


def notify(*, key, kind, subject, incident, at, body="", person=None, supplier=None, data=None):
    """Write a notification once per key, with a delivery for each channel its recipient
    is reached on; a second call with the same key returns the first.

    A person off duty or out of reach is replaced by whoever covers them, and the note
    says who was skipped. Workers send the outside channels from the rows written here.
    """
    from app.coordination.delivery import cover_for, plan_deliveries

    existing = db.session.scalar(select(Notification).filter_by(key=key))
    if existing is not None:
        return existing
    skipped, note = None, None
    if person is not None:
        reached, note = cover_for(person, at)
        if reached.id != person.id:
            skipped, person = person, reached
    message = Notification(
        key=key,
        kind=kind,
        subject=subject,
        body=body,
        incident_id=incident.id if incident is not None else None,
        person_id=person.id if person is not None else None,
        supplier_id=supplier.id if supplier is not None else None,
        data=data,
        created_at=at,
        skipped_person_id=skipped.id if skipped is not None else None,
        cover_note=note,
    )
    db.session.add(message)
    plan_deliveries(message, incident, person)
    db.session.flush()
    return message


def issue_sitrep(incident, at):
    """Draft and issue the next situation report from live figures; schedule the next."""
    from app.clock.services import schedule
    from app.incidents.services import record
    from app.organisation.services import commander_of
    from app.supply.services import incident_figures

    number = (
        db.session.scalar(select(func.count(SituationReport.id)).filter_by(incident_id=incident.id))
        + 1
    )
    figures = incident_figures(incident)
    text = (
        f"第{number}期：响应级别 {incident.level or '-'}；"
        f"需求 {figures['demand_meals']} 份，已分配 {figures['allocated_meals']} 份，"
        f"已送达 {figures['delivered_meals']} 份；暂停供应商 {figures['suppliers_suspended']} 家。"
    )
    if incident.drill:
        text = "[演练] " + text
    report = SituationReport(
        incident_id=incident.id, number=number, at=at, figures=figures, text=text
    )
    db.session.add(report)
    db.session.flush()

    commander = commander_of(incident)
    if commander is not None:
        notify(
            key=f"sitrep-{incident.id}-{number}",
            kind="sitrep",
            subject=f"信息专报 第{number}期",
            body=text,
            incident=incident,
            person=commander,
            at=at,
        )
    record(incident, "sitrep_issued", f"no. {number}", at)

    every = incident.plan.document.get("sitreps", {}).get("every_hours")
    if every and incident.status != "closed":
        schedule("sitrep", incident, incident.id, at + timedelta(hours=every))
    return report
