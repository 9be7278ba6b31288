"""The command-centre pages. Until the full pages exist: drill runs, reports and maps."""

import os

from flask import Blueprint, abort, render_template, send_file, url_for
from flask_babel import get_locale, lazy_gettext
from sqlalchemy import func, select

from app.alerts.models import Alert
from app.api.routes import ID
from app.drills.models import DrillRun
from app.extensions import db
from app.supply.models import DemandPoint, Supplier

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    runs = db.session.scalars(select(DrillRun).order_by(DrillRun.id.desc()).limit(50)).all()
    return render_template(
        "index.html",
        runs=runs,
        suppliers=db.session.scalar(select(func.count(Supplier.id))),
        points=db.session.scalar(select(func.count(DemandPoint.id))),
    )


def _finished_run(run_id):
    run = db.get_or_404(DrillRun, run_id)
    if run.status != "finished" or run.report is None:
        abort(404)
    return run


@bp.get(f"/drills/<{ID}:run_id>/report")
def drill_report(run_id):
    run = _finished_run(run_id)
    return render_template(
        "drills/report.html",
        report=run.report,
        map_href=url_for("web.drill_map", run_id=run_id),
    )


@bp.get(f"/drills/<{ID}:run_id>/map")
def drill_map(run_id):
    from app.drills.services import kept_map_path

    path = kept_map_path(_finished_run(run_id))
    if not os.path.exists(path):
        abort(404)
    return send_file(path, mimetype="text/html")


ACTIONS = {
    "opened": lazy_gettext("opened an incident"),
    "updated": lazy_gettext("updated an incident"),
    "cancelled": lazy_gettext("cancelled"),
    "out_of_region": lazy_gettext("outside the region"),
    "not_acted": lazy_gettext("recorded, not acted on"),
    "recorded": lazy_gettext("recorded"),
}
VERDICTS = {True: lazy_gettext("yes"), False: lazy_gettext("no"), None: lazy_gettext("unknown")}


@bp.get("/alerts")
def alerts_page():
    query = select(Alert).where(Alert.scope == "live").order_by(Alert.id.desc()).limit(200)
    return render_template(
        "alerts/list.html",
        alerts=db.session.scalars(query).all(),
        actions=ACTIONS,
        verdicts=VERDICTS,
    )


@bp.get(f"/alerts/<{ID}:alert_id>")
def alert_page(alert_id):
    """One alert, every info block kept, the one in the reader's language first."""
    from app.alerts.services import ordered_infos

    alert = db.get_or_404(Alert, alert_id)
    if alert.scope != "live":
        abort(404)
    language = "en" if str(get_locale()) == "en" else "zh-CN"
    return render_template(
        "alerts/detail.html",
        alert=alert,
        infos=ordered_infos(alert.infos or [], language),
        actions=ACTIONS,
        verdicts=VERDICTS,
    )
