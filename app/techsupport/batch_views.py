"""Pages of batches and retained samples: a batch with the timeline of its steps, its
temperatures, its flag and its samples counting down; the samples kept now, with their
holds, and the buttons to discard a sample or release a hold for the roles that may."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.clock.services import now
from app.errors import DomainError, Forbidden
from app.extensions import db
from app.supply.models import Batch, Supplier
from app.techsupport import batches, samples
from app.techsupport.batches_api import (
    READERS,
    batch_row,
    discard,
    list_samples,
    may_discard,
    may_see,
    release,
)
from app.techsupport.models import RetainedSample

bp = Blueprint("batch_pages", __name__)

BATCH_STATUS_NAMES = {
    "cooking": lazy_gettext("cooking"),
    "cooked": lazy_gettext("cooked, samples missing"),
    "sampled": lazy_gettext("cooked and sampled"),
    "in_transit": lazy_gettext("on its way"),
    "delivered": lazy_gettext("delivered"),
    "received": lazy_gettext("served"),
    "flagged": lazy_gettext("flagged: not served"),
}
SAMPLE_STATE_NAMES = {
    "kept": lazy_gettext("kept"),
    "held": lazy_gettext("held for an incident"),
    "expired": lazy_gettext("keeping time over"),
    "discarded": lazy_gettext("discarded"),
}


class DiscardForm(FlaskForm):
    """The discard button of one sample."""


class ReleaseForm(FlaskForm):
    reason = StringField(
        lazy_gettext("Reason"), validators=[DataRequired(), Length(max=samples.REASON_LENGTH)]
    )


def _keep_lang(**values):
    if request.args.get("lang"):
        values["lang"] = request.args["lang"]
    return values


@bp.get(f"/batches/<{ID}:batch_id>")
@require_roles(*READERS)
def batch_page(batch_id):
    """One batch: its steps in order with their times and temperatures, the flag in red,
    and its samples with their countdown and holds."""
    batch = db.get_or_404(Batch, batch_id)
    user = acting_user()
    if not may_see(user, batch.supplier_id):
        abort(403, gettext("A supplier sees only its own batches."))
    incident = batches.incident_of(batch)
    at = now(incident)
    siblings = [b for b in batches.batches_of(batch.supply_task) if b.id != batch.id]
    return render_template(
        "techsupport/batch.html",
        batch=batch,
        row=batch_row(batch, at),
        task=batch.supply_task,
        incident=incident,
        siblings=siblings,
        meals_left=batches.meals_left(batch.supply_task),
        statuses=BATCH_STATUS_NAMES,
        states=SAMPLE_STATE_NAMES,
    )


def _samples_page(errors=None, status=200):
    user = acting_user()
    query = {
        "state": request.args.get("state") or None,
        "supplier": (request.args.get("supplier") or "").strip() or None,
        "limit": 500,
        "offset": 0,
    }
    if query["state"] not in (None, *samples.SAMPLE_STATES):
        errors, status = {gettext("State"): [gettext("unknown state")]}, 422
        query["state"] = None
    try:
        rows = list_samples(user, query)
    except Forbidden:
        abort(403, gettext("A supplier sees only its own samples."))
    except DomainError as error:
        errors, status = (getattr(error, "errors", None) or {"": [str(error)]}), 422
        rows = list_samples(user, {**query, "supplier": None})
    by_id = {
        s.id: s
        for s in db.session.scalars(
            db.select(RetainedSample).where(RetainedSample.id.in_([r["id"] for r in rows]))
        )
    }
    suppliers = db.session.scalars(db.select(Supplier).order_by(Supplier.code)).all()
    page = render_template(
        "techsupport/samples.html",
        rows=rows,
        query=query,
        errors=errors,
        states=SAMPLE_STATE_NAMES,
        suppliers=suppliers if user.role != "supplier" else [],
        may_discard=lambda row: may_discard(user, by_id[row["id"]]),
        may_release=user.role in ("commander", "inspector"),
        discard_form=DiscardForm(formdata=None),
        release_form=ReleaseForm(formdata=None),
    )
    return page, status


@bp.get("/samples")
@require_roles(*READERS)
def samples_page():
    """Samples kept now, soonest to end first, filtered by state and supplier."""
    return _samples_page()


def _change(form, change):
    """Check the form, apply `change(user)`, commit; a refusal shows the samples again
    with the reason, nothing changed."""
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400, gettext("The form has expired; reload the page and try again."))
        return _samples_page(form.errors, 422)
    try:
        change(acting_user())
        db.session.commit()
    except Forbidden:
        db.session.rollback()
        abort(403, gettext("You may discard only your own supplier's samples."))
    except DomainError as error:
        db.session.rollback()
        return _samples_page(getattr(error, "errors", None) or {"": [str(error)]}, error.status)
    return redirect(url_for("batch_pages.samples_page", **_keep_lang()))


@bp.post(f"/samples/<{ID}:sample_id>/discard")
@require_roles("commander", "inspector", "supplier")
def discard_page(sample_id):
    return _change(DiscardForm(), lambda user: discard(sample_id, user))


@bp.post(f"/sample-holds/<{ID}:hold_id>/release")
@require_roles("commander", "inspector")
def release_page(hold_id):
    form = ReleaseForm()
    return _change(form, lambda user: release(hold_id, user, form.reason.data))
