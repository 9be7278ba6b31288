"""The REST API (flask-smorest): every body and query is parsed by a schema that refuses
unknown fields; validation errors become 422 JSON with field messages."""

import re

from flask.views import MethodView
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest import abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from sqlalchemy import select
from webargs.flaskparser import FlaskParser

from app.drills.models import DrillRun
from app.errors import InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.supply.services import incident_figures

# Primary keys are 32-bit signed integers on PostgreSQL; a larger number cannot name a row
# and would fail in the database instead of giving 404.
MAX_ID = 2**31 - 1

# The URL converter for every row id: anything outside 1..MAX_ID is 404 before the view runs.
ID = f"int(min=1, max={MAX_ID})"


class StrictParser(FlaskParser):
    """Every location follows its schema, so an unknown query field is refused too, and a
    field given twice is refused rather than silently read as its first value."""

    DEFAULT_UNKNOWN_BY_LOCATION = {}

    def load_querystring(self, req, schema):
        return _refuse_repeated(super().load_querystring(req, schema), schema)

    def load_form(self, req, schema):
        return _refuse_repeated(super().load_form(req, schema), schema)


def _refuse_repeated(proxy, schema):
    """Pass the fields through, or refuse each single-valued field given more than once."""
    names = {field.data_key or name for name, field in schema.load_fields.items()}
    repeated = {
        key: ["Given more than once."]
        for key, values in proxy.data.lists()
        if key in names and key not in proxy.multiple_keys and len(values) > 1
    }
    if repeated:
        raise ValidationError(repeated)
    return proxy


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = StrictParser()


health = Blueprint("health", __name__, url_prefix="/api", description="Liveness")
incidents = Blueprint("incidents", __name__, url_prefix="/api/incidents", description="Incidents")
drills = Blueprint("drills", __name__, url_prefix="/api/drills", description="Drill runs")
alerts = Blueprint("alerts", __name__, url_prefix="/api/alerts", description="CAP alerts")

# Bodies taken as a CAP message: XML under any of its usual names, or raw bytes.
CAP_MEDIA_TYPES = (
    "application/cap+xml",
    "application/xml",
    "text/xml",
    "application/octet-stream",
)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class QueryInteger(fields.Integer):
    """A whole number written as ASCII digits only: int() alone would also take "-0", "+1",
    " 1", "1_000" and digits of other scripts."""

    DIGITS = re.compile(r"[0-9]+")

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not self.DIGITS.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class NoQuery(StrictSchema):
    """For endpoints that take no query fields: any field given is refused."""


class PageQuery(StrictSchema):
    limit = QueryInteger(load_default=100, validate=validate.Range(1, 1000))
    # Bounded so the database never sees a number wider than its own integers.
    offset = QueryInteger(load_default=0, validate=validate.Range(0, MAX_ID))


class IncidentSchema(StrictSchema):
    id = fields.Integer()
    kind = fields.String()
    title = fields.String()
    drill = fields.Boolean()
    status = fields.String()
    level = fields.String(allow_none=True)
    suggested_level = fields.String(allow_none=True)
    phase = fields.String(allow_none=True)
    opened_at = fields.AwareDateTime()
    activated_at = fields.AwareDateTime(allow_none=True)
    closed_at = fields.AwareDateTime(allow_none=True)


class FiguresSchema(StrictSchema):
    demand_meals = fields.Integer()
    allocated_meals = fields.Integer()
    delivered_meals = fields.Integer()
    unmet_meals = fields.Integer()
    suppliers_suspended = fields.Integer()


class SupplierSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    type = fields.String()
    lat = fields.Float()
    lon = fields.Float()
    breakfast_capacity = fields.Integer()
    lunch_capacity = fields.Integer()
    dinner_capacity = fields.Integer()
    rating = fields.String()
    risk_colour = fields.String()
    status = fields.String()


class DemandPointSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    type = fields.String()
    lat = fields.Float()
    lon = fields.Float()
    capacity = fields.Integer()


class DrillRunSchema(StrictSchema):
    id = fields.Integer()
    scenario = fields.String()
    status = fields.String()
    sim_start = fields.AwareDateTime()
    sim_end = fields.AwareDateTime()
    started_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)


class LanguageQuery(StrictSchema):
    lang = fields.String(
        load_default="zh-CN", validate=validate.Regexp(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
    )


class AlertSchema(StrictSchema):
    id = fields.Integer()
    identifier = fields.String()
    sender = fields.String()
    sent = fields.AwareDateTime()
    status = fields.String()
    msg_type = fields.String()
    languages = fields.List(fields.String())
    headline = fields.String(allow_none=True)
    severity = fields.String(allow_none=True)
    expired = fields.Boolean(allow_none=True)
    in_region = fields.Boolean(allow_none=True)
    action = fields.String()
    reason = fields.String(allow_none=True)
    incident_id = fields.Integer(allow_none=True)
    received_at = fields.AwareDateTime()


class AlertDetailSchema(AlertSchema):
    infos = fields.List(fields.Dict(), attribute="infos_in_order")
    references = fields.List(fields.Dict(), attribute="refs")
    geocodes = fields.List(fields.List(fields.String()))


@health.route("/health")
class Health(MethodView):
    @health.arguments(NoQuery, location="query", as_kwargs=True)
    @health.response(200)
    def get(self):
        """A static liveness answer, the baseline of the API benchmarks."""
        return {"status": "ok"}


@incidents.route("")
class Incidents(MethodView):
    @incidents.arguments(PageQuery, location="query")
    @incidents.response(200, IncidentSchema(many=True))
    def get(self, page):
        """Incidents, newest first."""
        query = select(Incident).order_by(Incident.id.desc())
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()


@incidents.route(f"/<{ID}:incident_id>")
class IncidentById(MethodView):
    @incidents.arguments(NoQuery, location="query", as_kwargs=True)
    @incidents.response(200, IncidentSchema)
    def get(self, incident_id):
        return _incident_or_404(incident_id)


@incidents.route(f"/<{ID}:incident_id>/figures")
class IncidentFigures(MethodView):
    @incidents.arguments(NoQuery, location="query", as_kwargs=True)
    @incidents.response(200, FiguresSchema)
    def get(self, incident_id):
        """Meals needed, allocated, delivered and unmet, for this incident only."""
        return incident_figures(_incident_or_404(incident_id))


def _incident_or_404(incident_id):
    return db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")


@drills.route("")
class DrillRuns(MethodView):
    @drills.arguments(PageQuery, location="query")
    @drills.response(200, DrillRunSchema(many=True))
    def get(self, page):
        query = select(DrillRun).order_by(DrillRun.id.desc())
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()


@alerts.route("")
class Alerts(MethodView):
    @alerts.arguments(PageQuery, location="query")
    @alerts.response(200, AlertSchema(many=True))
    def get(self, query):
        """Alerts received, newest first, drill runs' own copies left out."""
        from app.alerts.models import Alert

        rows = select(Alert).where(Alert.scope == "live").order_by(Alert.id.desc())
        return db.session.scalars(rows.limit(query["limit"]).offset(query["offset"])).all()

    @alerts.arguments(LanguageQuery, location="query", as_kwargs=True)
    @alerts.response(200)
    @alerts.alt_response(201, description="A message not seen before, recorded")
    @alerts.alt_response(403, description="Ingest is off or the token is wrong")
    @alerts.alt_response(413, description="Larger than 1 MiB")
    @alerts.alt_response(415, description="Not an XML body")
    @alerts.alt_response(422, description="Not a CAP 1.2 message, with the reason")
    def post(self, lang):
        """Ingest one CAP 1.2 message sent as the request body.

        Answers with the outcome (as `flask alerts ingest` prints it): 201 when the message
        was new, 200 when it had been received before. Needs `Authorization: Bearer` with
        the token set in BAOGONG_INGEST_TOKEN.
        """
        from flask import request

        from app.alerts.cap import MAX_BYTES, CapError, OversizedMessage
        from app.alerts.services import ingest_and_commit, read_limited
        from app.types import utcnow

        _check_ingest_token()
        mimetype = request.mimetype
        if mimetype not in CAP_MEDIA_TYPES:
            abort(415, message=f"send the message as one of {', '.join(CAP_MEDIA_TYPES)}")
        if (request.content_length or 0) > MAX_BYTES:
            abort(413, message=f"a CAP message is at most {MAX_BYTES} bytes")
        try:
            data = read_limited(request.stream, "the body")
            outcome = ingest_and_commit(data, at=utcnow(), language=lang)
        except OversizedMessage as error:
            abort(413, message=str(error))
        except CapError as error:
            raise InvalidInput("alert refused", {"alert": [str(error)]}) from None
        return outcome, 200 if outcome["duplicate"] else 201


@alerts.route(f"/<{ID}:alert_id>")
class AlertById(MethodView):
    @alerts.arguments(LanguageQuery, location="query", as_kwargs=True)
    @alerts.response(200, AlertDetailSchema)
    def get(self, alert_id, lang):
        """One alert with every info block, the one in `lang` (zh-CN by default) first."""
        from app.alerts.models import Alert
        from app.alerts.services import ordered_infos

        alert = db.get_or_404(Alert, alert_id, description=f"No alert {alert_id}.")
        if alert.scope != "live":
            abort(404, message=f"No alert {alert_id}.")
        # Set on this object only, for the response; nothing is written.
        alert.infos_in_order = ordered_infos(alert.infos or [], lang)
        return alert


def _check_ingest_token():
    """Alerts open incidents, so only a holder of the ingest token (BAOGONG_INGEST_TOKEN)
    may post them: a feed, not a person, so not a user's token."""
    import hmac

    from flask import current_app, request

    token = current_app.config["BAOGONG_INGEST_TOKEN"]
    if not token:
        abort(403, message="posting alerts over the API is off: set BAOGONG_INGEST_TOKEN")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    # Compared as bytes: compare_digest refuses str with characters outside ASCII.
    given = value.strip().encode("utf-8", "replace")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, token.encode("utf-8")):
        abort(403, message="a valid Authorization: Bearer token is needed for posting alerts")


def register(api):
    from app.accounts.api import blp as me
    from app.coordination.inbox_api import blp as notifications
    from app.coordination.sitreps_api import blp as sitreps
    from app.coordination.tasks_api import blp as coordination_tasks
    from app.duties.api import blp as duties
    from app.process.api import blp as plans
    from app.supply.api import blp as supply
    from app.techsupport.batches_api import blp as batches
    from app.techsupport.experts_api import blp as experts
    from app.techsupport.inspections_api import blp as inspections
    from app.techsupport.results_api import blp as results
    from app.techsupport.trace_api import blp as trace

    blueprints = (
        health,
        me,
        incidents,
        supply,
        drills,
        alerts,
        plans,
        duties,
        notifications,
        coordination_tasks,
        sitreps,
        trace,
        experts,
        inspections,
        batches,
        results,
    )
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
