"""The trace over the API: what reached a demand point, and the trace attached to a
suspected-poisoning incident with the samples held for it.

Signed-in staff only: a trace names every supplier that served the point, which one
supplier's user has no business reading.
"""

from flask.views import MethodView
from marshmallow import ValidationError, validates_schema
from sqlalchemy import select

from app.accounts.access import require_roles
from app.api.routes import ID, Blueprint, NoQuery, StrictSchema
from app.duties.api import STAFF
from app.extensions import db
from app.incidents.models import Incident
from app.supply.models import DemandPoint
from app.supply.schemas import Instant
from app.techsupport.models import SampleHold
from app.techsupport.trace import trace_demand_point
from app.techsupport.trace_schemas import IncidentTraceSchema, TraceSchema

blp = Blueprint("trace", __name__, url_prefix="/api", description="Trace of deliveries")


class TraceQuery(StrictSchema):
    start = Instant(data_key="from", load_default=None)
    end = Instant(data_key="to", load_default=None)

    @validates_schema
    def check_order(self, data, **kwargs):
        if data["start"] and data["end"] and data["start"] > data["end"]:
            raise ValidationError("must not be after to", "from")


def incident_holds(incident):
    """The samples held for an incident, as they stand now (released or not)."""
    return db.session.scalars(
        select(SampleHold).filter_by(incident_id=incident.id).order_by(SampleHold.id)
    ).all()


@blp.route(f"/demand-points/<{ID}:point_id>/trace")
class DemandPointTrace(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(TraceQuery, location="query")
    @blp.response(200, TraceSchema)
    @blp.alt_response(403, description="A supplier's user: the trace names other suppliers")
    def get(self, query, point_id):
        """Every batch delivered to the demand point, real and drill alike, oldest first,
        with its supplier, retained samples and tests; `from` and `to` (ISO-8601 with an
        offset, both inclusive) bound the delivery time. Flagged batches are included."""
        point = db.get_or_404(DemandPoint, point_id, description=f"No demand point {point_id}.")
        return trace_demand_point(point, query["start"], query["end"])


@blp.route(f"/incidents/<{ID}:incident_id>/trace")
class IncidentTrace(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, IncidentTraceSchema)
    def get(self, incident_id):
        """The trace attached to a suspected poisoning when it was reported (null when the
        report named no demand point), and the samples held for the incident now."""
        found = db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")
        return {"incident_id": found.id, "trace": found.trace, "holds": incident_holds(found)}
