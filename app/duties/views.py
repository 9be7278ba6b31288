"""Pages of the statutory clock: incidents with their level, checklist and working
groups, the duty matrix (also as Excel), contacts and the duty roster."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.clock.services import now
from app.duties import matrix
from app.duties import services as duties
from app.duties.api import STAFF, groups_of, matrix_file
from app.duties.models import ChecklistItem, DutyAssignment
from app.errors import DomainError
from app.extensions import db
from app.incidents.models import Incident
from app.organisation.models import Department, Person, RosterShift

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
PHASE_NAMES = {
    "warning": lazy_gettext("warning"),
    "response": lazy_gettext("response"),
    "recovery": lazy_gettext("recovery"),
    "closure": lazy_gettext("closure"),
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


@bp.get("/contacts")
@require_roles(*STAFF)
def contacts_page():
    departments = db.session.scalars(select(Department).order_by(Department.id)).all()
    return render_template("duties/contacts.html", departments=departments, **_names())


@bp.get("/rosters")
@require_roles(*STAFF)
def rosters_page():
    shifts = db.session.scalars(
        select(RosterShift).order_by(RosterShift.starts_at.desc(), RosterShift.id).limit(500)
    ).all()
    return render_template("duties/rosters.html", shifts=shifts, **_names())
