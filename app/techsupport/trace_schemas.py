"""How a trace is written out over the API: a demand point's batches with their supplier,
samples and tests, and an incident's attached trace with the samples held for it."""

from marshmallow import fields

from app.api.routes import StrictSchema


class TracedTestSchema(StrictSchema):
    id = fields.Integer()
    kind = fields.String()
    analyte = fields.String()
    method = fields.String()
    value = fields.Float()
    limit = fields.Float()
    unit = fields.String()
    passed = fields.Boolean()
    tested_by = fields.String()
    tested_at = fields.String()


class TracedSampleSchema(StrictSchema):
    id = fields.Integer()
    dish = fields.String()
    grams = fields.Integer()
    kept_at = fields.String()
    retained_at = fields.String()
    keep_until = fields.String()
    discarded_at = fields.String(allow_none=True)
    held = fields.Boolean()
    tests = fields.List(fields.Nested(TracedTestSchema))


class TracedSupplierSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    risk_colour = fields.String()


class TracedBatchSchema(StrictSchema):
    id = fields.Integer()
    supplier = fields.Nested(TracedSupplierSchema)
    meal = fields.String()
    meals = fields.Integer()
    dishes = fields.List(fields.String())
    incident = fields.Integer()
    drill = fields.Boolean()
    cooked_at = fields.String(allow_none=True)
    left_at = fields.String(allow_none=True)
    delivered_at = fields.String()
    dispatch_temp_c = fields.Float(allow_none=True)
    arrival_temp_c = fields.Float(allow_none=True)
    status = fields.String()
    flag = fields.String(allow_none=True)
    samples = fields.List(fields.Nested(TracedSampleSchema))
    # Results on the batch that name no sample.
    tests = fields.List(fields.Nested(TracedTestSchema))


class TracedPointSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class TraceSchema(StrictSchema):
    """Every batch delivered to a demand point, oldest first; times in UTC."""

    demand_point = fields.Nested(TracedPointSchema)
    start = fields.String(data_key="from", attribute="from", allow_none=True)
    end = fields.String(data_key="to", attribute="to", allow_none=True)
    # On an incident's trace: the hours before the report it covers.
    hours = fields.Integer()
    batches = fields.List(fields.Nested(TracedBatchSchema))


class HoldSchema(StrictSchema):
    id = fields.Integer()
    sample_id = fields.Integer()
    reason = fields.String()
    held_at = fields.AwareDateTime()
    released_at = fields.AwareDateTime(allow_none=True)


class IncidentTraceSchema(StrictSchema):
    incident_id = fields.Integer()
    trace = fields.Nested(TraceSchema, allow_none=True)
    holds = fields.List(fields.Nested(HoldSchema))
