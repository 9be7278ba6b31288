"""Pages of inspectors posted at suppliers and of inspections: an incident's postings with
the form that posts one, a supplier's postings and inspection records, the inspection
form drawn from the plan's checklist, and one inspection's record."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext, lazy_gettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.clock.services import now
from app.duties.api import STAFF
from app.duties.views import ActionForm
from app.errors import DomainError, Forbidden
from app.extensions import db
from app.incidents.models import Incident
from app.organisation.models import Person
from app.supply.models import Supplier
from app.techsupport import inspections, registry
from app.techsupport.expert_pages import by_label, keep_lang, plain_text
from app.techsupport.inspections_api import RECORDERS, may_end_or_403, new_inspection
from app.techsupport.models import Inspection, InspectorPosting

bp = Blueprint("inspections", __name__)

PURPOSE_NAMES = {
    "routine": lazy_gettext("routine inspection"),
    "reinspection": lazy_gettext("re-inspection"),
}
RESULT_NAMES = {
    "pass": lazy_gettext("pass"),
    "fail": lazy_gettext("fail"),
    "na": lazy_gettext("not applicable"),
}


class PostingForm(FlaskForm):
    supplier = SelectField(lazy_gettext("Supplier"), validators=[DataRequired()])
    person = SelectField(lazy_gettext("Inspector"), validators=[DataRequired()])


def english():
    return str(get_locale()) == "en"


def item_text(item):
    """A checklist item in the reader's language."""
    return (item.get("text_en") if english() else None) or item["text"]


def _posting_form():
    form = PostingForm()
    suppliers = db.session.scalars(select(Supplier).order_by(Supplier.code)).all()
    form.supplier.choices = [(s.code, f"{s.code} {s.name}") for s in suppliers]
    people = db.session.scalars(
        select(Person).filter_by(role="inspector").order_by(Person.code)
    ).all()
    form.person.choices = [(p.code, f"{p.name} ({p.title or p.code})") for p in people]
    return form


def _postings_page(found, form=None, errors=None, status=200):
    keeper = registry.commander_or_office(acting_user())
    if keeper and form is None:
        form = _posting_form()
    page = render_template(
        "techsupport/incident_postings.html",
        incident=found,
        rows=inspections.postings_of(incident=found),
        inspections=inspections.inspections_of(incident=found),
        form=form if keeper else None,
        action_form=ActionForm(formdata=None),
        may_end=lambda posting: _may_end(posting),
        errors=errors,
        purpose_names=PURPOSE_NAMES,
    )
    return page, status


def _may_end(posting):
    user = acting_user()
    if posting.ends_at is not None:
        return False
    return registry.commander_or_office(user) or user.person_id == posting.person_id


@bp.route(f"/incidents/<{ID}:incident_id>/postings", methods=["GET", "POST"])
@require_roles(*STAFF)
def incident_postings(incident_id):
    """Inspectors posted at suppliers for the incident, and its inspections; the
    commander or the office posts one."""
    found = db.get_or_404(Incident, incident_id)
    if request.method == "GET":
        return _postings_page(found)

    user = acting_user()
    if not registry.commander_or_office(user):
        abort(403, gettext("Only the commander or the command's office posts inspectors."))
    form = _posting_form()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400, gettext("The form has expired; reload the page and try again."))
        return _postings_page(found, form, by_label(form.errors, form), 422)
    try:
        supplier = db.session.scalar(select(Supplier).filter_by(code=form.supplier.data))
        person = db.session.scalar(select(Person).filter_by(code=form.person.data))
        inspections.post_inspector(found, supplier, person, now(found), user.username)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        errors = by_label(getattr(error, "errors", None) or {"": [str(error)]}, form)
        return _postings_page(found, form, errors, error.status)
    return redirect(url_for("inspections.incident_postings", incident_id=found.id, **keep_lang()))


@bp.post(f"/postings/<{ID}:posting_id>/end")
@require_roles("commander", "liaison", "inspector")
def end_posting_page(posting_id):
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, gettext("The form has expired; reload the page and try again."))
    posting = db.session.scalar(
        select(InspectorPosting).where(InspectorPosting.id == posting_id).with_for_update()
    )
    if posting is None:
        abort(404)
    found = db.session.get(Incident, posting.incident_id)
    try:
        may_end_or_403(acting_user(), posting)
        inspections.end_posting(posting, now(found))
        db.session.commit()
    except Forbidden:
        db.session.rollback()
        abort(403, gettext("You end only your own posting."))
    except DomainError as error:
        db.session.rollback()
        return _postings_page(found, errors={"": [str(error)]}, status=error.status)
    return redirect(url_for("inspections.incident_postings", incident_id=found.id, **keep_lang()))


@bp.get(f"/suppliers/<{ID}:supplier_id>/inspections")
@require_roles(*STAFF)
def supplier_inspections(supplier_id):
    """A supplier with its risk colour, the inspectors posted there and its inspections."""
    supplier = db.get_or_404(Supplier, supplier_id)
    return render_template(
        "techsupport/supplier_inspections.html",
        supplier=supplier,
        postings=inspections.postings_of(supplier=supplier),
        rows=inspections.inspections_of(supplier=supplier),
        may_record=acting_user().role in RECORDERS,
        purpose_names=PURPOSE_NAMES,
    )


def _inspection_form(items):
    """A form with a pass / fail / not applicable choice and a note for every item."""

    class InspectionForm(FlaskForm):
        incident = HiddenField()
        purpose = SelectField(
            lazy_gettext("Purpose"), choices=list(PURPOSE_NAMES.items()), default="routine"
        )
        summary = TextAreaField(
            lazy_gettext("Summary"), validators=[Optional(), Length(max=4000), plain_text]
        )

    for index, item in enumerate(items):
        result = RadioField(
            item_text(item),
            choices=list(RESULT_NAMES.items()),
            validators=[InputRequired(gettext("answer this item"))],
        )
        setattr(InspectionForm, f"result_{index}", result)
        note = StringField(
            lazy_gettext("Note"), validators=[Optional(), Length(max=1000), plain_text]
        )
        setattr(InspectionForm, f"note_{index}", note)
    return InspectionForm()


def _chosen_incident(supplier):
    """The incident the inspection belongs to: the one asked for, else the one the
    acting inspector is posted at this supplier for, else none."""
    asked = request.values.get("incident", "")
    if asked:
        if not asked.isdigit():
            abort(404)
        return db.get_or_404(Incident, int(asked))
    user = acting_user()
    person = db.session.get(Person, user.person_id) if user.person_id else None
    posting = inspections.open_posting_at(person, supplier) if person is not None else None
    return db.session.get(Incident, posting.incident_id) if posting is not None else None


@bp.route(f"/suppliers/<{ID}:supplier_id>/inspections/new", methods=["GET", "POST"])
@require_roles(*RECORDERS)
def new_inspection_page(supplier_id):
    """The inspection form: the plan's checklist for the chosen incident's kind."""
    supplier = db.get_or_404(Supplier, supplier_id)
    found = _chosen_incident(supplier)
    try:
        items = inspections.checklist_for(
            inspections.checklist_plan(found), found.kind if found else None
        )
    except DomainError as error:
        abort(422, str(error))
    form = _inspection_form(items)
    errors, status = None, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            if "csrf_token" in form.errors:
                abort(400, gettext("The form has expired; reload the page and try again."))
            errors, status = by_label(form.errors, form), 422
        else:
            body = {
                "incident": found.id if found else None,
                "purpose": form.purpose.data,
                "summary": (form.summary.data or "").strip(),
                "answers": {
                    item["code"]: {
                        "result": form[f"result_{i}"].data,
                        "note": form[f"note_{i}"].data or "",
                    }
                    for i, item in enumerate(items)
                },
            }
            try:
                inspection = new_inspection(supplier, body, acting_user())
                db.session.commit()
                target = url_for(
                    "inspections.inspection_page", inspection_id=inspection.id, **keep_lang()
                )
                return redirect(target)
            except Forbidden as error:
                db.session.rollback()
                abort(403, str(error))
            except DomainError as error:
                db.session.rollback()
                errors = getattr(error, "errors", None) or {"": [str(error)]}
                errors, status = by_label(errors, form), error.status

    open_incidents = db.session.scalars(
        select(Incident).where(Incident.status != "closed").order_by(Incident.id.desc())
    ).all()
    page = render_template(
        "techsupport/inspection_form.html",
        supplier=supplier,
        incident=found,
        incidents=open_incidents,
        form=form,
        items=[(i, item, item_text(item)) for i, item in enumerate(items)],
        errors=errors,
    )
    return page, status


@bp.get(f"/inspections/<{ID}:inspection_id>")
@require_roles(*STAFF)
def inspection_page(inspection_id):
    """One inspection: who, when, what was found, item by item."""
    inspection = db.get_or_404(Inspection, inspection_id)
    found = db.session.get(Incident, inspection.incident_id) if inspection.incident_id else None
    return render_template(
        "techsupport/inspection.html",
        inspection=inspection,
        supplier=inspection.supplier,
        incident=found,
        item_text=item_text,
        purpose_names=PURPOSE_NAMES,
        result_names=RESULT_NAMES,
    )
