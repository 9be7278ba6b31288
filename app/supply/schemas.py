"""Request and response schemas of the supply API. Every input schema refuses unknown
fields, NaN and Infinity, numbers out of range and instants without an offset."""

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.supply.models import (
    DEMAND_POINT_TYPES,
    DIETS,
    MEALS,
    RATINGS,
    RISK_COLOURS,
    SUPPLIER_TYPES,
)

MAX_MEALS = 1_000_000
COUNT = validate.Range(0, MAX_MEALS)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


def _count(**kwargs):
    return fields.Integer(strict=True, validate=COUNT, **kwargs)


def _latitude(value):
    if not -90 <= value <= 90:
        hint = "; swapped latitude and longitude?" if -180 <= value <= 180 else ""
        raise ValidationError(f"must be from -90 to 90, got {value}{hint}")


class Latitude(fields.Float):
    def __init__(self, **kwargs):
        super().__init__(allow_nan=False, validate=_latitude, **kwargs)


class Longitude(fields.Float):
    def __init__(self, **kwargs):
        super().__init__(allow_nan=False, validate=validate.Range(-180, 180), **kwargs)


class SupplierSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Length(1, 40))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    type = fields.String(required=True, validate=validate.OneOf(SUPPLIER_TYPES))
    street_code = fields.String(allow_none=True, validate=validate.Length(max=12))
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    breakfast_capacity = _count(required=True)
    lunch_capacity = _count(required=True)
    dinner_capacity = _count(required=True)
    rating = fields.String(required=True, validate=validate.OneOf(RATINGS))
    risk_colour = fields.String(required=True, validate=validate.OneOf(RISK_COLOURS))
    status = fields.String(dump_only=True)
    halal = fields.Boolean(load_default=False)
    vegetarian = fields.Boolean(load_default=False)
    infant = fields.Boolean(load_default=False)
    soft_diet = fields.Boolean(load_default=False)
    hot_holding = fields.Boolean(load_default=False)
    chilled = fields.Boolean(load_default=False)
    fictitious = fields.Boolean(load_default=False)


class DemandPointSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Length(1, 40))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    type = fields.String(required=True, validate=validate.OneOf(DEMAND_POINT_TYPES))
    street_code = fields.String(allow_none=True, validate=validate.Length(max=12))
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    capacity = _count(required=True)
    fictitious = fields.Boolean(load_default=False)


class CapacityReportSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    supplier = fields.String(required=True, validate=validate.Length(1, 40))
    meal = fields.String(required=True, validate=validate.OneOf(MEALS))
    meals = _count(required=True)
    valid_from = fields.AwareDateTime(required=True)
    note = fields.String(validate=validate.Length(max=500))


class CapacityReportOutSchema(StrictSchema):
    id = fields.Integer()
    supplier = fields.Function(lambda report: report.supplier.code)
    meal = fields.String()
    meals = fields.Integer()
    valid_from = fields.AwareDateTime()
    reported_at = fields.AwareDateTime()
    note = fields.String(allow_none=True)


class AllocationRequestSchema(StrictSchema):
    meal = fields.String(required=True, validate=validate.OneOf(MEALS))
    serve_at = fields.AwareDateTime(required=True)


class AllocationRunSchema(StrictSchema):
    id = fields.Integer()
    meal = fields.String()
    serve_at = fields.AwareDateTime()
    trigger = fields.String()
    method = fields.String()
    cost = fields.Float()
    demand_meals = fields.Integer()
    allocated_meals = fields.Integer()
    shortfall = fields.List(fields.Dict())
    moves = fields.List(fields.Dict(), allow_none=True)
    solved_at = fields.AwareDateTime()


class SupplyTaskRequestSchema(StrictSchema):
    """A supply task set by hand: the commander sends meals from one kitchen to one point."""

    supplier = fields.String(required=True, validate=validate.Length(1, 40))
    demand_point = fields.String(required=True, validate=validate.Length(1, 40))
    meal = fields.String(required=True, validate=validate.OneOf(MEALS))
    serve_at = fields.AwareDateTime(required=True)
    meals = fields.Integer(strict=True, required=True, validate=validate.Range(1, MAX_MEALS))
    by_diet = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("regular", *DIETS))),
        values=_count(),
        load_default=None,
    )

    @validates_schema
    def check_diets(self, data, **kwargs):
        by_diet = data.get("by_diet")
        if by_diet is not None and sum(by_diet.values()) != data.get("meals"):
            raise ValidationError("the diets must add up to meals", "by_diet")


class SupplyTaskSchema(StrictSchema):
    id = fields.Integer()
    key = fields.String()
    incident_id = fields.Integer()
    supplier = fields.Function(lambda task: task.supplier.code)
    demand_point = fields.Function(lambda task: task.demand_point.code)
    meal = fields.String()
    serve_at = fields.AwareDateTime()
    meals = fields.Integer()
    by_diet = fields.Dict()
    travel_minutes = fields.Float()
    status = fields.String()
    cancel_reason = fields.String(allow_none=True)
    replaces_id = fields.Integer(allow_none=True)


class HazardAreaSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    geometry = fields.Dict(required=True)
    declared_at = fields.AwareDateTime(dump_only=True)


class ImportQuerySchema(StrictSchema):
    coords = fields.String(
        load_default="wgs84", validate=validate.OneOf(("wgs84", "gcj02", "bd09"))
    )


class ExportQuerySchema(StrictSchema):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))
    headers = fields.String(load_default="zh", validate=validate.OneOf(("zh", "en")))
