"""Pages of the expert pool and the labs, and of the experts called to an incident, with
the form the commander (or the office) assigns one with."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.clock.services import now
from app.duties.api import STAFF
from app.duties.views import ActionForm
from app.errors import DomainError
from app.extensions import db
from app.incidents.models import Incident
from app.techsupport import experts, registry
from app.techsupport.experts_api import KEEPERS, labs
from app.techsupport.models import ExpertAssignment
from app.types import utcnow

bp = Blueprint("experts", __name__)

EXPERTISE_NAMES = {
    "food_safety": lazy_gettext("food safety and hygiene"),
    "toxicology": lazy_gettext("toxicology"),
    "epidemiology": lazy_gettext("epidemiology"),
    "clinical_care": lazy_gettext("clinical care"),
    "emergency_medicine": lazy_gettext("emergency medicine"),
    "nutrition": lazy_gettext("nutrition"),
    "microbiology": lazy_gettext("microbiology"),
    "testing": lazy_gettext("laboratory testing"),
}


def plain_text(form, field):
    """What the API refuses, the form refuses too: control characters."""
    if any(ord(c) < 32 and c not in "\r\n\t" or 127 <= ord(c) < 160 for c in field.data or ""):
        raise ValidationError(gettext("must not hold control characters"))


class FilterForm(FlaskForm):
    """The filters of the pool: read only, so no CSRF token."""

    class Meta:
        csrf = False

    expertise = SelectField(lazy_gettext("Expertise"), default="")
    available = SelectField(lazy_gettext("Available"), default="")


class AssignForm(FlaskForm):
    expert = SelectField(lazy_gettext("Expert"), validators=[DataRequired()])
    role = StringField(
        lazy_gettext("Called for"), validators=[DataRequired(), Length(max=200), plain_text]
    )


def keep_lang(**values):
    if request.args.get("lang"):
        values["lang"] = request.args["lang"]
    return values


def expertise_names(codes):
    return ", ".join(str(EXPERTISE_NAMES.get(code, code)) for code in codes or ())


@bp.get("/experts")
@require_roles(*STAFF)
def experts_page():
    """The expert pool, filtered by expertise and availability, and the labs."""
    form = FilterForm(request.args)
    form.expertise.choices = [("", gettext("any")), *EXPERTISE_NAMES.items()]
    form.available.choices = [("", gettext("any")), ("true", gettext("yes")),
                              ("false", gettext("no"))]  # fmt: skip
    if not form.validate():
        abort(400, gettext("Unknown filter."))
    available = {"true": True, "false": False}.get(form.available.data)
    at = utcnow()
    rows = experts.directory(at=at, expertise=form.expertise.data or None, available=available)
    return render_template(
        "techsupport/experts.html",
        form=form,
        rows=rows,
        busy=experts.busy_at([e.id for e in rows], at),
        labs=labs(),
        expertise_names=expertise_names,
    )


def _assign_form():
    form = AssignForm()
    form.expert.choices = [
        (e.code, f"{e.code} {e.name} ({expertise_names(e.expertise)})")
        for e in experts.experts_for(None, utcnow())
    ]
    return form


def _incident_page(found, form=None, errors=None, status=200):
    user = acting_user()
    keeper = registry.commander_or_office(user)
    if keeper and form is None:
        form = _assign_form()
    page = render_template(
        "techsupport/incident_experts.html",
        incident=found,
        rows=experts.assignments_of(found),
        form=form if keeper else None,
        action_form=ActionForm(formdata=None) if keeper else None,
        errors=errors,
        expertise_names=expertise_names,
    )
    return page, status


@bp.route(f"/incidents/<{ID}:incident_id>/experts", methods=["GET", "POST"])
@require_roles(*STAFF)
def incident_experts(incident_id):
    """The experts called to the incident; the commander or the office assigns one."""
    found = db.get_or_404(Incident, incident_id)
    if request.method == "GET":
        return _incident_page(found)

    if not registry.commander_or_office(acting_user()):
        abort(403, gettext("Only the commander or the command's office calls experts."))
    form = _assign_form()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400, gettext("The form has expired; reload the page and try again."))
        return _incident_page(found, form, by_label(form.errors, form), 422)
    try:
        expert = registry.expert_by_code(form.expert.data)
        experts.assign_expert(found, expert, form.role.data, acting_user().username, now(found))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        errors = by_label(getattr(error, "errors", None) or {"": [str(error)]}, form)
        return _incident_page(found, form, errors, error.status)
    return redirect(url_for("experts.incident_experts", incident_id=found.id, **keep_lang()))


@bp.post(f"/expert-assignments/<{ID}:assignment_id>/release")
@require_roles(*KEEPERS)
def release_page(assignment_id):
    """The expert's work on the incident is over."""
    if not registry.commander_or_office(acting_user()):
        abort(403, gettext("Only the commander or the command's office releases experts."))
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, gettext("The form has expired; reload the page and try again."))
    assignment = db.session.scalar(
        select(ExpertAssignment).where(ExpertAssignment.id == assignment_id).with_for_update()
    )
    if assignment is None:
        abort(404)
    found = db.session.get(Incident, assignment.incident_id)
    try:
        experts.release_expert(assignment, now(found))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _incident_page(found, errors={"": [str(error)]}, status=error.status)
    return redirect(url_for("experts.incident_experts", incident_id=found.id, **keep_lang()))


def by_label(errors, form):
    """Refusals keyed by the label the reader sees on the form, where the form has it."""
    named = {}
    for key, messages in errors.items():
        field = getattr(form, key, None) if key else None
        label = str(field.label.text) if field is not None and hasattr(field, "label") else key
        named.setdefault(label, []).extend(messages)
    return named
