"""Delivering notifications: which channels a message goes out on, and the worker side
that sends each delivery, tries again with backoff and records the outcome.

A Notification and its Delivery rows are written in the caller's transaction. The relay
puts due deliveries on the queue in small batches under fixed job ids; the job claims
each row before sending, so a job run twice sends once, and the reconciler puts back the
rows whose job was lost. A worker that dies between sending and recording leaves the row
to be sent again: delivery is at least once, and the key lets the receiver see a repeat.

Retries: the attempt count and the next attempt's instant are columns of the row, and
the relay only takes rows that are due. RQ's Retry keeps its count in Redis (gone with
a Redis restart, and it needs RQ's scheduler, which these workers do not run), and
tenacity retries inside the call by sleeping, holding a worker for minutes. What is left
to compute is one doubling per attempt, `backoff_seconds`, so no library is taken for it.
"""

import logging
import re
from datetime import timedelta
from functools import partial

from flask import current_app
from sqlalchemy import func, or_, select, update

from app.coordination.channels import DeliveryError, send_dingtalk, send_email, send_sms
from app.coordination.models import (
    CHANNELS,
    UNFINISHED_DELIVERY,
    ChannelPreference,
    Delivery,
    GroupRobot,
    Notification,
)
from app.errors import InvalidInput
from app.extensions import db
from app.queue import QUEUE_NOTIFY, get_queue, job_lost
from app.types import utcnow

log = logging.getLogger(__name__)

OUTSIDE = ("email", "dingtalk", "sms")
RELAY_BATCH = 500
# Deliveries per job: one job's start-up is paid for a few messages, and a slow receiver
# holds up at most this many.
JOB_BATCH = 20
MAX_BACKOFF_SECONDS = 6 * 3600
NOT_IN_DRILL = "not configured for this drill"
DRILL_ROBOT = "演练群机器人"


# Who is reached -----------------------------------------------------------------------


def cover_for(person, at):
    """Who a message meant for `person` reaches at `at`, and a note when it is someone else.

    A person who cannot be reached, or is off duty (a shift of their role covers the
    instant and names someone else, or none does and they are off the standing roster),
    is replaced by whoever holds the role now. With nobody to stand in, the message stays
    with them.
    """
    from app.organisation.models import RosterShift
    from app.organisation.services import on_duty

    holder = on_duty(person.department_id, person.role, at)
    if holder is None or holder.id == person.id:
        return person, None
    if person.available:
        shift_now = db.session.scalar(
            select(RosterShift.id)
            .where(
                RosterShift.department_id == person.department_id,
                RosterShift.role == person.role,
                RosterShift.starts_at <= at,
                RosterShift.ends_at > at,
            )
            .limit(1)
        )
        if shift_now is None and person.on_duty:
            return person, None
        why = "不在值班"
    else:
        why = "暂无法联系"
    return holder, f"{person.name}（{person.code}）{why}，由 {holder.name}（{holder.code}）接收"


def preferred_channels(person):
    """The channels a person chose, or None when they have not chosen."""
    row = db.session.scalar(select(ChannelPreference).filter_by(person_id=person.id))
    return list(row.channels) if row is not None else None


def robot_for(department_id):
    """The group robot a department's people are reached through: their department's,
    else the command post's."""
    robots = db.session.scalars(
        select(GroupRobot).where(
            or_(GroupRobot.department_id == department_id, GroupRobot.department_id.is_(None))
        )
    ).all()
    own = [r for r in robots if r.department_id == department_id]
    return (own or robots or [None])[0]


def drill_endpoints(incident):
    """The endpoints a drill incident's run sends to, by channel ({} when none); None for
    a real incident, whose endpoints come from the configuration."""
    if incident is None or incident.drill_run_id is None:
        return None
    from app.drills.models import DrillRun

    run = db.session.get(DrillRun, incident.drill_run_id)
    return dict(run.notification_endpoints or {})


def _address(channel, person, endpoints):
    """(address, robot, reason): where `channel` reaches the person, or why it cannot."""
    if channel == "email":
        drill_to = (endpoints or {}).get("email", {}).get("to")
        address = drill_to or person.email
        return address, None, None if address else "no email address on file"
    if channel == "sms":
        return person.phone, None, None if person.phone else "no phone number on file"
    if endpoints is not None:
        return DRILL_ROBOT, None, None
    robot = robot_for(person.department_id)
    if robot is None:
        return None, None, "no group robot for the department or the command post"
    return robot.name, robot, None


def _configured(channel):
    config = current_app.config
    if channel == "email":
        return bool(config["BAOGONG_SMTP_HOST"])
    if channel == "sms":
        return bool(config["BAOGONG_SMS_URL"])
    return True  # a robot found for the person is its own configuration


def plan_deliveries(message, incident, person):
    """Add the message's Delivery rows: the in-app inbox, and each outside channel the
    person is reached on.

    The in-app delivery is sent by writing the row: the inbox reads Notification rows, so
    a worker round trip would add nothing but time (a drill writes a thousand of them).
    A person who has not chosen gets every channel they have an address for; a channel
    they chose but cannot be reached on is kept as skipped, with the reason. In a drill,
    only the run's endpoints are used: any other channel is skipped, never sent.
    """
    now = utcnow()
    rows = [Delivery(channel="inapp", status="sent", attempts=1, created_at=now, sent_at=now)]
    if person is not None:
        endpoints = drill_endpoints(incident)
        # A drill reaches everyone on every channel it configures, whatever they chose for
        # real messages, so that its figures are the same on every run.
        chosen = preferred_channels(person) if endpoints is None else None
        for channel in OUTSIDE:
            if chosen is not None and channel not in chosen:
                continue
            address, robot, missing = _address(channel, person, endpoints)
            if missing is None and endpoints is not None and not endpoints.get(channel):
                missing = NOT_IN_DRILL
            elif missing is None and endpoints is None and not _configured(channel):
                missing = f"{channel} is not configured"
            if missing is not None and chosen is None and missing != NOT_IN_DRILL:
                continue
            rows.append(
                Delivery(
                    channel=channel,
                    address=address,
                    robot_id=robot.id if robot is not None else None,
                    status="pending" if missing is None else "skipped",
                    skip_reason=missing,
                    created_at=now,
                )
            )
    for row in rows:
        row.notification = message
        db.session.add(row)
    return rows


# The queue ------------------------------------------------------------------------------


def job_id_for(first):
    """A batch's job id: its first delivery and that row's attempts so far, so relaying
    the same rows again names the same job."""
    return f"delivery-{first.id}-{first.attempts}"


def backoff_seconds(attempts, base=None):
    """How long to wait after the `attempts`-th failed try: base, 2 x base, 4 x base..."""
    if base is None:
        base = current_app.config["BAOGONG_NOTIFY_BACKOFF_SECONDS"]
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)


def retry_settings(incident_id):
    """(max attempts, backoff base in seconds) for the incident's deliveries: a drill run
    may set its own under `retry` of its endpoints, so a drill need not wait minutes for
    a receiver told to fail; otherwise the configuration's."""
    config = current_app.config
    settings = (config["BAOGONG_NOTIFY_MAX_ATTEMPTS"], config["BAOGONG_NOTIFY_BACKOFF_SECONDS"])
    if incident_id is None:
        return settings
    from app.incidents.models import Incident

    retry = (drill_endpoints(db.session.get(Incident, incident_id)) or {}).get("retry") or {}
    return (
        retry.get("max_attempts", settings[0]),
        retry.get("backoff_seconds", settings[1]),
    )


def _in_incidents(query, incident_ids):
    if incident_ids is None:
        return query
    return query.join(Notification, Notification.id == Delivery.notification_id).where(
        Notification.incident_id.in_(incident_ids)
    )


def relay(incident_ids=None, at=None):
    """Put every due pending delivery on the queue, in batches; returns how many.

    Bookkeeping runs on the wall clock (`at` stands in for it in tests), whatever clock
    the incident runs on: retries wait for the receiver, which lives in real time.
    """
    at = at or utcnow()
    count, last_id = 0, 0
    while True:
        query = select(Delivery).where(
            Delivery.status == "pending",
            Delivery.id > last_id,
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= at),
        )
        query = _in_incidents(query, incident_ids)
        rows = db.session.scalars(query.order_by(Delivery.id).limit(RELAY_BATCH)).all()
        if not rows:
            break
        _enqueue(rows)
        count += len(rows)
        last_id = rows[-1].id
    db.session.commit()  # end the read, so no lock is held while workers write
    if count:
        log.info("relay: %d deliveries put on the queue", count)
    return count


def _enqueue(rows):
    queue = get_queue(QUEUE_NOTIFY)
    batches = [rows[i : i + JOB_BATCH] for i in range(0, len(rows), JOB_BATCH)]
    jobs = [
        queue.prepare_data(
            "workers.jobs.deliver_notifications",
            args=([row.id for row in batch],),
            job_id=job_id_for(batch[0]),
            description=f"deliver {len(batch)} notifications from {batch[0].id}",
        )
        for batch in batches
    ]
    # Enqueue first, then mark: a crash in between leaves pending rows that are relayed
    # again, and the job's claim makes the repeat harmless.
    queue.enqueue_many(jobs)
    at = utcnow()
    for batch, job in zip(batches, jobs, strict=True):
        db.session.execute(
            update(Delivery)
            .where(Delivery.id.in_([row.id for row in batch]), Delivery.status == "pending")
            .values(status="enqueued", enqueued_at=at, job_id=job.job_id),
            execution_options={"synchronize_session": False},
        )
    db.session.commit()


def reconcile(stale_seconds, incident_ids=None, dead_workers=(), min_age_seconds=None):
    """Put back deliveries whose job is lost (gone from Redis, failed, or its worker dead
    or silent for `stale_seconds`); returns how many.

    A row lost while sending may have reached the receiver: it is sent again under the
    same key, unless its attempts are used up, when it fails.
    """
    age = stale_seconds if min_age_seconds is None else min_age_seconds
    cutoff = utcnow() - timedelta(seconds=age)
    query = (
        select(Delivery.id, Delivery.job_id, Delivery.attempts, Notification.incident_id)
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(Delivery.status.in_(("enqueued", "sending")), Delivery.enqueued_at <= cutoff)
    )
    if incident_ids is not None:
        query = query.where(Notification.incident_id.in_(incident_ids))
    connection = get_queue(QUEUE_NOTIFY).connection
    lost_jobs, settings = {}, {}
    back, given_up = [], []
    for row_id, job_id, attempts, incident_id in db.session.execute(query):
        if job_id not in lost_jobs:
            lost_jobs[job_id] = job_id is None or job_lost(
                job_id, connection, stale_seconds, dead_workers
            )
        if lost_jobs[job_id]:
            if incident_id not in settings:
                settings[incident_id] = retry_settings(incident_id)
            full = attempts >= settings[incident_id][0]
            (given_up if full else back).append(row_id)
    for ids, values in (
        (back, {"status": "pending"}),
        (given_up, {"status": "failed", "last_error": "the last attempt was lost with its job"}),
    ):
        if ids:
            db.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.status.in_(("enqueued", "sending")))
                .values(**values),
                execution_options={"synchronize_session": False},
            )
    if back or given_up:
        log.warning("reconciler: %d lost deliveries put back, %d failed", len(back), len(given_up))
    db.session.commit()
    return len(back) + len(given_up)


def unfinished(incident_ids=None, due_by=None):
    """How many deliveries are still to be sent, those waiting for a retry included; with
    `due_by` (a wall-clock instant), only those due by then, which a drill's clock waits
    for without waiting out every backoff."""
    query = select(func.count(Delivery.id)).where(Delivery.status.in_(UNFINISHED_DELIVERY))
    if due_by is not None:
        query = query.where(
            or_(
                Delivery.status != "pending",
                Delivery.next_attempt_at.is_(None),
                Delivery.next_attempt_at <= due_by,
            )
        )
    return db.session.scalar(_in_incidents(query, incident_ids))


def give_up(incident, reason):
    """Mark every unfinished delivery of the incident failed, with the reason; how many."""
    ids = select(Notification.id).where(Notification.incident_id == incident.id)
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.notification_id.in_(ids), Delivery.status.in_(UNFINISHED_DELIVERY))
        .values(status="failed", last_error=reason),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount


def claim(delivery_id, at, job_id=None):
    """Take a due delivery for sending, counting the attempt; True when this caller has it."""
    values = {"status": "sending", "attempts": Delivery.attempts + 1, "enqueued_at": utcnow()}
    if job_id is not None:
        values["job_id"] = job_id
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status.in_(("pending", "enqueued")),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= at),
        )
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1


# The worker side ------------------------------------------------------------------------


def deliver(delivery_ids, at=None, job_id=None):
    """Send each delivery this run can claim and record how it went; returns the outcomes
    by id ("sent", "retry", "failed", or "not due" for one another run has or will take).

    Each row commits on its own, before and after its send, so no transaction is open while
    a receiver answers and a crash loses at most the record of one send.
    """
    import requests

    outcomes = {}
    with requests.Session() as session:
        for delivery_id in delivery_ids:
            when = at or utcnow()
            if not claim(delivery_id, when, job_id):
                db.session.rollback()
                outcomes[delivery_id] = "not due"
                continue
            db.session.commit()

            row = db.session.get(Delivery, delivery_id)
            try:
                send = _outgoing(row, session)
                # End the read before waiting on a receiver: on SQLite every transaction
                # holds the write lock, and a silent server would stall every writer.
                db.session.commit()
                send()
            except DeliveryError as error:
                outcomes[delivery_id] = _record_failure(row, error, when)
            except Exception as error:
                # A bad endpoint setting or a receiver's odd answer: recorded on the row,
                # where the commander sees it, and tried again like any failure.
                log.exception("delivery %s: unexpected error", delivery_id)
                failure = DeliveryError(f"{type(error).__name__}: {error}")
                outcomes[delivery_id] = _record_failure(row, failure, when)
            else:
                row.status = "sent"
                row.sent_at = utcnow()
                outcomes[delivery_id] = "sent"
            db.session.commit()
            log.info(
                "delivery %s: %s %s, attempt %d", row.id, row.channel, row.status, row.attempts
            )
    return outcomes


def _record_failure(row, error, at):
    # The commander reads errors on the API: a URL in one is shown without its secrets.
    row.last_error = _URL.sub(lambda m: shown_url(m.group(0)), str(error))[:2000]
    max_attempts, base = retry_settings(row.notification.incident_id)
    if error.permanent or row.attempts >= max_attempts:
        row.status = "failed"
        log.warning("delivery %s: failed after %d attempts: %s", row.id, row.attempts, error)
        return "failed"
    row.status = "pending"
    row.next_attempt_at = at + timedelta(seconds=backoff_seconds(row.attempts, base))
    return "retry"


def _texts(message, incident):
    """Subject and text as they go out: marked as a drill in a drill, with the cover note."""
    subject, body = message.subject, message.body or ""
    if incident is not None and incident.drill and not subject.startswith("[演练]"):
        subject = f"[演练] {subject}"
    if message.cover_note:
        body = f"{body}\n（{message.cover_note}）" if body else f"（{message.cover_note}）"
    return subject, body


def _outgoing(row, session):
    """What sending the row takes, as one call that needs no database: everything is read
    first, so the transaction can end before a receiver is waited for."""
    from app.incidents.models import Incident
    from app.organisation.models import Person

    config = current_app.config
    message = row.notification
    incident = db.session.get(Incident, message.incident_id) if message.incident_id else None
    endpoints = drill_endpoints(incident)
    subject, body = _texts(message, incident)
    timeout = config["BAOGONG_NOTIFY_TIMEOUT_SECONDS"]

    if row.channel == "email":
        server = _endpoint(endpoints, "email") or {
            "host": config["BAOGONG_SMTP_HOST"],
            "port": config["BAOGONG_SMTP_PORT"],
            "user": config["BAOGONG_SMTP_USER"],
            "password": config["BAOGONG_SMTP_PASSWORD"],
            "starttls": config["BAOGONG_SMTP_STARTTLS"],
        }
        if not server.get("host"):
            raise DeliveryError("email is not configured", permanent=True)
        return partial(
            send_email,
            server=server,
            sender=server.get("from") or config["BAOGONG_MAIL_FROM"],
            to=row.address,
            subject=subject,
            body=body,
            key=message.key,
            domain=config["BAOGONG_MAIL_DOMAIN"],
            timeout=timeout,
        )
    elif row.channel == "dingtalk":
        robot = _endpoint(endpoints, "dingtalk")
        if robot is None:
            found = db.session.get(GroupRobot, row.robot_id) if row.robot_id else None
            if found is None:
                raise DeliveryError("the group robot was removed", permanent=True)
            robot = {"url": found.webhook_url, "secret": found.secret}
        person = db.session.get(Person, message.person_id) if message.person_id else None
        return partial(
            send_dingtalk,
            url=robot["url"],
            secret=robot.get("secret"),
            key=message.key,
            title=subject,
            text=body,
            mobiles=[person.phone] if person is not None and person.phone else [],
            timeout=timeout,
            session=session,
        )
    elif row.channel == "sms":
        gateway = _endpoint(endpoints, "sms") or {
            "url": config["BAOGONG_SMS_URL"],
            "token": config["BAOGONG_SMS_TOKEN"],
        }
        if not gateway.get("url"):
            raise DeliveryError("sms is not configured", permanent=True)
        return partial(
            send_sms,
            url=gateway["url"],
            token=gateway.get("token"),
            to=row.address,
            text=f"{subject}：{body}" if body else subject,
            key=message.key,
            timeout=timeout,
            session=session,
        )
    raise DeliveryError(f"no sender for channel {row.channel}", permanent=True)


def _endpoint(endpoints, channel):
    """A drill's endpoint for the channel; None for a real incident. A drill whose
    endpoint went away since the message was written does not fall back to production."""
    if endpoints is None:
        return None
    found = endpoints.get(channel)
    if not found:
        raise DeliveryError(NOT_IN_DRILL, permanent=True)
    return found


# Drill endpoints ------------------------------------------------------------------------

# What each channel's endpoint of a drill run takes: (type, required).
ENDPOINT_FIELDS = {
    "email": {
        "host": (str, True),
        "port": (int, True),
        "to": (str, False),
        "from": (str, False),
        "user": (str, False),
        "password": (str, False),
        "starttls": (bool, False),
    },
    "dingtalk": {"url": (str, True), "secret": (str, False)},
    "sms": {"url": (str, True), "token": (str, False)},
    "retry": {"max_attempts": (int, False), "backoff_seconds": ((int, float), False)},
}


def check_endpoints(endpoints, where="notifications"):
    """Refuse a drill's endpoints that cannot be used, naming each key under `where`;
    returns them as DrillRun.notification_endpoints keeps them."""
    import math

    errors = {}
    if not isinstance(endpoints, dict):
        raise InvalidInput("endpoints refused", {where: ["must be a mapping"]})
    for channel, endpoint in endpoints.items():
        fields = ENDPOINT_FIELDS.get(channel)
        if fields is None:
            errors[f"{where}.{channel}"] = [f"unknown; one of {', '.join(ENDPOINT_FIELDS)}"]
            continue
        if not isinstance(endpoint, dict):
            errors[f"{where}.{channel}"] = ["must be a mapping"]
            continue
        for name, value in endpoint.items():
            kind = fields.get(name, (None,))[0]
            bad = (
                kind is None
                or isinstance(value, bool) != (kind is bool)
                or not isinstance(value, kind)
                or (isinstance(value, float) and not math.isfinite(value))
                or (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0)
            )
            if bad:
                errors[f"{where}.{channel}.{name}"] = [
                    "unknown" if kind is None else "missing or of the wrong type"
                ]
        for name, (_, required) in fields.items():
            if required and name not in endpoint:
                errors[f"{where}.{channel}.{name}"] = ["required"]
        url = endpoint.get("url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            errors[f"{where}.{channel}.url"] = ["an http:// or https:// URL"]
    if errors:
        raise InvalidInput("notification endpoints refused", errors)
    return endpoints


# Figures ----------------------------------------------------------------------------------


def notification_figures(incident, receivers=()):
    """The drill report's `notifications`: deliveries of the incident sent, failed and
    skipped (still unfinished ones are in none), and `duplicates`, the repeats of one key
    that the given receivers saw."""
    rows = db.session.execute(
        select(Delivery.status, func.count(Delivery.id))
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(Notification.incident_id == incident.id)
        .group_by(Delivery.status)
    ).all()
    counts = dict(rows)
    duplicates = 0
    if receivers:
        keys = set(db.session.scalars(select(Notification.key).filter_by(incident_id=incident.id)))
        duplicates = sum(receiver.duplicates_for(keys) for receiver in receivers)
    return {
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "duplicates": duplicates,
    }


# Preferences and robots -------------------------------------------------------------------


def set_channels(person, channels, at):
    """Record the channels a person wants; the in-app inbox is always one of them.

    A channel they cannot be reached on (no email address, no phone, no group robot) is
    refused, naming `channels`.
    """
    errors = []
    for channel in channels:
        if channel not in CHANNELS:
            errors.append(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    if "email" in channels and not person.email:
        errors.append("email needs an email address on file")
    if "sms" in channels and not person.phone:
        errors.append("sms needs a phone number on file")
    if "dingtalk" in channels and robot_for(person.department_id) is None:
        errors.append("dingtalk needs a group robot for the department or the command post")
    if errors:
        raise InvalidInput("channels refused", {"channels": errors})

    chosen = ["inapp"] + [c for c in OUTSIDE if c in channels]
    row = db.session.scalar(select(ChannelPreference).filter_by(person_id=person.id))
    if row is None:
        row = ChannelPreference(person_id=person.id, channels=chosen, updated_at=at)
        db.session.add(row)
    else:
        row.channels = chosen
        row.updated_at = at
    db.session.flush()
    return chosen


ROBOT_NAME_CHARS = 100
ROBOT_URL_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL = re.compile(r"https?://[^\s'\"<>]+")


def check_robot(name, url, secret):
    """Every refusal of a robot's settings, by field, before anything is written."""
    from urllib.parse import urlsplit

    errors = {}
    name = (name or "").strip()
    if not name or len(name) > ROBOT_NAME_CHARS or _CONTROL.search(name):
        errors["name"] = [f"1 to {ROBOT_NAME_CHARS} characters on one line"]
    url = url or ""
    try:
        parts = urlsplit(url)
        port = parts.port  # a port out of range raises here
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == 0
        or len(url) > ROBOT_URL_CHARS
        or _CONTROL.search(url)
        or " " in url
    ):
        errors["url"] = [f"an http:// or https:// webhook URL, at most {ROBOT_URL_CHARS} chars"]
    if secret is not None and (not secret or len(secret) > 200 or _CONTROL.search(secret)):
        errors["secret"] = ["the robot's signing secret on one line, at most 200 characters"]
    if errors:
        raise InvalidInput("robot refused", errors)
    return name


def set_robot(department, *, name, url, secret, at):
    """Add or replace the group robot of a department (None: of the command post).

    `secret` None keeps no secret; an empty one is refused, so a blank line read by mistake
    does not wipe a robot's signing secret."""
    name = check_robot(name, url, secret)
    department_id = department.id if department is not None else None
    robot = db.session.scalar(
        select(GroupRobot).where(
            GroupRobot.department_id == department_id
            if department_id is not None
            else GroupRobot.department_id.is_(None)
        )
    )
    if robot is None:
        robot = GroupRobot(department_id=department_id)
        db.session.add(robot)
    robot.name = name
    robot.webhook_url = url
    robot.secret = secret
    robot.updated_at = at
    db.session.flush()
    return robot


def _tail(text, keep=4):
    if not text:
        return None
    return "****" + text[-keep:] if len(text) > keep * 2 else "****"


def shown_url(url):
    """A URL as it may be shown or logged: no password, every query value and the
    fragment shortened, and a path segment that looks like a token shortened too."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "****"
    user = "****@" if parts.username or parts.password else ""
    path = "/".join(_tail(p) if len(p) >= 16 else p for p in parts.path.split("/"))
    query = "&".join(f"{k}={_tail(v)}" for k, v in parse_qsl(parts.query))
    fragment = _tail(parts.fragment) if parts.fragment else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", path, query, fragment))


def describe_robot(robot):
    """A robot as pages, the API and the CLI show it: the URL with its token shortened
    (see `shown_url`) and the secret shortened to its last characters."""
    return {
        "id": robot.id,
        "department": robot.department_id and _department_code(robot.department_id),
        "name": robot.name,
        "url": shown_url(robot.webhook_url),
        "secret": _tail(robot.secret),
    }


def _department_code(department_id):
    from app.organisation.models import Department

    return db.session.get(Department, department_id).code
