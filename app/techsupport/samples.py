"""Retained samples (留样): one sealed sample of every dish of every batch, each weighed and
kept where the supplier says, counting down to the end of its keeping time; held (封存) for
a food-safety incident past that time until the hold is released; discarded only then."""

import logging
from datetime import timedelta

from sqlalchemy import and_, exists, false, or_, select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.supply.models import Batch, SupplyTask
from app.techsupport.batches import (
    _batch_at,
    _not_before,
    after_task_set,
    check_instant,
    follow_batches,
    incident_of,
    missing_samples,
)
from app.techsupport.models import RetainedSample, SampleHold
from app.types import local_iso

log = logging.getLogger(__name__)

# What a sample's state is called: counting down, held for an incident, past its keeping
# time (it may be discarded), or discarded.
SAMPLE_STATES = ("kept", "held", "expired", "discarded")
MAX_GRAMS = 10_000
PLACE_LENGTH = 200
NAME_LENGTH = 100
REASON_LENGTH = 2000
# Holds are looked up this many samples at a time (SQLite bounds a statement's parameters).
CHUNK = 500


def sample_rules(incident):
    """(the least grams per dish, the hours a sample is kept) from the incident's plan."""
    settings = incident.plan.settings or {}
    return settings.get("sample_min_grams", 125), settings.get("sample_keep_hours", 48)


def samples_of(batch):
    return db.session.scalars(
        select(RetainedSample).filter_by(batch_id=batch.id).order_by(RetainedSample.id)
    ).all()


def _text(value, limit, what):
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return f"say {what}"
    if len(text) > limit:
        return f"at most {limit} characters"
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in text):
        return "must not hold control characters"
    return None


def record_samples(batch, entries, *, at, by=None, min_grams=125, keep_hours=48, clock=None):
    """Keep one sample of each dish in `entries` (each {dish, grams, kept_at}): a dish of
    the batch, at least `min_grams` (422 naming the dish), kept somewhere named; a dish
    sampled already is refused (Conflict). Samples are taken while the batch is cooking or
    cooked; it is ready to leave once every dish has one. Returns the new samples."""
    check_instant(at, "at", clock)
    after_task_set(batch.supply_task, at)
    _batch_at(batch, ("cooking", "cooked"), "sampled")
    _not_before(at, batch.cooked_at, "at", "was cooked")
    if not entries:
        raise InvalidInput("samples refused", {"samples": ["give a sample of at least one dish"]})

    errors, dishes = {}, []
    for n, entry in enumerate(entries):
        dish = entry.get("dish")
        dish = dish.strip() if isinstance(dish, str) else dish
        grams, kept_at = entry.get("grams"), entry.get("kept_at")
        if not isinstance(dish, str) or dish not in batch.dishes:
            errors[f"samples.{n}.dish"] = [
                f"{dish!r} is not a dish of batch {batch.id}: {', '.join(batch.dishes)}"
            ]
        if isinstance(grams, bool) or not isinstance(grams, int):
            errors[f"samples.{n}.grams"] = [f"{dish}: a whole number of grams"]
        elif grams < min_grams:
            errors[f"samples.{n}.grams"] = [f"{dish}: at least {min_grams} g, got {grams} g"]
        elif grams > MAX_GRAMS:
            errors[f"samples.{n}.grams"] = [f"{dish}: at most {MAX_GRAMS} g, got {grams} g"]
        problem = _text(kept_at, PLACE_LENGTH, "where the sample is kept")
        if problem:
            errors[f"samples.{n}.kept_at"] = [problem]
        dishes.append(dish)
    problem = _text(by, NAME_LENGTH, "who retained it") if by is not None else None
    if problem:
        errors["retained_by"] = [problem]
    if errors:
        raise InvalidInput("samples refused", errors)
    kept = {s.dish for s in samples_of(batch)}
    repeats = [d for n, d in enumerate(dishes) if d in kept or d in dishes[:n]]
    if repeats:
        raise Conflict(
            f"batch {batch.id} keeps one sample per dish; {', '.join(repeats)} sampled already"
        )

    samples = [
        RetainedSample(
            batch_id=batch.id,
            dish=dish,
            grams=entry["grams"],
            kept_at=entry["kept_at"].strip(),
            retained_by=by.strip() if by else None,
            retained_at=at,
            keep_until=at + timedelta(hours=keep_hours),
        )
        for dish, entry in zip(dishes, entries, strict=True)
    ]
    db.session.add_all(samples)
    db.session.flush()
    if batch.status == "cooked" and not missing_samples(batch):
        batch.status = "sampled"
    follow_batches(batch.supply_task, at)
    return samples


def retain_samples(batch, *, at, kept_at, grams, min_grams=125, keep_hours=48, by=None):
    """One sealed sample of every dish of the batch, all of `grams`, kept at `kept_at`."""
    entries = [{"dish": dish, "grams": grams, "kept_at": kept_at} for dish in batch.dishes]
    return record_samples(batch, entries, at=at, by=by, min_grams=min_grams, keep_hours=keep_hours)


def open_holds(sample):
    return [hold for hold in sample.holds if hold.released_at is None]


def sample_state(sample, at):
    """kept, held, expired or discarded at the instant `at`."""
    if sample.discarded_at is not None:
        return "discarded"
    if open_holds(sample):
        return "held"
    return "kept" if at < sample.keep_until else "expired"


def hours_left(sample, at):
    """Hours until the end of the keeping time, none below zero, to a tenth."""
    return round(max(0.0, (sample.keep_until - at).total_seconds() / 3600), 1)


def _duration(delta):
    minutes = max(0, int(delta.total_seconds() // 60))
    return f"{minutes // 60} h {minutes % 60} min"


def _held_for(holds):
    from app.incidents.models import Incident

    names = []
    for hold in holds:
        incident = db.session.get(Incident, hold.incident_id)
        names.append(f"incident {incident.id} ({incident.title})")
    return ", ".join(names)


def _not_a_finished_drill(incident):
    """A drill's samples and holds stay as the drill left them once it is over: they were
    never food anyone ate, and its clock has stopped."""
    if incident is not None and incident.drill and incident.status == "closed":
        raise Conflict(f"drill incident {incident.id} is over; its samples stay as it left them")


def discard_sample(sample, by, at, *, clock=None):
    """Throw the sample away: refused (Conflict) while a hold on it is open, naming the
    incident, and before its keeping time ends, with the time left."""
    check_instant(at, "at", clock)
    problem = _text(by, NAME_LENGTH, "who discards it")
    if problem:
        raise InvalidInput("discard refused", {"by": [problem]})
    _not_a_finished_drill(incident_of(sample.batch))
    if sample.discarded_at is not None:
        raise Conflict(
            f"sample {sample.id} ({sample.dish}) was discarded at "
            f"{local_iso(sample.discarded_at)} by {sample.discarded_by}"
        )
    holds = open_holds(sample)
    if holds:
        raise Conflict(
            f"sample {sample.id} ({sample.dish}) is held for {_held_for(holds)}; "
            "it is kept until the hold is released"
        )
    if at < sample.keep_until:
        raise Conflict(
            f"sample {sample.id} ({sample.dish}) is kept until "
            f"{local_iso(sample.keep_until)}: {_duration(sample.keep_until - at)} left"
        )

    # The sample row is the record (who and when); kitchens clear hundreds a day, too many
    # for the incident's timeline.
    sample.discarded_at = at
    sample.discarded_by = by.strip()
    db.session.flush()
    log.info("sample %s: discarded by %s", sample.id, sample.discarded_by)
    return sample


def _record(sample, event, detail, at):
    from app.incidents.services import record

    record(incident_of(sample.batch), event, f"sample {sample.id}: {detail}", at)


def _drill_runs(samples):
    """{sample id: the drill run of the incident its batch was cooked for, or None}."""
    from app.incidents.models import Incident

    runs = {}
    ids = [s.id for s in samples]
    for start in range(0, len(ids), CHUNK):
        rows = db.session.execute(
            select(RetainedSample.id, Incident.drill_run_id)
            .join(Batch, Batch.id == RetainedSample.batch_id)
            .join(SupplyTask, SupplyTask.id == Batch.supply_task_id)
            .join(Incident, Incident.id == SupplyTask.incident_id)
            .where(RetainedSample.id.in_(ids[start : start + CHUNK]))
        )
        runs.update(dict(rows.all()))
    return runs


def hold_samples(incident, samples, reason, at):
    """Keep `samples` for a food-safety incident until released, past their keeping time.

    Idempotent per sample and incident: a sample held already keeps its hold; one whose
    hold was released is held again (the earlier release stays on the timeline). Samples
    already discarded cannot be held and are left out, and so are, for a drill incident,
    samples of batches outside its drill run. Returns the holds, in the order given.
    """
    check_instant(at, "at")
    problem = _text(reason, REASON_LENGTH, "why the samples are held")
    if problem:
        raise InvalidInput("hold refused", {"reason": [problem]})
    unique = list({s.id: s for s in samples}.values())
    ids = [s.id for s in unique]
    existing = {}
    for start in range(0, len(ids), CHUNK):
        existing.update(
            (hold.sample_id, hold)
            for hold in db.session.scalars(
                select(SampleHold).where(
                    SampleHold.incident_id == incident.id,
                    SampleHold.sample_id.in_(ids[start : start + CHUNK]),
                )
            )
        )
    runs = _drill_runs(unique) if incident.drill else {}

    holds, new = [], 0
    for sample in unique:
        if sample.discarded_at is not None:
            log.info("sample %s: discarded already, not held for incident %s", sample.id,
                     incident.id)  # fmt: skip
            continue
        if incident.drill and runs.get(sample.id) != incident.drill_run_id:
            log.info("sample %s: not of drill incident %s, not held", sample.id, incident.id)
            continue
        hold = existing.get(sample.id)
        if hold is None:
            hold = SampleHold(
                sample_id=sample.id, incident_id=incident.id, reason=reason.strip(), held_at=at
            )
            db.session.add(hold)
            new += 1
        elif hold.released_at is not None:
            _record(sample, "sample_held_again",
                    f"released at {local_iso(hold.released_at)} by {hold.released_by}: "
                    f"{hold.release_reason}", at)  # fmt: skip
            hold.released_at = hold.released_by = hold.release_reason = None
            hold.reason, hold.held_at = reason.strip(), at
            new += 1
        holds.append(hold)
    db.session.flush()
    if new:
        from app.incidents.services import record

        record(incident, "samples_held", f"{new} samples held: {reason.strip()}", at)
        log.info("incident %s: %s samples held", incident.id, new)
    return holds


def release_hold(hold, by, reason, at, *, clock=None):
    """End a hold, saying who and why (both required); once no hold is open and the
    keeping time has passed, the sample may be discarded."""
    check_instant(at, "at", clock)
    errors = {}
    for field, value, limit, what in (
        ("reason", reason, REASON_LENGTH, "why the hold ends"),
        ("by", by, NAME_LENGTH, "who releases it"),
    ):
        problem = _text(value, limit, what)
        if problem:
            errors[field] = [problem]
    if errors:
        raise InvalidInput("release refused", errors)
    from app.incidents.models import Incident

    _not_a_finished_drill(db.session.get(Incident, hold.incident_id))
    _not_a_finished_drill(incident_of(hold.sample.batch))
    if hold.released_at is not None:
        raise Conflict(
            f"hold {hold.id} was released at {local_iso(hold.released_at)} by {hold.released_by}"
        )
    _not_before_hold(at, hold)

    hold.released_at = at
    hold.released_by = by.strip()
    hold.release_reason = reason.strip()
    from app.incidents.models import Incident
    from app.incidents.services import record

    incident = db.session.get(Incident, hold.incident_id)
    record(incident, "sample_hold_released",
           f"sample {hold.sample_id} ({hold.sample.dish}): {hold.release_reason}", at)  # fmt: skip
    db.session.flush()
    return hold


def _not_before_hold(at, hold):
    if at < hold.held_at:
        raise InvalidInput(
            "release refused", {"at": [f"is before the hold began ({local_iso(hold.held_at)})"]}
        )


def find_samples(*, supplier=None, state=None, incident=None, limit=100, offset=0):
    """Samples, soonest to end their keeping time first, filtered by supplier, state (one
    of SAMPLE_STATES; every sample not discarded when none) and incident (samples cooked
    for it or held for it). Kept and expired are judged on each incident's own clock."""
    query = (
        select(RetainedSample)
        .join(Batch, Batch.id == RetainedSample.batch_id)
        .join(SupplyTask, SupplyTask.id == Batch.supply_task_id)
    )
    if supplier is not None:
        query = query.where(Batch.supplier_id == supplier.id)
    if incident is not None:
        held_for = select(SampleHold.sample_id).where(SampleHold.incident_id == incident.id)
        query = query.where(
            or_(SupplyTask.incident_id == incident.id, RetainedSample.id.in_(held_for))
        )
    held = exists().where(
        SampleHold.sample_id == RetainedSample.id, SampleHold.released_at.is_(None)
    )
    if state == "discarded":
        query = query.where(RetainedSample.discarded_at.is_not(None))
    else:
        query = query.where(RetainedSample.discarded_at.is_(None))
    if state == "held":
        query = query.where(held)
    elif state in ("kept", "expired"):
        query = query.where(~held, _on_their_clocks(query, state))
    query = query.order_by(RetainedSample.keep_until, RetainedSample.id)
    return db.session.scalars(query.limit(limit).offset(offset)).all()


def _on_their_clocks(query, state):
    """keep_until after (kept) or not after (expired) the clock of each sample's incident."""
    from app.clock.services import now
    from app.incidents.models import Incident

    ids = db.session.scalars(
        query.with_only_columns(SupplyTask.incident_id).distinct().order_by(None)
    ).all()
    terms = []
    for found in db.session.scalars(select(Incident).where(Incident.id.in_(ids))):
        clock = now(found)
        ends = (
            RetainedSample.keep_until > clock
            if state == "kept"
            else RetainedSample.keep_until <= clock
        )
        terms.append(and_(SupplyTask.incident_id == found.id, ends))
    return or_(*terms) if terms else false()
