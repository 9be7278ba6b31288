"""Notifications: one row per stable key, read by the in-app inbox."""

import logging

from sqlalchemy import select

from app.coordination.models import Notification
from app.extensions import db

log = logging.getLogger(__name__)


def notify(*, key, kind, subject, incident, at, body="", person=None, supplier=None, data=None):
    """Write a notification once per key; a second call with the same key returns the first."""
    existing = db.session.scalar(select(Notification).filter_by(key=key))
    if existing is not None:
        return existing
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
    )
    db.session.add(message)
    db.session.flush()
    return message
