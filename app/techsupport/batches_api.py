"""Batches and retained samples over the API: a supplier accepts its supply task, starts
batches of it, reports each cooked, sampled, dispatched, delivered and served; anyone on
staff reads a batch with its samples and their countdown; samples are listed, discarded
once their keeping time is over, and their holds released.

A supplier user acts for its own supplier's tasks only; the commander for any. Every step
takes `at` (ISO-8601 with an offset) from the body, or the incident's clock. The request
boundary commits once.
"""

import logging

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, MAX_ID, Blueprint, NoQuery, PageQuery, QueryInteger, StrictSchema
from app.clock.services import now
from app.duties.api import STAFF
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.supply import services as supply
from app.supply.models import Batch, Supplier, SupplyTask
from app.supply.schemas import MAX_MEALS, Code, Instant, Text
from app.techsupport import batches
from app.techsupport import samples as retention
from app.techsupport.batches import DISH_LENGTH, MAX_DISHES, TEMPERATURE_RANGE_C
from app.techsupport.models import RetainedSample, SampleHold
from app.types import isoformat_utc

log = logging.getLogger(__name__)

blp = Blueprint("batches", __name__, url_prefix="/api", description="Batches and retained samples")

READERS = (*STAFF, "supplier")


class Celsius(fields.Float):
    """A temperature in °C as a JSON number: finite, from -30 to 100."""

    def __init__(self, **kwargs):
        low, high = TEMPERATURE_RANGE_C
        super().__init__(allow_nan=False, validate=validate.Range(low, high), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class AtSchema(StrictSchema):
    at = Instant(load_default=None)


class BatchStartSchema(AtSchema):
    dishes = fields.List(Text(DISH_LENGTH), required=True, validate=validate.Length(1, MAX_DISHES))
    meals = fields.Integer(strict=True, required=True, validate=validate.Range(1, MAX_MEALS))


class SampleEntrySchema(StrictSchema):
    dish = Text(DISH_LENGTH, required=True)
    grams = fields.Integer(
        strict=True, required=True, validate=validate.Range(1, retention.MAX_GRAMS)
    )
    kept_at = Text(retention.PLACE_LENGTH, required=True)


class SamplesSchema(AtSchema):
    samples = fields.List(
        fields.Nested(SampleEntrySchema), required=True, validate=validate.Length(1, MAX_DISHES)
    )
    retained_by = Text(retention.NAME_LENGTH, load_default=None)


class TemperatureSchema(AtSchema):
    temp_c = Celsius(required=True)


class ReleaseSchema(AtSchema):
    reason = Text(retention.REASON_LENGTH, required=True)


class SampleQuery(PageQuery):
    supplier = Code(40, load_default=None)
    state = fields.String(load_default=None, validate=validate.OneOf(retention.SAMPLE_STATES))
    incident = QueryInteger(load_default=None, validate=validate.Range(1, MAX_ID))


class SupplierRefSchema(StrictSchema):
    code = fields.String()
    name = fields.String()
    risk_colour = fields.String()


class HoldOutSchema(StrictSchema):
    id = fields.Integer()
    sample_id = fields.Integer()
    incident_id = fields.Integer()
    incident_title = fields.String()
    reason = fields.String()
    held_at = fields.String()
    open = fields.Boolean()
    released_at = fields.String(allow_none=True)
    released_by = fields.String(allow_none=True)
    release_reason = fields.String(allow_none=True)


class SampleOutSchema(StrictSchema):
    id = fields.Integer()
    batch_id = fields.Integer()
    incident_id = fields.Integer()
    supplier = fields.Nested(SupplierRefSchema)
    dish = fields.String()
    grams = fields.Integer()
    kept_at = fields.String()
    retained_by = fields.String(allow_none=True)
    retained_at = fields.String()
    keep_until = fields.String()
    hours_left = fields.Float()
    state = fields.String()
    held = fields.Boolean()
    holds = fields.List(fields.Nested(HoldOutSchema))
    discarded_at = fields.String(allow_none=True)
    discarded_by = fields.String(allow_none=True)


class BatchOutSchema(StrictSchema):
    id = fields.Integer()
    supply_task_id = fields.Integer()
    task_key = fields.String()
    incident_id = fields.Integer()
    supplier = fields.Nested(SupplierRefSchema)
    demand_point = fields.String()
    demand_point_name = fields.String()
    meal = fields.String()
    meals = fields.Integer()
    dishes = fields.List(fields.String())
    status = fields.String()
    flag = fields.String(allow_none=True)
    cooked_at = fields.String(allow_none=True)
    left_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    received_at = fields.String(allow_none=True)
    dispatch_temp_c = fields.Float(allow_none=True)
    arrival_temp_c = fields.Float(allow_none=True)
    samples_missing = fields.List(fields.String())
    samples = fields.List(fields.Nested(SampleOutSchema))


class TaskBatchesOutSchema(StrictSchema):
    supply_task_id = fields.Integer()
    task_key = fields.String()
    incident_id = fields.Integer()
    supplier = fields.Nested(SupplierRefSchema)
    status = fields.String()
    cancel_reason = fields.String(allow_none=True)
    meals = fields.Integer()
    meals_left = fields.Integer()
    batches = fields.List(fields.Nested(BatchOutSchema))


# Rows, shared with the pages -----------------------------------------------------------


def supplier_ref(supplier):
    return {"code": supplier.code, "name": supplier.name, "risk_colour": supplier.risk_colour}


def hold_row(hold):
    incident = db.session.get(Incident, hold.incident_id)
    return {
        "id": hold.id,
        "sample_id": hold.sample_id,
        "incident_id": hold.incident_id,
        "incident_title": incident.title,
        "reason": hold.reason,
        "held_at": isoformat_utc(hold.held_at),
        "open": hold.released_at is None,
        "released_at": isoformat_utc(hold.released_at),
        "released_by": hold.released_by,
        "release_reason": hold.release_reason,
    }


def sample_row(sample, at):
    """A sample with its countdown on the clock `at` of its batch's incident."""
    task = sample.batch.supply_task
    return {
        "id": sample.id,
        "batch_id": sample.batch_id,
        "incident_id": task.incident_id,
        "supplier": supplier_ref(task.supplier),
        "dish": sample.dish,
        "grams": sample.grams,
        "kept_at": sample.kept_at,
        "retained_by": sample.retained_by,
        "retained_at": isoformat_utc(sample.retained_at),
        "keep_until": isoformat_utc(sample.keep_until),
        "hours_left": retention.hours_left(sample, at),
        "state": retention.sample_state(sample, at),
        "held": bool(retention.open_holds(sample)),
        "holds": [hold_row(hold) for hold in sample.holds],
        "discarded_at": isoformat_utc(sample.discarded_at),
        "discarded_by": sample.discarded_by,
    }


def batch_row(batch, at):
    task = batch.supply_task
    return {
        "id": batch.id,
        "supply_task_id": task.id,
        "task_key": task.key,
        "incident_id": task.incident_id,
        "supplier": supplier_ref(task.supplier),
        "demand_point": task.demand_point.code,
        "demand_point_name": task.demand_point.name,
        "meal": batch.meal,
        "meals": batch.meals,
        "dishes": list(batch.dishes),
        "status": batch.status,
        "flag": batch.flag,
        "cooked_at": isoformat_utc(batch.cooked_at),
        "left_at": isoformat_utc(batch.left_at),
        "delivered_at": isoformat_utc(batch.delivered_at),
        "received_at": isoformat_utc(batch.received_at),
        "dispatch_temp_c": batch.dispatch_temp_c,
        "arrival_temp_c": batch.arrival_temp_c,
        "samples_missing": batches.missing_samples(batch),
        "samples": [sample_row(s, at) for s in retention.samples_of(batch)],
    }


def task_batches_row(task, at):
    rows = batches.batches_of(task)
    return {
        "supply_task_id": task.id,
        "task_key": task.key,
        "incident_id": task.incident_id,
        "supplier": supplier_ref(task.supplier),
        "status": task.status,
        "cancel_reason": task.cancel_reason,
        "meals": task.meals,
        "meals_left": batches.meals_left(task, rows),
        "batches": [batch_row(b, at) for b in rows],
    }


# Who may act ---------------------------------------------------------------------------


def may_act_for(user, supplier_id):
    """The commander acts for any supplier; a supplier user for its own only."""
    return user.role == "commander" or (
        user.role == "supplier" and user.supplier_id is not None and user.supplier_id == supplier_id
    )


def may_see(user, supplier_id):
    """Staff read every supplier's batches and samples; a supplier user its own only."""
    return user.role != "supplier" or may_act_for(user, supplier_id)


def _act_for(supplier_id):
    user = acting_user()
    if not may_act_for(user, supplier_id):
        supplier = db.session.get(Supplier, supplier_id)
        raise Forbidden(f"{user.username} reports only for its own supplier, not {supplier.code}")
    return user


def _see(supplier_id):
    user = acting_user()
    if not may_see(user, supplier_id):
        supplier = db.session.get(Supplier, supplier_id)
        raise Forbidden(
            f"{user.username} sees only its own supplier's batches, not {supplier.code}"
        )
    return user


def person_name(user):
    return user.display_name or user.username


# Loading -------------------------------------------------------------------------------


def locked_task(task_id):
    """The supply task, read afresh and held until the commit; 404 when there is none."""
    task = db.session.scalar(
        select(SupplyTask)
        .where(SupplyTask.id == task_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if task is None:
        abort(404, message=f"No supply task {task_id}.")
    return task


def locked_batch(batch_id):
    """The batch and its task, both held until the commit (the task first, as every
    change of a task's batches does); 404 when there is none."""
    task_id = db.session.scalar(select(Batch.supply_task_id).where(Batch.id == batch_id))
    if task_id is None:
        abort(404, message=f"No batch {batch_id}.")
    locked_task(task_id)
    return db.session.scalar(
        select(Batch)
        .where(Batch.id == batch_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _live_incident(task):
    incident = db.session.get(Incident, task.incident_id)
    if incident.status == "closed":
        raise Conflict(f"incident {incident.id} is closed")
    return incident


def clock_and_at(incident, body):
    """(the incident's clock, the instant of the step: `at` from the body or the clock)."""
    clock = now(incident)
    at = body.get("at") or clock
    batches.check_instant(at, "at", clock)
    return clock, at


def _batch_step(batch_id, body, step):
    """Lock the batch, check who acts, run `step(batch, at, clock)`, commit."""
    batch = locked_batch(batch_id)
    _act_for(batch.supplier_id)
    incident = _live_incident(batch.supply_task)
    clock, at = clock_and_at(incident, body)
    step(batch, at, clock)
    db.session.commit()
    return batch_row(batch, now(incident))


# Supply tasks --------------------------------------------------------------------------


@blp.route(f"/supply-tasks/<{ID}:task_id>/accept")
class AcceptTask(MethodView):
    @require_roles("commander", "supplier")
    @blp.arguments(AtSchema)
    @blp.response(200, TaskBatchesOutSchema)
    @blp.alt_response(403, description="Another supplier's task")
    @blp.alt_response(409, description="The task is accepted already, or cancelled")
    def post(self, body, task_id):
        """The supplier takes the task on."""
        task = locked_task(task_id)
        _act_for(task.supplier_id)
        incident = _live_incident(task)
        _clock, at = clock_and_at(incident, body)
        supply.accept_task(task, at)
        db.session.commit()
        return task_batches_row(task, now(incident))


@blp.route(f"/supply-tasks/<{ID}:task_id>/batches")
class TaskBatches(MethodView):
    @require_roles(*READERS)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, TaskBatchesOutSchema)
    def get(self, task_id):
        """The task's batches with their samples, and the meals no batch has taken yet."""
        task = db.get_or_404(SupplyTask, task_id, description=f"No supply task {task_id}.")
        _see(task.supplier_id)
        return task_batches_row(task, now(db.session.get(Incident, task.incident_id)))

    @require_roles("commander", "supplier")
    @blp.arguments(BatchStartSchema)
    @blp.response(201, BatchOutSchema)
    @blp.alt_response(403, description="Another supplier's task")
    @blp.alt_response(409, description="More meals than the task has left, or a wrong state")
    def post(self, body, task_id):
        """Start cooking a batch of `meals` with its `dishes`. The task's batches together
        take at most its meals; more is refused with the meals left."""
        # TODO: no Idempotency-Key: a request sent twice (a retry on a bad line) starts two
        # batches while meals are left, and nothing removes the one never cooked.
        task = locked_task(task_id)
        _act_for(task.supplier_id)
        incident = _live_incident(task)
        clock, at = clock_and_at(incident, body)
        batch = supply.start_batch(
            task, dishes=body["dishes"], meals=body["meals"], at=at, clock=clock
        )
        db.session.commit()
        return batch_row(batch, now(incident))


# Batches -------------------------------------------------------------------------------


@blp.route(f"/batches/<{ID}:batch_id>")
class BatchById(MethodView):
    @require_roles(*READERS)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, BatchOutSchema)
    def get(self, batch_id):
        """One batch: its steps, temperatures, flag, and its samples with their countdown
        (hours left, held or not, the holds)."""
        batch = db.get_or_404(Batch, batch_id, description=f"No batch {batch_id}.")
        _see(batch.supplier_id)
        return batch_row(batch, now(batches.incident_of(batch)))


@blp.route(f"/batches/<{ID}:batch_id>/cooked")
class Cooked(MethodView):
    @require_roles("commander", "supplier")
    @blp.arguments(AtSchema)
    @blp.response(200, BatchOutSchema)
    @blp.alt_response(403, description="Another supplier's batch")
    @blp.alt_response(409, description="The batch is not cooking")
    def post(self, body, batch_id):
        """The batch is cooked: the holding window counts from now (or `at`)."""
        return _batch_step(
            batch_id, body, lambda b, at, clock: supply.finish_cooking(b, at, clock=clock)
        )


@blp.route(f"/batches/<{ID}:batch_id>/samples")
class Samples(MethodView):
    @require_roles("commander", "supplier")
    @blp.arguments(SamplesSchema)
    @blp.response(201, BatchOutSchema)
    @blp.alt_response(403, description="Another supplier's batch")
    @blp.alt_response(409, description="A dish sampled already, or the batch has left")
    def post(self, body, batch_id):
        """Retained samples, one per dish: `samples` is a list of {dish, grams, kept_at};
        each at least the plan's least weight, kept for the plan's hours from `at`."""

        def step(batch, at, clock):
            incident = batches.incident_of(batch)
            min_grams, keep_hours = retention.sample_rules(incident)
            retention.record_samples(
                batch,
                body["samples"],
                at=at,
                by=body["retained_by"] or person_name(acting_user()),
                min_grams=min_grams,
                keep_hours=keep_hours,
                clock=clock,
            )

        return _batch_step(batch_id, body, step)


@blp.route(f"/batches/<{ID}:batch_id>/dispatch")
class Dispatch(MethodView):
    @require_roles("commander", "supplier")
    @blp.arguments(TemperatureSchema)
    @blp.response(200, BatchOutSchema)
    @blp.alt_response(403, description="Another supplier's batch")
    @blp.alt_response(409, description="Not cooked, or a dish without its sample")
    def post(self, body, batch_id):
        """The batch leaves the kitchen at `temp_c`; refused until every dish has its
        retained sample, naming the dishes missing."""
        return _batch_step(
            batch_id,
            body,
            lambda b, at, clock: supply.dispatch_batch(
                b, at=at, temp_c=body["temp_c"], clock=clock
            ),
        )


@blp.route(f"/batches/<{ID}:batch_id>/deliver")
class Deliver(MethodView):
    @require_roles("commander", "supplier")
    @blp.arguments(TemperatureSchema)
    @blp.response(200, BatchOutSchema)
    @blp.alt_response(403, description="Another supplier's batch")
    @blp.alt_response(409, description="The batch is not on its way")
    def post(self, body, batch_id):
        """The batch arrives at `temp_c`. One that breaks the holding rule is recorded as
        flagged (status "flagged", with the reason): it is not served and the commander
        is told."""
        return _batch_step(
            batch_id,
            body,
            lambda b, at, clock: supply.deliver_batch(b, at=at, temp_c=body["temp_c"], clock=clock),
        )


@blp.route(f"/batches/<{ID}:batch_id>/receive")
class Receive(MethodView):
    @require_roles("commander", "supplier")
    @blp.arguments(AtSchema)
    @blp.response(200, BatchOutSchema)
    @blp.alt_response(403, description="Another supplier's batch")
    @blp.alt_response(409, description="Flagged, now or before: not served")
    def post(self, body, batch_id):
        """The point serves the batch from `at`. The holding rule is checked again: a
        batch too late is flagged (kept so) and the serving refused with 409."""
        batch = locked_batch(batch_id)
        _act_for(batch.supplier_id)
        incident = _live_incident(batch.supply_task)
        clock, at = clock_and_at(incident, body)
        supply.receive_batch(batch, at, clock=clock)
        db.session.commit()
        if batch.status == "flagged":
            raise Conflict(f"batch {batch.id} is not served: {batch.flag}")
        return batch_row(batch, now(incident))


# Samples -------------------------------------------------------------------------------


def _clocks():
    """now() of each incident, asked once per request."""
    cache = {}

    def clock_of(incident_id):
        if incident_id not in cache:
            cache[incident_id] = now(db.session.get(Incident, incident_id))
        return cache[incident_id]

    return clock_of


def list_samples(user, query):
    """The samples a user may see under the query's filters, each with its countdown."""
    supplier = None
    if query.get("supplier"):
        supplier = supply.supplier_by_code(query["supplier"])
    if user.role == "supplier":
        if supplier is not None and supplier.id != user.supplier_id:
            raise Forbidden(f"{user.username} sees only its own supplier's samples")
        supplier = user.supplier
        if supplier is None:
            raise Forbidden(f"{user.username} acts for no supplier")
    incident = None
    if query.get("incident"):
        incident = db.session.get(Incident, query["incident"])
        if incident is None:
            raise InvalidInput(
                "unknown incident", {"incident": [f"no incident {query['incident']}"]}
            )
    rows = retention.find_samples(
        supplier=supplier,
        state=query.get("state"),
        incident=incident,
        limit=query.get("limit", 100),
        offset=query.get("offset", 0),
    )
    clock_of = _clocks()
    return [sample_row(s, clock_of(s.batch.supply_task.incident_id)) for s in rows]


@blp.route("/samples")
class SampleList(MethodView):
    @require_roles(*READERS)
    @blp.arguments(SampleQuery, location="query")
    @blp.response(200, SampleOutSchema(many=True))
    def get(self, query):
        """Retained samples, soonest to end first: by `supplier` (code), `state` (kept,
        held, expired, discarded; all but discarded when not given) and `incident` (cooked
        for it or held for it). A supplier user sees its own only."""
        return list_samples(acting_user(), query)


def may_discard(user, sample):
    return user.role == "inspector" or may_act_for(user, sample.batch.supplier_id)


def discard(sample_id, user, at=None):
    """Discard a sample for `user` (at `at`, or its incident's clock); the caller commits."""
    sample = db.session.scalar(
        select(RetainedSample)
        .where(RetainedSample.id == sample_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if sample is None:
        abort(404, message=f"No sample {sample_id}.")
    if not may_discard(user, sample):
        raise Forbidden(f"{user.username} discards only its own supplier's samples")
    db.session.expire(sample, ["holds"])
    clock = now(batches.incident_of(sample.batch))
    retention.discard_sample(sample, person_name(user), at or clock, clock=clock)
    return sample, clock


@blp.route(f"/samples/<{ID}:sample_id>/discard")
class Discard(MethodView):
    @require_roles("commander", "inspector", "supplier")
    @blp.arguments(AtSchema)
    @blp.response(200, SampleOutSchema)
    @blp.alt_response(403, description="Another supplier's sample")
    @blp.alt_response(409, description="Still counting down, held, or discarded already")
    def post(self, body, sample_id):
        """Discard a sample: refused before its keeping time ends (with the time left) and
        while a hold on it is open (naming the incident)."""
        sample, clock = discard(sample_id, acting_user(), body.get("at"))
        db.session.commit()
        return sample_row(sample, clock)


def release(hold_id, user, reason, at=None):
    """Release a hold for `user`; the caller commits."""
    hold = db.session.scalar(
        select(SampleHold)
        .where(SampleHold.id == hold_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if hold is None:
        abort(404, message=f"No sample hold {hold_id}.")
    clock = now(db.session.get(Incident, hold.incident_id))
    retention.release_hold(hold, person_name(user), reason, at or clock, clock=clock)
    return hold


@blp.route(f"/sample-holds/<{ID}:hold_id>/release")
class Release(MethodView):
    @require_roles("commander", "inspector")
    @blp.arguments(ReleaseSchema)
    @blp.response(200, HoldOutSchema)
    @blp.alt_response(409, description="Released already")
    def post(self, body, hold_id):
        """End a hold on a sample, with the `reason`; the sample may be discarded once no
        hold is open and its keeping time is over."""
        hold = release(hold_id, acting_user(), body["reason"], body.get("at"))
        db.session.commit()
        return hold_row(hold)
