"""Pages of the statutory clock: incidents with their level, checklist and working
groups, the duty matrix (also as Excel), contacts and the duty roster."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateTimeLocalField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.clock.services import now
from app.duties import matrix
from app.duties import services as duties
from app.duties.api import STAFF, groups_of, matrix_file, may_change
from app.duties.models import ChecklistItem, DutyAssignment
from app.errors import DomainError
from app.extensions import db
from app.incidents.models import Incident
from app.organisation.models import Department, Person, RosterShift
from app.process.pages import PHASE_NAMES
from app.techsupport.trace_views import incident_trace_context

bp = Blueprint("clock", __name__)

STATUS_NAMES = {
    "assigned": lazy_gettext("assigned"),
    "overdue": lazy_gettext("overdue"),
    "escalated": lazy_gettext("escalated"),
    "objected": lazy_gettext("objected"),
    "confirmed": lazy_gettext("confirmed"),
    "closed": lazy_gettext("closed"),
    "retired": lazy_gettext("retired"),
    "open": lazy_gettext("open"),
    "done": lazy_gettext("done"),
}
KIND_NAMES = {
    "supply_emergency": lazy_gettext("supply emergency"),
    "food_safety": lazy_gettext("food safety"),
    "major_event": lazy_gettext("major event"),
}
INCIDENT_STATUS_NAMES = {
    "open": lazy_gettext("reported"),
    "active": lazy_gettext("responding"),
    "closed": lazy_gettext("ended"),
}
ROLE_NAMES = {
    "commander": lazy_gettext("commander"),
    "liaison": lazy_gettext("liaison"),
    "staff": lazy_gettext("staff"),
    "inspector": lazy_gettext("inspector"),
}


class ActionForm(FlaskForm):
    """A button that changes something: the form carries only its CSRF token."""


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id)


def _department_names():
    """Each department's name in the reader's language, by code."""
    from flask_babel import get_locale

    english = str(get_locale()) == "en"
    return {
        d.code: (d.name_en if english else None) or d.name
        for d in db.session.scalars(select(Department))
    }


def _names():
    return {
        "statuses": STATUS_NAMES,
        "phases": PHASE_NAMES,
        "kinds": KIND_NAMES,
        "incident_statuses": INCIDENT_STATUS_NAMES,
        "roles": ROLE_NAMES,
        "department_names": _department_names(),
    }


@bp.get("/incidents")
@require_roles(*STAFF)
def incidents_page():
    rows = db.session.scalars(select(Incident).order_by(Incident.id.desc()).limit(200)).all()
    return render_template("duties/incidents.html", incidents=rows, **_names())


@bp.get(f"/incidents/<{ID}:incident_id>")
@require_roles(*STAFF)
def incident_page(incident_id):
    # TODO: the rule behind the suggested level is shown as the clock wrote it (condition
    # keys such as harmed_min), not in the reader's language.
    found = _incident(incident_id)
    checklist = db.session.scalars(
        select(ChecklistItem)
        .filter_by(incident_id=found.id)
        .order_by(ChecklistItem.status != "open", ChecklistItem.id)
    ).all()
    return render_template(
        "duties/incident.html",
        incident=found,
        checklist=checklist,
        groups=groups_of(found, now(found)),
        departments=matrix.department_summary(found),
        **incident_trace_context(found),
        **_names(),
    )


@bp.get(f"/incidents/<{ID}:incident_id>/duties")
@require_roles(*STAFF)
def duty_matrix_page(incident_id):
    found = _incident(incident_id)
    user = acting_user()
    return render_template(
        "duties/matrix.html",
        incident=found,
        rows=matrix.matrix_rows(found),
        form=ActionForm(),
        own_department=user.department_id if user.role == "liaison" else None,
        department_ids={d.code: d.id for d in db.session.scalars(select(Department))},
        **_names(),
    )


@bp.get(f"/incidents/<{ID}:incident_id>/duties.xlsx")
@require_roles(*STAFF)
def duty_matrix_file(incident_id):
    from flask_babel import get_locale

    return matrix_file(_incident(incident_id), english=str(get_locale()) == "en")


@bp.post(f"/assignments/<{ID}:assignment_id>/confirm")
@require_roles("liaison")
def confirm_page(assignment_id):
    """The confirm button of the matrix page: the liaison's own department only."""
    assignment = db.get_or_404(DutyAssignment, assignment_id)
    user = acting_user()
    if not ActionForm().validate_on_submit():
        abort(400, gettext("The form has expired; reload the page and try again."))
    if user.department_id != assignment.department_id:
        abort(403, gettext("You confirm only your own department's duties."))
    found = _incident(assignment.incident_id)
    try:
        if found.status == "closed":
            raise DomainError("closed")
        person = db.session.get(Person, user.person_id) if user.person_id else None
        duties.confirm(assignment, person, now(found), department_id=user.department_id)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        flash(str(error))
    keep = {"lang": request.args["lang"]} if request.args.get("lang") else {}
    return redirect(url_for("clock.duty_matrix_page", incident_id=found.id, **keep))


def _back(endpoint):
    keep = {"lang": request.args["lang"]} if request.args.get("lang") else {}
    return redirect(url_for(endpoint, **keep))


@bp.get("/contacts")
@require_roles(*STAFF)
def contacts_page():
    departments = db.session.scalars(select(Department).order_by(Department.id)).all()
    user = acting_user()
    return render_template(
        "duties/contacts.html",
        departments=departments,
        form=ActionForm(),
        may_change=lambda person: may_change(user, person.department_id, person.role),
        **_names(),
    )


@bp.post(f"/contacts/<{ID}:person_id>/availability")
@require_roles("commander", "liaison")
def availability_page(person_id):
    """Mark someone unreachable (their duties go to whoever covers them) or back."""
    person = db.get_or_404(Person, person_id)
    if not ActionForm().validate_on_submit():
        abort(400, gettext("The form has expired; reload the page and try again."))
    if not may_change(acting_user(), person.department_id, person.role):
        abort(403, gettext("You change only your own department's people, never a commander."))
    person.available = not person.available
    if not person.available:
        duties.hand_over(person)
    db.session.commit()
    return _back("clock.contacts_page")


class ShiftForm(FlaskForm):
    """A shift on the duty roster, in the command's local time."""

    person = SelectField(lazy_gettext("On duty"), coerce=int)
    substitute = SelectField(lazy_gettext("Substitute"), coerce=int)
    starts = DateTimeLocalField(lazy_gettext("Starts"), validators=[DataRequired()])
    ends = DateTimeLocalField(lazy_gettext("Ends"), validators=[DataRequired()])
    note = StringField(lazy_gettext("Note"), validators=[Optional(), Length(max=500)])


def _shift_form(user):
    people = db.session.scalars(
        select(Person).where(Person.role != "staff").order_by(Person.department_id, Person.id)
    ).all()
    names = _department_names()
    choices = [
        (
            p.id,
            f"{names.get(p.department.code, p.department.name)} · {p.name} ({ROLE_NAMES[p.role]})",
        )
        for p in people
        if may_change(user, p.department_id, p.role)
    ]
    form = ShiftForm()
    form.person.choices = choices
    form.substitute.choices = [(0, "—"), *choices]
    return form


@bp.route("/rosters", methods=["GET", "POST"])
@require_roles(*STAFF)
def rosters_page():
    from zoneinfo import ZoneInfo

    from flask import current_app

    from app.organisation.services import add_shift

    user = acting_user()
    form = _shift_form(user) if user.role in ("commander", "liaison") else None
    errors = None
    if request.method == "POST":
        if form is None:
            abort(403, gettext("You change only your own department's people, never a commander."))
        if form.validate_on_submit():
            zone = ZoneInfo(current_app.config["BAOGONG_TIMEZONE"])
            person = db.session.get(Person, form.person.data)
            substitute = (
                db.session.get(Person, form.substitute.data) if form.substitute.data else None
            )
            try:
                add_shift(
                    department_id=person.department_id,
                    role=person.role,
                    person=person,
                    substitute=substitute,
                    starts_at=form.starts.data.replace(tzinfo=zone),
                    ends_at=form.ends.data.replace(tzinfo=zone),
                    note=(form.note.data or "").strip() or None,
                )
                db.session.commit()
                return _back("clock.rosters_page")
            except DomainError as error:
                db.session.rollback()
                errors = getattr(error, "errors", None) or {"": [str(error)]}
        else:
            errors = form.errors
    shifts = db.session.scalars(
        select(RosterShift).order_by(RosterShift.starts_at.desc(), RosterShift.id).limit(500)
    ).all()
    page = render_template("duties/rosters.html", shifts=shifts, form=form, errors=errors,
                           **_names())  # fmt: skip
    return page, 422 if errors else 200
