"""The expert pool and the labs over the API, and experts called to incidents.

Reading needs a signed-in member of staff (the pool holds phone numbers); adding and
changing entries, assigning and releasing experts need the commander or a liaison of the
command's office. The request boundary commits once.
"""

import logging

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, Blueprint, NoQuery, StrictSchema
from app.clock.services import now
from app.duties.api import STAFF
from app.errors import Forbidden
from app.extensions import db
from app.incidents.models import Incident
from app.process.schemas import Figure, Flag
from app.supply.schemas import Code, Text
from app.techsupport import experts, registry
from app.techsupport.models import Expert, ExpertAssignment, Lab
from app.types import isoformat_utc, utcnow

log = logging.getLogger(__name__)

blp = Blueprint("experts_api", __name__, url_prefix="/api", description="Experts and labs")

KEEPERS = ("commander", "liaison")


class ExpertCreateSchema(StrictSchema):
    code = Code(40, required=True)
    name = Text(100, required=True)
    organisation = Text(200, load_default=None)
    expertise = fields.List(
        fields.String(validate=validate.OneOf(registry.EXPERTISE)),
        required=True,
        validate=validate.Length(1, len(registry.EXPERTISE)),
    )
    phone = Text(40, load_default=None)
    available = Flag(load_default=True)
    on_call = Flag(load_default=False)
    fictitious = Flag(load_default=False)


def _at_least_one(data):
    if not data:
        raise ValidationError("give at least one field to change", "_schema")


class ExpertChangeSchema(StrictSchema):
    available = Flag()
    on_call = Flag()

    @validates_schema
    def check_something(self, data, **kwargs):
        _at_least_one(data)


class ExpertQuery(StrictSchema):
    expertise = fields.String(load_default=None, validate=validate.OneOf(registry.EXPERTISE))
    available = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})
    on_call = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})


class ExpertOutSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    organisation = fields.String(allow_none=True)
    expertise = fields.List(fields.String())
    phone = fields.String(allow_none=True)
    available = fields.Boolean()
    on_call = fields.Boolean()
    busy = fields.Boolean()
    fictitious = fields.Boolean()


HOURS = validate.Range(0, registry.MAX_TURNAROUND_HOURS, min_inclusive=False)


class LabCreateSchema(StrictSchema):
    code = Code(40, required=True)
    name = Text(200, required=True)
    organisation = Text(200, load_default=None)
    analytes = fields.List(
        Text(registry.ANALYTE_LENGTH),
        required=True,
        validate=validate.Length(1, registry.MAX_ANALYTES),
    )
    capacity_per_day = fields.Integer(
        strict=True, required=True, validate=validate.Range(0, registry.MAX_CAPACITY_PER_DAY)
    )
    turnaround_hours = Figure(required=True, validate=HOURS)
    phone = Text(40, load_default=None)
    address = Text(300, load_default=None)
    available = Flag(load_default=True)
    fictitious = Flag(load_default=False)


class LabChangeSchema(StrictSchema):
    available = Flag()
    capacity_per_day = fields.Integer(
        strict=True, validate=validate.Range(0, registry.MAX_CAPACITY_PER_DAY)
    )
    turnaround_hours = Figure(validate=HOURS)
    phone = Text(40, allow_none=True)
    address = Text(300, allow_none=True)

    @validates_schema
    def check_something(self, data, **kwargs):
        _at_least_one(data)


class LabQuery(StrictSchema):
    analyte = Text(registry.ANALYTE_LENGTH, load_default=None)
    available = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})


class LabOutSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    organisation = fields.String(allow_none=True)
    analytes = fields.List(fields.String())
    capacity_per_day = fields.Integer()
    turnaround_hours = fields.Float()
    phone = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    available = fields.Boolean()
    fictitious = fields.Boolean()


class AssignSchema(StrictSchema):
    expert = Code(40, required=True)
    role = Text(200, required=True)


class AssignmentOutSchema(StrictSchema):
    id = fields.Integer()
    incident_id = fields.Integer()
    expert = fields.String()
    expert_name = fields.String()
    organisation = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    role = fields.String()
    assigned_by = fields.String(allow_none=True)
    assigned_at = fields.String()
    released_at = fields.String(allow_none=True)


class NoBody(StrictSchema):
    """An action that takes no fields: any field given is refused."""


def expert_row(expert, busy=False):
    return {
        "id": expert.id,
        "code": expert.code,
        "name": expert.name,
        "organisation": expert.organisation,
        "expertise": list(expert.expertise or []),
        "phone": expert.phone,
        "available": expert.available,
        "on_call": expert.on_call,
        "busy": busy,
        "fictitious": expert.fictitious,
    }


def assignment_row(assignment):
    expert = assignment.expert
    return {
        "id": assignment.id,
        "incident_id": assignment.incident_id,
        "expert": expert.code,
        "expert_name": expert.name,
        "organisation": expert.organisation,
        "phone": expert.phone,
        "role": assignment.role,
        "assigned_by": assignment.assigned_by,
        "assigned_at": isoformat_utc(assignment.assigned_at),
        "released_at": isoformat_utc(assignment.released_at),
    }


def labs(analyte=None, available=None):
    """Labs filtered by an analyte they test and availability, available and faster
    first."""
    query = select(Lab)
    if available is not None:
        query = query.filter_by(available=available)
    rows = db.session.scalars(query).all()
    if analyte is not None:
        rows = [lab for lab in rows if analyte in (lab.analytes or [])]
    return sorted(rows, key=lambda lab: (not lab.available, lab.turnaround_hours, lab.code))


def check_keeper():
    """403 unless the acting user is the commander or a liaison of the office."""
    user = acting_user()
    if not registry.commander_or_office(user):
        raise Forbidden(
            f"this needs the commander or a liaison of the command's office "
            f"({registry.office_department_code()}); {user.username} is not"
        )
    return user


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")


@blp.route("/experts")
class Experts(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(ExpertQuery, location="query")
    @blp.response(200, ExpertOutSchema(many=True))
    def get(self, query):
        """The expert pool, filtered by `expertise` (a code), `available` and `on_call`
        (true or false): available, on-call and unassigned experts first."""
        at = utcnow()
        rows = experts.directory(at=at, **query)
        busy = experts.busy_at([e.id for e in rows], at)
        return [expert_row(e, e.id in busy) for e in rows]

    @require_roles(*KEEPERS)
    @blp.arguments(ExpertCreateSchema)
    @blp.response(201, ExpertOutSchema)
    @blp.alt_response(403, description="Neither the commander nor the office")
    @blp.alt_response(409, description="The code is taken")
    def post(self, body):
        """Add an expert to the pool; `expertise` is a list of codes."""
        check_keeper()
        expert = registry.add_expert(body)
        db.session.commit()
        return expert_row(expert)


@blp.route(f"/experts/<{ID}:expert_id>")
class ExpertById(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, ExpertOutSchema)
    def get(self, expert_id):
        expert = db.get_or_404(Expert, expert_id, description=f"No expert {expert_id}.")
        return expert_row(expert, bool(experts.busy_at([expert.id], utcnow())))

    @require_roles(*KEEPERS)
    @blp.arguments(ExpertChangeSchema)
    @blp.response(200, ExpertOutSchema)
    @blp.alt_response(403, description="Neither the commander nor the office")
    def patch(self, body, expert_id):
        """Mark the expert available or not (`available`), on call or not (`on_call`)."""
        check_keeper()
        expert = experts.locked_expert(expert_id)
        if expert is None:
            abort(404, message=f"No expert {expert_id}.")
        registry.change_expert(expert, **body)
        db.session.commit()
        return expert_row(expert)


@blp.route("/labs")
class Labs(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(LabQuery, location="query")
    @blp.response(200, LabOutSchema(many=True))
    def get(self, query):
        """The labs, filtered by an `analyte` they test and `available`: available and
        faster ones first."""
        return labs(**query)

    @require_roles(*KEEPERS)
    @blp.arguments(LabCreateSchema)
    @blp.response(201, LabOutSchema)
    @blp.alt_response(403, description="Neither the commander nor the office")
    @blp.alt_response(409, description="The code is taken")
    def post(self, body):
        """Add a lab: what it tests, samples a day, hours to a result."""
        check_keeper()
        lab = registry.add_lab(body)
        db.session.commit()
        return lab


@blp.route(f"/labs/<{ID}:lab_id>")
class LabById(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, LabOutSchema)
    def get(self, lab_id):
        return db.get_or_404(Lab, lab_id, description=f"No lab {lab_id}.")

    @require_roles(*KEEPERS)
    @blp.arguments(LabChangeSchema)
    @blp.response(200, LabOutSchema)
    @blp.alt_response(403, description="Neither the commander nor the office")
    def patch(self, body, lab_id):
        """Change a lab's availability, daily capacity, turnaround, phone or address."""
        check_keeper()
        lab = db.session.scalar(select(Lab).where(Lab.id == lab_id).with_for_update())
        if lab is None:
            abort(404, message=f"No lab {lab_id}.")
        registry.change_lab(lab, body)
        db.session.commit()
        return lab


@blp.route(f"/incidents/<{ID}:incident_id>/experts")
class IncidentExperts(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, AssignmentOutSchema(many=True))
    def get(self, incident_id):
        """The experts called to the incident, open assignments first."""
        return [assignment_row(a) for a in experts.assignments_of(_incident(incident_id))]

    @require_roles(*KEEPERS)
    @blp.arguments(AssignSchema)
    @blp.response(201, AssignmentOutSchema)
    @blp.alt_response(403, description="Neither the commander nor the office")
    @blp.alt_response(409, description="Not available, already assigned, or closed")
    def post(self, body, incident_id):
        """Call an expert (by code) to the incident for a `role`, on the incident's clock;
        it goes on the incident's timeline."""
        user = check_keeper()
        found = _incident(incident_id)
        expert = registry.expert_by_code(body["expert"])
        assignment = experts.assign_expert(found, expert, body["role"], user.username, now(found))
        db.session.commit()
        return assignment_row(assignment)


@blp.route(f"/expert-assignments/<{ID}:assignment_id>/release")
class Release(MethodView):
    @require_roles(*KEEPERS)
    @blp.arguments(NoBody)
    @blp.response(200, AssignmentOutSchema)
    @blp.alt_response(403, description="Neither the commander nor the office")
    @blp.alt_response(409, description="Released already")
    def post(self, _body, assignment_id):
        """The expert's work on the incident is over."""
        check_keeper()
        assignment = db.session.scalar(
            select(ExpertAssignment)
            .where(ExpertAssignment.id == assignment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if assignment is None:
            abort(404, message=f"No expert assignment {assignment_id}.")
        experts.release_expert(assignment, now(_incident(assignment.incident_id)))
        db.session.commit()
        return assignment_row(assignment)
