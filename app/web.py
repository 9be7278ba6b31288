"""The command-centre pages: drill runs with their reports and maps, alerts, and the
suppliers and demand points with their files."""

import logging
import os

from flask import Blueprint, abort, render_template, send_file, url_for
from flask_babel import get_locale, lazy_gettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import func, select
from wtforms import SelectField
from wtforms.fields import SelectChoice

from app.accounts.access import acting_user, ensure_roles
from app.alerts.models import Alert
from app.api.routes import ID
from app.drills.models import DrillRun
from app.extensions import db
from app.supply.models import DemandPoint, Supplier

log = logging.getLogger(__name__)

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


class ImportForm(FlaskForm):
    """A file of suppliers or demand points to import; the form carries its CSRF token."""

    kind = SelectField(
        lazy_gettext("Kind"),
        choices=[
            SelectChoice("suppliers", lazy_gettext("Suppliers")),
            SelectChoice("demand", lazy_gettext("Demand points")),
        ],
    )
    coords = SelectField(
        lazy_gettext("Coordinates"),
        choices=[
            SelectChoice("wgs84", lazy_gettext("WGS-84 (GPS, OpenStreetMap)")),
            SelectChoice("gcj02", lazy_gettext("GCJ-02 (Amap, Tencent)")),
            SelectChoice("bd09", lazy_gettext("BD-09 (Baidu)")),
        ],
    )
    file = FileField(lazy_gettext("CSV or Excel file"), validators=[FileRequired()])


@bp.route("/supply", methods=["GET", "POST"])
def supply_page():
    """Suppliers and demand points, export links, and for a commander an import form."""
    from flask import request

    form = ImportForm()
    outcome, errors = None, None
    if request.method == "POST":
        ensure_roles("commander")
        if form.validate_on_submit():
            outcome, errors = _import_upload(form)
        else:
            errors = form.errors

    page = render_template(
        "supply/index.html",
        form=form,
        may_import=getattr(acting_user(), "role", None) == "commander",
        outcome=outcome,
        errors=errors,
        suppliers=db.session.scalars(select(Supplier).order_by(Supplier.code)).all(),
        points=db.session.scalars(select(DemandPoint).order_by(DemandPoint.code)).all(),
    )
    return page, 422 if errors else 200


def _import_upload(form):
    """(counts, None) for an imported file, or (None, errors) with nothing imported."""
    import tempfile

    from app.errors import InvalidInput
    from app.fixtures import configured_region, import_context
    from app.supply import imports

    upload = form.file.data
    suffix = os.path.splitext(upload.filename or "")[1][:8]
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "upload" + suffix)
            upload.save(path)
            context = import_context(configured_region(), form.coords.data)
            outcome = imports.import_file(path, form.kind.data, context, upload.filename)
        db.session.commit()
        log.info("supply page: %s imported %s (%s)", acting_user().username, upload.filename,
                 form.kind.data)  # fmt: skip
    except InvalidInput as error:
        db.session.rollback()
        return None, {"": [str(error)], **error.errors}
    return outcome, None
