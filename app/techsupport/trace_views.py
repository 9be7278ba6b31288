"""The trace page of a demand point: every batch delivered there, with a from/to filter in
the command's local time."""

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request
from flask_babel import lazy_gettext
from sqlalchemy import select
from wtforms import DateTimeLocalField, Form
from wtforms.validators import Optional

from app.accounts.access import require_roles
from app.api.routes import ID
from app.drills.models import DrillRun
from app.duties.api import STAFF
from app.extensions import db
from app.incidents.models import Incident
from app.supply.models import DemandPoint
from app.techsupport.trace import trace_demand_point
from app.types import utcnow

bp = Blueprint("trace_pages", __name__)

STATUS_NAMES = {
    "delivered": lazy_gettext("delivered"),
    "received": lazy_gettext("received"),
    "flagged": lazy_gettext("flagged, not served"),
}
MEAL_NAMES = {
    "breakfast": lazy_gettext("breakfast"),
    "lunch": lazy_gettext("lunch"),
    "dinner": lazy_gettext("dinner"),
}


class TraceFilter(Form):
    """The delivery window, read in the command's zone (the page shows local times)."""

    start = DateTimeLocalField(lazy_gettext("Delivered from"), validators=[Optional()])
    end = DateTimeLocalField(lazy_gettext("to"), validators=[Optional()])


def _clocks(trace):
    """Each traced incident's clock now: a drill's simulated one, else the real one."""
    ids = {batch["incident"] for batch in trace["batches"]}
    if not ids:
        return {}
    rows = db.session.execute(
        select(Incident.id, DrillRun.sim_now)
        .outerjoin(DrillRun, Incident.drill_run_id == DrillRun.id)
        .where(Incident.id.in_(ids))
    ).all()
    real = utcnow()
    return {incident_id: sim_now or real for incident_id, sim_now in rows}


def minutes_left(trace, clocks, default=None):
    """Minutes until each sample's keeping time ends, on its incident's clock (`default`
    for an incident not in `clocks`), by sample id."""
    left = {}
    for batch in trace["batches"]:
        at = clocks.get(batch["incident"]) or default or utcnow()
        for sample in batch["samples"]:
            until = datetime.fromisoformat(sample["keep_until"].replace("Z", "+00:00"))
            left[sample["id"]] = int((until - at).total_seconds() // 60)
    return left


@bp.get(f"/demand-points/<{ID}:point_id>/trace")
@require_roles(*STAFF)
def trace_page(point_id):
    point = db.get_or_404(DemandPoint, point_id)
    form = TraceFilter(request.args)
    zone = ZoneInfo(current_app.config["BAOGONG_TIMEZONE"])
    errors = None
    start = end = None
    if form.validate():
        start = form.start.data.replace(tzinfo=zone) if form.start.data else None
        end = form.end.data.replace(tzinfo=zone) if form.end.data else None
        if start and end and start > end:
            errors = {form.start.label.text: [lazy_gettext("must not be after the end")]}
    else:
        errors = {
            getattr(form, name).label.text: messages for name, messages in form.errors.items()
        }

    trace = None if errors else trace_demand_point(point, start, end)
    page = render_template(
        "techsupport/trace.html",
        point=point,
        trace=trace,
        form=form,
        errors=errors,
        left=minutes_left(trace, _clocks(trace)) if trace else {},
        statuses=STATUS_NAMES,
        meals=MEAL_NAMES,
    )
    return page, 422 if errors else 200


def incident_trace_context(incident):
    """What the incident page shows of the trace attached to a suspected poisoning: the
    batches as they stood at the report, and the incident's holds as they stand now."""
    from app.clock.services import now
    from app.techsupport.trace_api import incident_holds

    if not incident.trace:
        return {"trace": None}
    return {
        "trace": incident.trace,
        "trace_holds": {hold.sample_id: hold for hold in incident_holds(incident)},
        "trace_left": minutes_left(incident.trace, {}, now(incident)),
        "trace_statuses": STATUS_NAMES,
        "trace_meals": MEAL_NAMES,
    }
