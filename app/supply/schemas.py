"""Request and response schemas of the supply API. Every input schema refuses unknown
fields, NaN and Infinity, numbers out of range and instants without an offset."""

import re
from datetime import UTC

from marshmallow import ValidationError, fields, validate, validates_schema

from app.api.routes import StrictSchema
from app.supply.models import (
    DEMAND_POINT_TYPES,
    DIETS,
    MEALS,
    RATINGS,
    SUPPLIER_TYPES,
)

MAX_MEALS = 1_000_000
COUNT = validate.Range(0, MAX_MEALS)
# Instants outside these years are typing errors (and some are beyond what Python and the
# databases hold).
FIRST_YEAR, LAST_YEAR = 2000, 2100


class Text(fields.String):
    """Text as people type it, trimmed: never blank when required, never a control
    character (PostgreSQL cannot even store NUL), at most `limit` characters."""

    def __init__(self, limit, blank=False, **kwargs):
        super().__init__(validate=validate.Length(max=limit), **kwargs)
        self.blank = blank

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text and not self.blank:
            raise ValidationError("must not be blank")
        if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in text):
            raise ValidationError("must not hold control characters")
        return text


class Code(Text):
    """A code: letters, digits, - _ . only, so that " A-1 " and "A-1" cannot both exist."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(r"[A-Za-z0-9._-]+", text):
            raise ValidationError("use letters, digits, '-', '_' and '.' only")
        return text


class Instant(fields.AwareDateTime):
    """An ISO-8601 instant with its offset, in UTC, between the years 2000 and 2100."""

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        try:
            instant = instant.astimezone(UTC)
        except OverflowError:
            raise ValidationError("is outside the calendar") from None
        if not FIRST_YEAR <= instant.year < LAST_YEAR:
            raise ValidationError(f"must lie between {FIRST_YEAR} and {LAST_YEAR}")
        return instant


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


def _colour_of(supplier):
    """The colour computed for this answer (`risk`, set by the view), else the stored one."""
    risk = getattr(supplier, "risk", None)
    return risk.colour if risk is not None else supplier.risk_colour


def _reasons_of(supplier):
    risk = getattr(supplier, "risk", None)
    return list(risk.reasons) if risk is not None else []


def _refuse_colour(value):
    raise ValidationError(
        "is computed from the rating, test results and inspections; it cannot be set"
    )


class SupplierSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    code = Code(40, required=True)
    name = Text(200, required=True)
    type = fields.String(required=True, validate=validate.OneOf(SUPPLIER_TYPES))
    street_code = Text(12, blank=True, allow_none=True)
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    breakfast_capacity = _count(required=True)
    lunch_capacity = _count(required=True)
    dinner_capacity = _count(required=True)
    rating = fields.String(required=True, validate=validate.OneOf(RATINGS))
    # Computed by the rule of app/techsupport/risk.py: shown, never set.
    risk_colour = fields.Function(_colour_of, _refuse_colour)
    risk_reasons = fields.Function(_reasons_of, dump_only=True)
    status = fields.String(dump_only=True)
    halal = fields.Boolean(load_default=False)
    vegetarian = fields.Boolean(load_default=False)
    infant = fields.Boolean(load_default=False)
    soft_diet = fields.Boolean(load_default=False)
    hot_holding = fields.Boolean(load_default=False)
    chilled = fields.Boolean(load_default=False)
    fictitious = fields.Boolean(load_default=False)

    @validates_schema
    def check_holding(self, data, **kwargs):
        if data.get("hot_holding") and data.get("chilled"):
            raise ValidationError("a kitchen delivers hot or chilled, not both", "chilled")


class DemandPointSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    code = Code(40, required=True)
    name = Text(200, required=True)
    type = fields.String(required=True, validate=validate.OneOf(DEMAND_POINT_TYPES))
    street_code = Text(12, blank=True, allow_none=True)
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    capacity = _count(required=True)
    fictitious = fields.Boolean(load_default=False)


class SupplierChangeSchema(SupplierSchema):
    """A change to a supplier: any of its fields, given as a partial body."""


class DemandPointChangeSchema(DemandPointSchema):
    """A change to a demand point: any of its fields, given as a partial body."""


class CapacityReportSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    supplier = Code(40, required=True)
    meal = fields.String(required=True, validate=validate.OneOf(MEALS))
    meals = _count(required=True)
    valid_from = Instant(required=True)
    note = Text(500, blank=True)


class PointOpeningSchema(StrictSchema):
    """A demand point opened (or its headcount changed, or with 0 closed) for an incident,
    with how many of the people need each special diet."""

    id = fields.Integer(dump_only=True)
    demand_point = Code(40, required=True)
    headcount = _count(required=True)
    halal = _count(load_default=0)
    vegetarian = _count(load_default=0)
    infant = _count(load_default=0)
    soft_diet = _count(load_default=0)
    at = fields.AwareDateTime(dump_only=True)


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
    serve_at = Instant(required=True)


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

    supplier = Code(40, required=True)
    demand_point = Code(40, required=True)
    meal = fields.String(required=True, validate=validate.OneOf(MEALS))
    serve_at = Instant(required=True)
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
    name = Text(200, required=True)
    geometry = fields.Dict(required=True)
    declared_at = fields.AwareDateTime(dump_only=True)


class ImportQuerySchema(StrictSchema):
    coords = fields.String(
        load_default="wgs84", validate=validate.OneOf(("wgs84", "gcj02", "bd09"))
    )


class ExportQuerySchema(StrictSchema):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))
    headers = fields.String(load_default="zh", validate=validate.OneOf(("zh", "en")))
