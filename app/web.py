"""The command-centre pages. Until the full pages exist: drill runs, reports and maps."""

import json
import os

from flask import Blueprint, abort, render_template, send_file
from sqlalchemy import func, select

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
    if run.status != "finished" or not run.out_dir:
        abort(404)
    return run


@bp.get("/drills/<int:run_id>/report")
def drill_report(run_id):
    run = _finished_run(run_id)
    with open(os.path.join(run.out_dir, "report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    return render_template(
        "drills/report.html", report=report, map_href=f"/drills/{run_id}/map"
    )


@bp.get("/drills/<int:run_id>/map")
def drill_map(run_id):
    run = _finished_run(run_id)
    path = os.path.join(run.out_dir, "map.html")
    if not os.path.exists(path):
        abort(404)
    return send_file(path, mimetype="text/html")
