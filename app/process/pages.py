"""The plan pages: every plan, one version in full, and an editor for the next version."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext, lazy_gettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired

from app.api.routes import ID
from app.errors import Conflict, InvalidInput, NotFound
from app.extensions import db
from app.process import services
from app.process.access import requires_plan_writer
from app.process.files import MAX_BYTES, dump_plan, parse_plan
from app.process.models import LEVELS
from app.process.schemas import PHASES
from app.types import utcnow

bp = Blueprint("plans", __name__, url_prefix="/plans")

PHASE_NAMES = {
    "warning": lazy_gettext("Warning"),
    "response": lazy_gettext("Response"),
    "recovery": lazy_gettext("Recovery"),
    "closure": lazy_gettext("Closure"),
}
COMMANDED_BY = {
    "national": lazy_gettext("the national government"),
    "provincial": lazy_gettext("the provincial government"),
    "municipal": lazy_gettext("the municipal government"),
    "county": lazy_gettext("the county (district) government"),
}
CONDITION_NAMES = {
    "harmed_min": lazy_gettext("people harmed"),
    "deaths_min": lazy_gettext("deaths"),
    "counties_min": lazy_gettext("counties touched"),
    "townships_min": lazy_gettext("townships touched"),
    "evacuees_min": lazy_gettext("evacuees needing meals"),
    "towns_min": lazy_gettext("towns touched"),
}
TABLE_NAMES = {
    "food_safety": lazy_gettext("Food-safety incidents"),
    "supply_emergency": lazy_gettext("Supply emergencies"),
}


class PlanEditForm(FlaskForm):
    """The YAML of a plan, saved as its next version; the form carries its CSRF token."""

    document = TextAreaField(lazy_gettext("Plan (YAML)"), validators=[DataRequired()])
    base_version = HiddenField()


def _in_language(entry, key):
    """The English text of `key` (its `<key>_en`) on English pages, when the plan has one."""
    if str(get_locale()) == "en" and entry.get(f"{key}_en"):
        return entry[f"{key}_en"]
    return entry.get(key)


@bp.get("")
def plan_list():
    return render_template("plans/list.html", plans=services.latest_plans())


@bp.get("/<string(maxlength=100):name>")
def plan_page(name):
    """The current version in full: levels by phase, duties, rule tables, versions."""
    return _show(_version_or_404(name))


@bp.get(f"/<string(maxlength=100):name>/versions/<{ID}:version>")
def plan_version_page(name, version):
    return _show(_version_or_404(name, version))


def _version_or_404(name, version=None):
    """The version asked for; a page that names none is a 404 page, not JSON."""
    try:
        return services.plan_version(name, version)
    except NotFound:
        abort(404)


def _show(plan):
    from app.organisation.models import Department

    departments = {d.code: d for d in db.session.scalars(select(Department))}
    measures = {m["code"]: m for m in plan.document["measures"]}
    levels = [
        {
            "code": code,
            "entry": plan.level(code),
            "phases": [
                {
                    "code": phase,
                    "measures": services.measures_for(plan, code, phase),
                    "checklist": services.checklist_for(plan, code, phase),
                }
                for phase in PHASES
            ],
            "duties": services.duties_for(plan, code),
        }
        for code in LEVELS
    ]
    return render_template(
        "plans/detail.html",
        plan=plan,
        levels=levels,
        measures=measures,
        departments=departments,
        versions=services.plan_versions(plan.name),
        current=services.latest_plan(plan.name),
        rules=plan.document["rules"],
        phase_names=PHASE_NAMES,
        commanded_by=COMMANDED_BY,
        condition_names=CONDITION_NAMES,
        table_names=TABLE_NAMES,
        in_language=_in_language,
    )


@bp.route("/<string(maxlength=100):name>/edit", methods=["GET", "POST"])
@requires_plan_writer
def plan_edit(name):
    """The current version as YAML in a text box; saving stores it as the next version."""
    current = _version_or_404(name)
    form = PlanEditForm()
    errors = None
    if request.method == "GET":
        form.document.data = dump_plan(current.document)
        form.base_version.data = str(current.version)
    elif form.validate_on_submit():
        errors = _save(name, form)
        if errors is None:
            return redirect(url_for("plans.plan_page", name=name), code=303)
    else:
        errors = form.errors

    page = render_template("plans/edit.html", plan=current, form=form, errors=errors)
    return page, 422 if errors else 200


def _save(name, form):
    """None once the text is stored as a version (or is the current one), else the errors;
    nothing is stored on an error."""
    text = form.document.data.replace("\r\n", "\n")
    if len(text.encode()) > MAX_BYTES:
        return {"document": [gettext("a plan is at most %(n)s bytes", n=MAX_BYTES)]}
    try:
        document = parse_plan(text, "plan")
        if document["name"] != name:
            raise InvalidInput(
                "plan refused",
                {"name": [gettext("this page edits %(name)s; keep its name", name=name)]},
            )
        base = form.base_version.data
        services.check_base_version(name, int(base) if (base or "").isdigit() else None)
        services.import_plan(document, utcnow())
        db.session.commit()
    except Conflict as error:
        db.session.rollback()
        return {"base_version": [str(error)]}
    except InvalidInput as error:
        db.session.rollback()
        return {"": [str(error)], **error.errors}
    return None
