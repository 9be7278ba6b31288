"""Drill scenario files: a YAML mapping of timed injects, checked field by field."""

import hashlib
import os
import re
from datetime import datetime, timedelta

import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from app.errors import InvalidInput
from app.process.models import LEVELS

OFFSET = re.compile(r"^\+(\d+):([0-5]\d)$")
INJECT_KINDS = (
    "receive_alert",
    "confirm_level",
    "confirm_duties",
    "open_points",
    "rapid_test",
    "change_level",
    "end_response",
)


class AwareDateTime(fields.AwareDateTime):
    """An ISO-8601 instant that must carry its offset."""


class PointOpeningSchema(Schema):
    class Meta:
        unknown = RAISE

    point = fields.String(required=True)
    headcount = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    halal = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    vegetarian = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    infant = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    soft_diet = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))

    @validates_schema
    def check_diets(self, data, **kwargs):
        special = sum(data.get(k, 0) for k in ("halal", "vegetarian", "infant", "soft_diet"))
        if special > data.get("headcount", 0):
            raise ValidationError("special diets add up to more than the headcount", "headcount")


class InjectSchema(Schema):
    """One timed event of the scenario; `at` is "+HH:MM" from the start."""

    class Meta:
        unknown = RAISE

    at = fields.String(required=True, validate=validate.Regexp(OFFSET, error="use +HH:MM"))
    do = fields.String(required=True, validate=validate.OneOf(INJECT_KINDS))
    note = fields.String()
    level = fields.String(validate=validate.OneOf(LEVELS))
    reason = fields.String()
    departments = fields.Raw()
    except_ = fields.List(fields.String(), data_key="except", load_default=list)
    points = fields.List(fields.Nested(PointOpeningSchema))
    supplier = fields.String()
    analyte = fields.String()
    method = fields.String()
    value = fields.Float(allow_nan=False)
    limit = fields.Float(allow_nan=False)
    unit = fields.String()
    tested_by = fields.String()

    @validates_schema
    def check_kind(self, data, **kwargs):
        needs = {
            "confirm_duties": ("departments",),
            "open_points": ("points",),
            "rapid_test": ("supplier", "analyte", "method", "value", "limit", "unit", "tested_by"),
            "change_level": ("level", "reason"),
            "end_response": ("reason",),
        }
        missing = [k for k in needs.get(data.get("do"), ()) if k not in data]
        if missing:
            raise ValidationError({k: ["required for " + data["do"]] for k in missing})


class SupplierBehaviourSchema(Schema):
    """When simulated suppliers act, in minutes before the meal is served."""

    class Meta:
        unknown = RAISE

    accept_after_minutes = fields.Integer(strict=True, load_default=10)
    cook_before_serving_minutes = fields.Integer(strict=True, load_default=120)
    cooked_before_serving_minutes = fields.Integer(strict=True, load_default=60)
    leave_before_serving_minutes = fields.Integer(strict=True, load_default=55)
    sample_grams = fields.Integer(strict=True, load_default=150)
    sample_kept_at = fields.String(load_default="留样冰箱")
    hot_temp_c = fields.Float(load_default=66.0)
    ambient_temp_c = fields.Float(load_default=40.0)


class ScenarioSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True)
    title = fields.String(required=True)
    title_en = fields.String()
    note = fields.String()
    plan = fields.String(required=True)
    region = fields.String(required=True)
    start = AwareDateTime(required=True, format="iso")
    duration_hours = fields.Integer(strict=True, required=True, validate=validate.Range(1, 24 * 30))
    alert = fields.String(required=True)
    figures = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    plan_meals_ahead_minutes = fields.Integer(strict=True, load_default=180)
    suppliers = fields.Nested(SupplierBehaviourSchema, load_default=lambda: {})
    dishes = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("breakfast", "lunch", "dinner"))),
        values=fields.List(fields.String(), validate=validate.Length(min=1)),
        required=True,
    )
    expect = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    injects = fields.List(fields.Nested(InjectSchema), required=True)


class Scenario:
    """A loaded, checked scenario with its injects resolved to instants."""

    def __init__(self, path, data, digest):
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))
        self.digest = digest
        self.data = data
        self.start = data["start"]
        self.end = self.start + timedelta(hours=data["duration_hours"])
        for inject in data["injects"]:
            inject["when"] = self.start + _offset(inject["at"])
        self.injects = sorted(data["injects"], key=lambda i: i["when"])

    def __getattr__(self, name):
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    def alert_bytes(self):
        with open(os.path.join(self.folder, self.data["alert"]), "rb") as handle:
            return handle.read()


def _offset(text):
    hours, minutes = OFFSET.match(text).groups()
    return timedelta(hours=int(hours), minutes=int(minutes))


def load_scenario(path):
    """Read and check a scenario file; refuse it with every bad field named."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise InvalidInput("scenario not readable", {"file": [str(error)]}) from None
    try:
        document = yaml.safe_load(raw.decode("utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InvalidInput("scenario is not valid YAML", {"file": [str(error)]}) from None
    if not isinstance(document, dict):
        raise InvalidInput("scenario refused", {"file": ["expected one mapping"]})
    if isinstance(document.get("start"), datetime):
        document["start"] = document["start"].isoformat()
    try:
        data = ScenarioSchema().load(document)
    except ValidationError as error:
        raise InvalidInput("scenario refused", error.messages) from None
    if not os.path.exists(os.path.join(os.path.dirname(os.path.abspath(path)), data["alert"])):
        raise InvalidInput("scenario refused", {"alert": [f"no file {data['alert']}"]})
    return Scenario(path, data, hashlib.sha256(raw).hexdigest())

