"""The inbox page: the signed-in user's own notifications, newest first, a button to mark
one read, and the form choosing the channels they are reached on."""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.coordination import delivery
from app.coordination.inbox_api import channels_of, mark_read, own_notifications
from app.errors import DomainError
from app.extensions import db
from app.organisation.models import Person
from app.types import utcnow

bp = Blueprint("inbox", __name__)

CHANNEL_NAMES = {
    "inapp": lazy_gettext("In-app inbox"),
    "email": lazy_gettext("Email"),
    "dingtalk": lazy_gettext("DingTalk group"),
    "sms": lazy_gettext("SMS"),
}
DELIVERY_STATUS_NAMES = {
    "pending": lazy_gettext("waiting"),
    "enqueued": lazy_gettext("queued"),
    "sending": lazy_gettext("sending"),
    "sent": lazy_gettext("sent"),
    "failed": lazy_gettext("failed"),
    "skipped": lazy_gettext("skipped"),
}
# TODO: no paging: a person with more than PAGE_SIZE messages cannot reach the oldest
# on the page (the API pages with limit and offset).
PAGE_SIZE = 200


class ActionForm(FlaskForm):
    """A button that changes something: the form carries only its CSRF token."""


class ChannelsForm(FlaskForm):
    """The outside channels a person is reached on, besides the in-app inbox."""

    email = BooleanField(lazy_gettext("Email"))
    dingtalk = BooleanField(lazy_gettext("DingTalk group"))
    sms = BooleanField(lazy_gettext("SMS"))


def _person(user):
    return db.session.get(Person, user.person_id) if user.person_id else None


def _back():
    keep = {"lang": request.args["lang"]} if request.args.get("lang") else {}
    return redirect(url_for("inbox.inbox_page", **keep))


def _render(form=None, errors=None, status=200):
    user = acting_user()
    person = _person(user)
    channels = channels_of(person) if person is not None else None
    if form is None and channels is not None:
        form = ChannelsForm(data={c: c in channels["channels"] for c in delivery.OUTSIDE})
    messages = db.session.scalars(own_notifications(user).limit(PAGE_SIZE)).all()
    page = render_template(
        "coordination/inbox.html",
        messages=messages,
        channels=channels,
        form=form,
        action=ActionForm(),
        errors=errors,
        channel_names=CHANNEL_NAMES,
        status_names=DELIVERY_STATUS_NAMES,
    )
    return page, status


@bp.get("/inbox")
@require_roles()
def inbox_page():
    return _render()


@bp.post(f"/inbox/<{ID}:notification_id>/read")
@require_roles()
def read_page(notification_id):
    """The mark-read button of one of the user's own notifications."""
    if not ActionForm().validate_on_submit():
        abort(400, gettext("The form has expired; reload the page and try again."))
    mark_read(acting_user(), notification_id, utcnow())
    db.session.commit()
    return _back()


@bp.post("/inbox/channels")
@require_roles()
def channels_page():
    """Save the channels chosen on the inbox page; a refused choice shows why."""
    person = _person(acting_user())
    if person is None:
        abort(409, gettext("You are not paged as a person, so there are no channels to choose."))
    form = ChannelsForm()
    if not form.validate_on_submit():
        abort(400, gettext("The form has expired; reload the page and try again."))
    chosen = [c for c in delivery.OUTSIDE if getattr(form, c).data]
    try:
        delivery.set_channels(person, chosen, utcnow())
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _render(form, getattr(error, "errors", None) or {"": [str(error)]}, 422)
    return _back()
