"""The REST API (flask-smorest): every body and query is parsed by a schema that refuses
unknown fields; validation errors become 422 JSON with field messages."""

from flask.views import MethodView
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import RAISE, Schema, fields, validate
from webargs.flaskparser import FlaskParser
from sqlalchemy import select

from app.drills.models import DrillRun
from app.extensions import db
from app.incidents.models import Incident
from app.supply.models import DemandPoint, Supplier
from app.supply.services import incident_figures



class StrictParser(FlaskParser):
    """Every location follows its schema, so an unknown query field is refused too."""

    DEFAULT_UNKNOWN_BY_LOCATION = {}


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = StrictParser()


health = Blueprint("health", __name__, url_prefix="/api", description="Liveness")
incidents = Blueprint("incidents", __name__, url_prefix="/api/incidents", description="Incidents")
supply = Blueprint("supply", __name__, url_prefix="/api", description="Suppliers and demand")
drills = Blueprint("drills", __name__, url_prefix="/api/drills", description="Drill runs")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class PageQuery(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class IncidentSchema(StrictSchema):
    id = fields.Integer()
    kind = fields.String()
    title = fields.String()
    drill = fields.Boolean()
    status = fields.String()
    level = fields.String(allow_none=True)
    suggested_level = fields.String(allow_none=True)
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


@health.route("/health")
class Health(MethodView):
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


@incidents.route("/<int:incident_id>")
class IncidentById(MethodView):
    @incidents.response(200, IncidentSchema)
    def get(self, incident_id):
        return db.get_or_404(Incident, incident_id)


@incidents.route("/<int:incident_id>/figures")
class IncidentFigures(MethodView):
    @incidents.response(200, FiguresSchema)
    def get(self, incident_id):
        """Meals needed, allocated, delivered and unmet, for this incident only."""
        return incident_figures(db.get_or_404(Incident, incident_id))


@supply.route("/suppliers")
class Suppliers(MethodView):
    @supply.arguments(PageQuery, location="query")
    @supply.response(200, SupplierSchema(many=True))
    def get(self, page):
        query = select(Supplier).order_by(Supplier.id)
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()


@supply.route("/demand-points")
class DemandPoints(MethodView):
    @supply.arguments(PageQuery, location="query")
    @supply.response(200, DemandPointSchema(many=True))
    def get(self, page):
        query = select(DemandPoint).order_by(DemandPoint.id)
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()


@drills.route("")
class DrillRuns(MethodView):
    @drills.arguments(PageQuery, location="query")
    @drills.response(200, DrillRunSchema(many=True))
    def get(self, page):
        query = select(DrillRun).order_by(DrillRun.id.desc())
        return db.session.scalars(query.limit(page["limit"]).offset(page["offset"])).all()


def register(api):
    for blueprint in (health, incidents, supply, drills):
        api.register_blueprint(blueprint)
