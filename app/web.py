"""The command-centre pages. Until the full pages exist: drill runs, reports and maps."""

import os

from flask import Blueprint, abort, render_template, send_file, url_for
from sqlalchemy import func, select

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
