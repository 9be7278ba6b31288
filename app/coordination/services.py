"""Notifications: one row per stable key, read by the in-app inbox."""

import logging

from sqlalchemy import select

from app.coordination.models import Notification
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
