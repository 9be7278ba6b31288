"""The food-safety page: recent results (failed ones in red), open lab requests with the
time each result is expected (late ones marked), current suspensions with the commander's
reinstate form, and the form an inspector records a rapid test with."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import FloatField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, MAX_ID
from app.clock.services import now
from app.coordination.task_views import _plain_text
from app.duties.api import STAFF
from app.errors import DomainError, Forbidden
from app.extensions import db
from app.incidents.models import Incident
from app.supply.models import Supplier, SupplierSuspension
from app.techsupport import gate, results
from app.techsupport.models import TEST_PURPOSES, LabRequest
from app.techsupport.results_api import RECORDERS, clock_of_suspension, record_from_body
from app.techsupport.risk import risk_colour, risk_colours
from app.types import utcnow

bp = Blueprint("food_safety", __name__)

PURPOSE_NAMES = {"routine": lazy_gettext("routine"), "reinspection": lazy_gettext("re-inspection")}
KIND_NAMES = {"rapid": lazy_gettext("rapid test"), "lab": lazy_gettext("lab test")}


class RapidTestForm(FlaskForm):
    """A rapid test as an inspector records it on site."""

    supplier = SelectField(lazy_gettext("Supplier"), validators=[DataRequired()])
    incident = SelectField(lazy_gettext("Incident"), default="")
    analyte = StringField(
        lazy_gettext("Analyte"), validators=[DataRequired(), Length(max=200), _plain_text]
    )
    method = StringField(
        lazy_gettext("Method"), validators=[DataRequired(), Length(max=200), _plain_text]
    )
    value = FloatField(
        lazy_gettext("Value"), validators=[InputRequired(), NumberRange(0, results.MAX_VALUE)]
    )
    limit = FloatField(
        lazy_gettext("Limit"),
        validators=[InputRequired(), NumberRange(1e-12, results.MAX_VALUE)],
    )
    unit = StringField(
        lazy_gettext("Unit"), validators=[DataRequired(), Length(max=20), _plain_text]
    )
    purpose = SelectField(lazy_gettext("Purpose"), default="routine")
    batch = IntegerField(lazy_gettext("Batch no."), validators=[Optional(), NumberRange(1, MAX_ID)])
    sample = IntegerField(
        lazy_gettext("Sample no."), validators=[Optional(), NumberRange(1, MAX_ID)]
    )


class ReinstateForm(FlaskForm):
    reason = StringField(
        lazy_gettext("Reason"), validators=[DataRequired(), Length(max=2000), _plain_text]
    )


@bp.app_template_global()
def supplier_risk(supplier, incident=None):
    """A supplier's colour on its incident's clock and in its scope, for a page."""
    at = now(incident) if incident is not None else utcnow()
    return risk_colour(supplier, incident, at=at).colour


@bp.app_template_global()
def incident_suspensions(incident_id):
    """The suspensions of one incident, each with its supplier's colour in that incident
    at the end of its clock: (suspension, colour) pairs, for the drill report."""
    found = db.session.get(Incident, incident_id) if incident_id else None
    if found is None:
        return []
    rows = db.session.scalars(
        select(SupplierSuspension)
        .filter_by(incident_id=found.id)
        .order_by(SupplierSuspension.started_at, SupplierSuspension.id)
    ).all()
    colours = risk_colours([s.supplier for s in rows], found, at=now(found))
    return [(s, colours[s.supplier_id].colour) for s in rows]


def _form():
    form = RapidTestForm()
    suppliers = db.session.scalars(select(Supplier).order_by(Supplier.code)).all()
    form.supplier.choices = [("", "—"), *((s.code, f"{s.code} {s.name}") for s in suppliers)]
    incidents = db.session.scalars(
        select(Incident).where(Incident.status != "closed").order_by(Incident.id.desc())
    ).all()
    form.incident.choices = [
        ("", gettext("outside any incident")),
        *((str(i.id), f"#{i.id} {i.title}") for i in incidents),
    ]
    form.purpose.choices = [(p, PURPOSE_NAMES[p]) for p in TEST_PURPOSES]
    return form


def _labels(errors, form):
    """Field messages under the form's own labels."""
    labelled = {}
    for name, messages in errors.items():
        key = name.removesuffix("_id")
        field = getattr(form, key, None) if form is not None else None
        labelled[str(field.label.text) if field is not None else name] = list(messages)
    return labelled


def _page(form=None, reinstate=None, errors=None, status=200):
    user = acting_user()
    tests = db.session.scalars(results.tests_query().limit(100)).all()
    requests = db.session.scalars(
        select(LabRequest).filter_by(status="requested").order_by(LabRequest.expected_by)
    ).all()
    incidents = {i.id: i for i in db.session.scalars(select(Incident))}
    suspensions = db.session.scalars(
        select(SupplierSuspension)
        .where(SupplierSuspension.lifted_at.is_(None))
        .order_by(SupplierSuspension.started_at.desc())
    ).all()
    may_record = user.role in RECORDERS
    page = render_template(
        "techsupport/food_safety.html",
        tests=tests,
        requests=requests,
        late={r.id: results.is_late(r, _clock(incidents.get(r.incident_id))) for r in requests},
        suspensions=suspensions,
        incidents=incidents,
        form=(form or _form()) if may_record else None,
        reinstate_form=reinstate or ReinstateForm(formdata=None),
        may_reinstate=user.role == "commander",
        errors=errors,
        purposes=PURPOSE_NAMES,
        kinds=KIND_NAMES,
    )
    return page, status


def _clock(incident):
    return now(incident) if incident is not None else utcnow()


@bp.route("/food-safety", methods=["GET", "POST"])
@require_roles(*STAFF)
def food_safety_page():
    """The page; a POST records a rapid test (inspector or commander)."""
    if request.method == "GET":
        return _page()
    user = acting_user()
    if user.role not in RECORDERS:
        abort(403, gettext("Only an inspector or the commander records test results."))
    form = _form()
    if not form.validate_on_submit():
        return _page(form, errors=_labels(form.errors, form), status=422)
    body = {
        "supplier": form.supplier.data,
        "incident_id": int(form.incident.data) if form.incident.data else None,
        "analyte": form.analyte.data.strip(),
        "method": form.method.data.strip(),
        "value": form.value.data,
        "limit": form.limit.data,
        "unit": form.unit.data.strip(),
        "purpose": form.purpose.data,
        "batch_id": form.batch.data,
        "sample_id": form.sample.data,
    }
    try:
        record_from_body(body, user)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        errors = _labels(getattr(error, "errors", None) or {"": [str(error)]}, form)
        return _page(form, errors=errors, status=error.status)
    return redirect(url_for("food_safety.food_safety_page", **_keep_lang()))


@bp.post(f"/food-safety/suspensions/<{ID}:suspension_id>/reinstate")
@require_roles("commander")
def reinstate_page(suspension_id):
    """The commander lifts a suspension; a refusal shows the page with what is missing."""
    suspension = db.get_or_404(SupplierSuspension, suspension_id)
    form = ReinstateForm()
    if not form.validate_on_submit():
        return _page(reinstate=form, errors=_labels(form.errors, form), status=422)
    try:
        gate.reinstate_supplier(
            suspension,
            by=acting_user().username,
            reason=form.reason.data.strip(),
            at=clock_of_suspension(suspension),
        )
        db.session.commit()
    except Forbidden as error:
        db.session.rollback()
        abort(403, str(error))
    except DomainError as error:
        db.session.rollback()
        errors = _labels(getattr(error, "errors", None) or {"": [str(error)]}, None)
        return _page(reinstate=form, errors=errors, status=error.status)
    return redirect(url_for("food_safety.food_safety_page", **_keep_lang()))


def _keep_lang():
    return {"lang": request.args["lang"]} if request.args.get("lang") else {}
