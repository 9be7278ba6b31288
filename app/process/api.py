"""The plans API: plans and their versions, read by anyone; a new version put by a holder
of the right to change plans (see app.process.access).

A version, once stored, never changes: an incident keeps the version it was activated with.
"""

import json

from flask import request
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from app.api.routes import ID, MAX_ID, Blueprint, NoQuery, QueryInteger, StrictSchema
from app.errors import InvalidInput
from app.extensions import db
from app.process import services
from app.process.access import requires_plan_writer
from app.process.files import MAX_BYTES, parse_plan
from app.types import utcnow

blp = Blueprint("plans_api", __name__, url_prefix="/api/plans", description="Emergency plans")

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class PlanSummarySchema(StrictSchema):
    name = fields.String()
    version = fields.Integer()
    title = fields.String()
    title_en = fields.String(allow_none=True)
    jurisdiction = fields.String()
    imported_at = fields.AwareDateTime()


class PlanSchema(PlanSummarySchema):
    digest = fields.String()
    document = fields.Dict()


class PlanBodySchema(StrictSchema):
    document = fields.Dict(required=True)


class BaseVersionQuery(StrictSchema):
    base_version = QueryInteger(load_default=None, validate=validate.Range(1, MAX_ID))


class ImportOutcomeSchema(StrictSchema):
    plan = fields.String()
    version = fields.Integer()
    outcome = fields.String()


@blp.route("")
class Plans(MethodView):
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, PlanSummarySchema(many=True))
    def get(self):
        """The current version of every plan."""
        return services.latest_plans()


@blp.route("/<string(maxlength=100):name>")
class PlanByName(MethodView):
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, PlanSchema)
    def get(self, name):
        """The current version of a plan, with its whole document."""
        return services.latest_plan(name)

    @requires_plan_writer
    @blp.arguments(BaseVersionQuery, location="query", as_kwargs=True)
    @blp.response(200, ImportOutcomeSchema)
    @blp.alt_response(201, description="A new plan, or a new version of it")
    @blp.alt_response(403, description="No right to change plans")
    @blp.alt_response(409, description="base_version is no longer the current version")
    @blp.alt_response(413, description="Larger than 1 MiB")
    @blp.alt_response(415, description="Neither JSON nor YAML")
    @blp.alt_response(422, description="The plan is refused, every bad key named")
    def put(self, name, base_version):
        """Store a plan as its next version: JSON `{"document": {...}}`, or the YAML file
        itself with Content-Type application/yaml.

        201 when a version was created, 200 when the plan is the same as its current
        version. The name in the URL must be the document's. With `?base_version=N`, the
        version the change was made from, a plan changed meanwhile by someone else is 409
        rather than overwritten.
        """
        if (request.content_length or 0) > MAX_BYTES:
            abort(413, message=f"a plan is at most {MAX_BYTES} bytes")
        if request.mimetype in YAML_TYPES:
            body = request.get_data()
        elif request.mimetype == "application/json":
            body = _json_document()
        else:
            abort(415, message='send JSON {"document": ...} or YAML (application/yaml)')
        plan, outcome = _import(name, body, base_version)
        code = 200 if outcome == "unchanged" else 201
        return {"plan": plan.name, "version": plan.version, "outcome": outcome}, code


@blp.route(f"/<string(maxlength=100):name>/versions/<{ID}:version>")
class PlanVersion(MethodView):
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, PlanSchema)
    def get(self, name, version):
        """One version of a plan, as an incident activated with it still runs on it."""
        return services.plan_version(name, version)


def _json_document():
    """The plan document of a JSON body."""
    try:
        data = json.loads(request.get_data(), object_pairs_hook=_refuse_repeated_keys)
    except ValueError as error:
        raise InvalidInput("body refused", {"json": [f"not valid JSON: {error}"]}) from None
    try:
        return PlanBodySchema().load(data)["document"]
    except ValidationError as error:
        raise InvalidInput("body refused", error.messages) from None


def _refuse_repeated_keys(pairs):
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"key {repeated[0]!r} given twice")
    return dict(pairs)


def _import(name, body, base_version=None):
    """Check the plan in the body is this plan, import it, and commit once or roll back."""
    if isinstance(body, dict):
        services.validate_plan(body)
        document = body
    else:
        document = parse_plan(body, "plan")
    if document["name"] != name:
        raise InvalidInput(
            "plan refused", {"name": [f"the document names {document['name']!r}, the URL {name!r}"]}
        )
    services.check_base_version(name, base_version)
    try:
        plan, outcome = services.import_plan(document, utcnow())
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return plan, outcome
