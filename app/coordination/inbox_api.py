"""Notifications over the API: the caller's own inbox, their channels, and each delivery
of an incident's notifications for the commander.

A user reads the notifications of the Person they are paged as, or of their supplier.
The request boundary commits once.
"""

from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, Blueprint, NoQuery, PageQuery, StrictSchema
from app.coordination import delivery
from app.coordination.models import CHANNELS, DELIVERY_STATUSES, Notification
from app.errors import Conflict, NotFound
from app.extensions import db
from app.incidents.models import Incident
from app.organisation.models import Person
from app.types import utcnow

blp = Blueprint(
    "notifications", __name__, url_prefix="/api", description="Inbox, channels, deliveries"
)

# Who sees every delivery of an incident: those who run the response or the drill.
OVERSEERS = ("commander", "drill_controller")


class DeliverySchema(StrictSchema):
    id = fields.Integer()
    channel = fields.String()
    address = fields.String(allow_none=True)
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    sent_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    skip_reason = fields.String(allow_none=True)


class NotificationSchema(StrictSchema):
    id = fields.Integer()
    key = fields.String()
    kind = fields.String()
    subject = fields.String()
    body = fields.String()
    incident_id = fields.Integer(allow_none=True)
    created_at = fields.AwareDateTime()
    read_at = fields.AwareDateTime(allow_none=True)
    cover_note = fields.String(allow_none=True)
    deliveries = fields.List(fields.Nested(DeliverySchema))


class IncidentNotificationSchema(NotificationSchema):
    person = fields.Function(lambda n: _person_code(n.person_id), allow_none=True)
    skipped_person = fields.Function(lambda n: _person_code(n.skipped_person_id), allow_none=True)
    supplier_id = fields.Integer(allow_none=True)


class InboxQuery(PageQuery):
    unread = fields.Boolean(load_default=False, truthy={"true"}, falsy={"false"})


class IncidentNotificationsQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(DELIVERY_STATUSES))
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS))


class ReadBody(StrictSchema):
    """Marking read takes no field, so a stray one is refused."""


class ChannelsBody(StrictSchema):
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)),
        required=True,
        validate=validate.Length(max=len(CHANNELS) * 2),
    )


class ChannelsSchema(StrictSchema):
    person = fields.String()
    channels = fields.List(fields.String())
    chosen = fields.Boolean()
    reachable = fields.Dict(keys=fields.String(), values=fields.Boolean())


def _person_code(person_id):
    person = db.session.get(Person, person_id) if person_id else None
    return person.code if person is not None else None


def own_notifications(user):
    """A query of the user's own notifications, newest first: their Person's and their
    supplier's."""
    mine = [
        clause
        for clause in (
            Notification.person_id == user.person_id if user.person_id else None,
            Notification.supplier_id == user.supplier_id if user.supplier_id else None,
        )
        if clause is not None
    ]
    query = select(Notification).options(selectinload(Notification.deliveries))
    query = query.where(or_(*mine)) if mine else query.where(Notification.id.is_(None))
    return query.order_by(Notification.created_at.desc(), Notification.id.desc())


def mark_read(user, notification_id, at):
    """Mark one of the user's own notifications read (once); another's is not found."""
    message = db.session.scalar(own_notifications(user).where(Notification.id == notification_id))
    if message is None:
        raise NotFound(f"No notification {notification_id} in your inbox.")
    if message.read_at is None:
        message.read_at = at
    return message


def paged_person(user):
    """The Person the user is paged as; channels belong to a person."""
    person = db.session.get(Person, user.person_id) if user.person_id else None
    if person is None:
        raise Conflict(
            f"{user.username} is not paged as a person, so has no channels to choose; "
            "an administrator links one with `users create --person`"
        )
    return person


def channels_of(person):
    """What GET /api/me/channels answers: the chosen channels (or the default, every
    channel the person has an address for) and which channels could reach them."""
    chosen = delivery.preferred_channels(person)
    reachable = {
        "inapp": True,
        "email": bool(person.email),
        "dingtalk": delivery.robot_for(person.department_id) is not None,
        "sms": bool(person.phone),
    }
    channels = chosen or [c for c in CHANNELS if reachable[c]]
    return {
        "person": person.code,
        "channels": channels,
        "chosen": chosen is not None,
        "reachable": reachable,
    }


@blp.route("/inbox")
class Inbox(MethodView):
    @require_roles()
    @blp.arguments(InboxQuery, location="query")
    @blp.response(200, NotificationSchema(many=True))
    def get(self, query):
        """The caller's own notifications, newest first, with how each went out."""
        rows = own_notifications(acting_user())
        if query["unread"]:
            rows = rows.where(Notification.read_at.is_(None))
        return db.session.scalars(rows.limit(query["limit"]).offset(query["offset"])).all()


@blp.route(f"/notifications/<{ID}:notification_id>/read")
class Read(MethodView):
    @require_roles()
    @blp.arguments(ReadBody)
    @blp.response(200, NotificationSchema)
    @blp.alt_response(404, description="Not in the caller's inbox")
    def post(self, _body, notification_id):
        """Mark one of the caller's own notifications read; marking it again changes
        nothing."""
        message = mark_read(acting_user(), notification_id, utcnow())
        db.session.commit()
        return message


@blp.route("/me/channels")
class MyChannels(MethodView):
    @require_roles()
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, ChannelsSchema)
    @blp.alt_response(409, description="The caller is not paged as a person")
    def get(self):
        """The channels the caller is reached on; the in-app inbox is always one."""
        return channels_of(paged_person(acting_user()))

    @require_roles()
    @blp.arguments(ChannelsBody)
    @blp.response(200, ChannelsSchema)
    @blp.alt_response(409, description="The caller is not paged as a person")
    @blp.alt_response(422, description="An unknown channel, or one without an address")
    def put(self, body):
        """Choose the channels (inapp, email, dingtalk, sms); the in-app inbox is added
        when left out. A channel without an address on file is refused."""
        person = paged_person(acting_user())
        delivery.set_channels(person, body["channels"], utcnow())
        db.session.commit()
        return channels_of(person)


@blp.route(f"/incidents/<{ID}:incident_id>/notifications")
class IncidentNotifications(MethodView):
    @require_roles(*OVERSEERS)
    @blp.arguments(IncidentNotificationsQuery, location="query")
    @blp.response(200, IncidentNotificationSchema(many=True))
    def get(self, query, incident_id):
        """Every notification of the incident, newest first, with each delivery's status,
        attempts and last error; filtered to those with a delivery of `status` or on
        `channel`."""
        from app.coordination.models import Delivery

        db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")
        rows = (
            select(Notification)
            .options(selectinload(Notification.deliveries))
            .filter_by(incident_id=incident_id)
        )
        if query["status"] or query["channel"]:
            matching = select(Delivery.notification_id)
            if query["status"]:
                matching = matching.where(Delivery.status == query["status"])
            if query["channel"]:
                matching = matching.where(Delivery.channel == query["channel"])
            rows = rows.where(Notification.id.in_(matching))
        rows = rows.order_by(Notification.created_at.desc(), Notification.id.desc())
        return db.session.scalars(rows.limit(query["limit"]).offset(query["offset"])).all()
