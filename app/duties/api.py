"""The statutory clock over the API: the response level, duty assignments and their
matrix, checklists, suspected-poisoning reports, and who is who (contacts, rosters,
working groups).

Everything needs a signed-in user; each change needs the role that makes it. A liaison
answers only for their own department. The request boundary commits once.
"""

import io
import logging
import re

from flask import send_file
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, Blueprint, NoQuery, StrictSchema
from app.clock.services import now
from app.duties import matrix
from app.duties import services as duties
from app.duties.models import ChecklistItem, DutyAssignment
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.organisation.models import Department, Person, RosterShift, WorkingGroup
from app.organisation.services import add_shift, on_duty
from app.process import response
from app.process.models import LEVELS
from app.process.schemas import Flag
from app.process.services import PHASES, latest_plan
from app.supply.schemas import Code, Instant, Text
from app.techsupport.trace_schemas import TraceSchema

log = logging.getLogger(__name__)

blp = Blueprint("duties", __name__, url_prefix="/api", description="Statutory clock, who is who")

SIGNED_IN = ("commander", "liaison", "supplier", "inspector", "drill_controller", "viewer")
STAFF = ("commander", "liaison", "inspector", "drill_controller", "viewer")


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")


def _acting_person():
    """The Person the signed-in user is paged as, if any."""
    user = acting_user()
    return db.session.get(Person, user.person_id) if user and user.person_id else None


def _check_own_department(assignment):
    user = acting_user()
    if user.department_id != assignment.department_id:
        raise Forbidden(
            f"{user.username} answers for their own department only, not for "
            f"{assignment.department.code}"
        )


class AssignmentSchema(StrictSchema):
    id = fields.Integer()
    department = fields.String()
    department_name = fields.String()
    duty = fields.String()
    title = fields.String()
    legal_basis = fields.String()
    trigger = fields.String()
    status = fields.String()
    objection = fields.String(allow_none=True)
    close_note = fields.String(allow_none=True)
    escalation_step = fields.Integer()
    assigned_at = fields.String()
    deadline_at = fields.String()
    confirmed_at = fields.String(allow_none=True)
    objected_at = fields.String(allow_none=True)
    reminded_at = fields.String(allow_none=True)
    overdue_at = fields.String(allow_none=True)
    escalated_at = fields.String(allow_none=True)
    closed_at = fields.String(allow_none=True)


class DepartmentClockSchema(StrictSchema):
    department = fields.String()
    assigned_at = fields.String(allow_none=True)
    reminded_at = fields.String(allow_none=True)
    confirmed_at = fields.String(allow_none=True)
    escalated_at = fields.String(allow_none=True)


class MatrixSchema(StrictSchema):
    incident_id = fields.Integer()
    departments = fields.List(fields.Nested(DepartmentClockSchema))
    assignments = fields.List(fields.Nested(AssignmentSchema))


class AssignmentQuery(StrictSchema):
    department = Code(100, load_default=None)
    status = fields.String(
        load_default=None,
        validate=validate.OneOf(
            ("assigned", "overdue", "escalated", "objected", "confirmed", "closed", "retired")
        ),
    )


class EmptyBody(StrictSchema):
    """A button's request: no field is taken, so a stray one is refused."""


class ReasonSchema(StrictSchema):
    reason = Text(2000, required=True)


class NoteSchema(StrictSchema):
    note = Text(2000, load_default="指挥部关闭")


class DecisionSchema(StrictSchema):
    uphold = Flag(required=True)
    reason = Text(2000, required=True)


class LevelSchema(StrictSchema):
    level = fields.String(required=True, allow_none=True, validate=validate.OneOf(LEVELS))
    reason = Text(2000, required=True)


class PhaseSchema(StrictSchema):
    phase = fields.String(required=True, validate=validate.OneOf(PHASES))
    reason = Text(2000, load_default=None)


class LevelOutcomeSchema(StrictSchema):
    incident_id = fields.Integer()
    level = fields.String(allow_none=True)
    phase = fields.String(allow_none=True)
    status = fields.String()
    duties = fields.Dict()
    # Coordination tasks called off when the response ends.
    tasks = fields.Dict()
    checklist = fields.Dict()


class ChecklistItemSchema(StrictSchema):
    id = fields.Integer()
    phase = fields.String()
    code = fields.String()
    level = fields.String()
    text = fields.String()
    text_en = fields.String(allow_none=True)
    measure = fields.String(allow_none=True)
    status = fields.String()
    created_at = fields.AwareDateTime()
    done_at = fields.AwareDateTime(allow_none=True)


class PoisoningReportSchema(StrictSchema):
    title = Text(300, required=True)
    plan = Code(100, load_default=None)
    demand_point = Code(64, load_default=None)
    place = Text(500, load_default=None)
    harmed = fields.Integer(required=True, strict=True, validate=validate.Range(0, 10**7))
    deaths = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 10**7))
    counties = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 1000))
    townships = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 10**5))
    school = Flag(load_default=False)
    major_event = Flag(load_default=False)


class ReportedIncidentSchema(StrictSchema):
    id = fields.Integer()
    duplicate = fields.Boolean()
    kind = fields.String()
    title = fields.String()
    status = fields.String()
    phase = fields.String(allow_none=True)
    place = fields.String(allow_none=True)
    suggested_level = fields.String(allow_none=True)
    suggested_rule = fields.String(allow_none=True)
    figures = fields.Dict()
    opened_at = fields.AwareDateTime()
    # The trace of the demand point named, with the samples it held (null without one).
    trace = fields.Nested(TraceSchema, allow_none=True)


def _assignment(assignment_id):
    return db.get_or_404(
        DutyAssignment, assignment_id, description=f"No duty assignment {assignment_id}."
    )


def _row(assignment):
    return matrix.assignment_row(assignment)


def _live(incident):
    if incident.status == "closed":
        raise Conflict(f"incident {incident.id} is closed")
    return incident


@blp.route(f"/incidents/<{ID}:incident_id>/assignments")
class Assignments(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(AssignmentQuery, location="query")
    @blp.response(200, AssignmentSchema(many=True))
    def get(self, query, incident_id):
        """The incident's duty assignments, filtered by department code or status."""
        found = _incident(incident_id)
        if query["department"]:
            _department(query["department"])
        rows = matrix.matrix_rows(found)
        return [
            row
            for row in rows
            if (query["department"] in (None, row["department"]))
            and (query["status"] in (None, row["status"]))
        ]


@blp.route(f"/incidents/<{ID}:incident_id>/duty-matrix")
class DutyMatrix(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, MatrixSchema)
    def get(self, incident_id):
        """Department by duty by status: each department's clock and every assignment.
        The same as an Excel file: GET /incidents/<id>/duties.xlsx."""
        found = _incident(incident_id)
        return {
            "incident_id": found.id,
            "departments": matrix.department_summary(found),
            "assignments": matrix.matrix_rows(found),
        }


@blp.route(f"/assignments/<{ID}:assignment_id>/confirm")
class Confirm(MethodView):
    @require_roles("liaison")
    @blp.arguments(EmptyBody)
    @blp.response(200, AssignmentSchema)
    @blp.alt_response(403, description="Another department's duty")
    @blp.alt_response(409, description="The assignment is closed or retired")
    def post(self, _body, assignment_id):
        """The liaison confirms the duty for their own department."""
        assignment = _assignment(assignment_id)
        _check_own_department(assignment)
        incident = _live(_incident(assignment.incident_id))
        duties.confirm(
            assignment, _acting_person(), now(incident), department_id=acting_user().department_id
        )
        db.session.commit()
        return _row(assignment)


@blp.route(f"/assignments/<{ID}:assignment_id>/objection")
class Objection(MethodView):
    @require_roles("liaison")
    @blp.arguments(ReasonSchema)
    @blp.response(200, AssignmentSchema)
    @blp.alt_response(403, description="Another department's duty")
    def post(self, body, assignment_id):
        """The liaison objects to the duty, with a reason the commander receives."""
        assignment = _assignment(assignment_id)
        _check_own_department(assignment)
        incident = _live(_incident(assignment.incident_id))
        duties.object_to(
            assignment,
            _acting_person(),
            body["reason"],
            now(incident),
            department_id=acting_user().department_id,
        )
        db.session.commit()
        return _row(assignment)


@blp.route(f"/assignments/<{ID}:assignment_id>/decision")
class Decision(MethodView):
    @require_roles("commander")
    @blp.arguments(DecisionSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, body, assignment_id):
        """The commander upholds an objected duty (a fresh deadline) or withdraws it."""
        assignment = _assignment(assignment_id)
        incident = _live(_incident(assignment.incident_id))
        duties.decide_objection(
            assignment, uphold=body["uphold"], reason=body["reason"], at=now(incident)
        )
        db.session.commit()
        return _row(assignment)


@blp.route(f"/assignments/<{ID}:assignment_id>/close")
class Close(MethodView):
    @require_roles("commander")
    @blp.arguments(NoteSchema)
    @blp.response(200, AssignmentSchema)
    def post(self, body, assignment_id):
        """The commander closes an assignment whose work is done or no longer needed."""
        assignment = _assignment(assignment_id)
        incident = _live(_incident(assignment.incident_id))
        duties.close(assignment, body["note"], now(incident))
        db.session.commit()
        return _row(assignment)


def _level_outcome(found, outcome):
    return {
        "incident_id": found.id,
        "level": found.level,
        "phase": found.phase,
        "status": found.status,
        "duties": outcome.get("duties", {}),
        "tasks": outcome.get("tasks", {}),
        "checklist": outcome.get("checklist", {}),
    }


@blp.route(f"/incidents/<{ID}:incident_id>/level")
class Level(MethodView):
    @require_roles("commander")
    @blp.arguments(LevelSchema)
    @blp.response(200, LevelOutcomeSchema)
    @blp.alt_response(409, description="The incident is closed, or the level is unchanged")
    def post(self, body, incident_id):
        """Confirm, raise or lower the response level (`level: null` ends the response),
        always with a reason. Answers what happened to duties and checklist lines."""
        found = _incident(incident_id)
        outcome = response.set_level(
            found, body["level"], at=now(found), reason=body["reason"], by=_acting_person()
        )
        db.session.commit()
        return _level_outcome(found, outcome)


@blp.route(f"/incidents/<{ID}:incident_id>/phase")
class Phase(MethodView):
    @require_roles("commander")
    @blp.arguments(PhaseSchema)
    @blp.response(200, LevelOutcomeSchema)
    def post(self, body, incident_id):
        """Move the response to another phase; the checklist follows the plan."""
        found = _incident(incident_id)
        outcome = response.enter_phase(found, body["phase"], at=now(found), reason=body["reason"])
        db.session.commit()
        return _level_outcome(found, outcome)


@blp.route(f"/incidents/<{ID}:incident_id>/checklist")
class Checklist(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, ChecklistItemSchema(many=True))
    def get(self, incident_id):
        """Every checklist line of the incident, open, done and retired."""
        _incident(incident_id)
        return db.session.scalars(
            select(ChecklistItem).filter_by(incident_id=incident_id).order_by(ChecklistItem.id)
        ).all()


@blp.route(f"/checklist-items/<{ID}:item_id>/done")
class ChecklistDone(MethodView):
    @require_roles("commander")
    @blp.arguments(EmptyBody)
    @blp.response(200, ChecklistItemSchema)
    def post(self, _body, item_id):
        """The commander ticks off a line of the command's checklist; the closure lines
        stay open to tick after the end."""
        item = db.get_or_404(ChecklistItem, item_id, description=f"No checklist line {item_id}.")
        found = _incident(item.incident_id)
        if item.phase != "closure":
            _live(found)
        duties.tick_off(item, _acting_person(), now(found), user=acting_user())
        db.session.commit()
        return item


@blp.route("/food-safety-reports")
class PoisoningReports(MethodView):
    @require_roles("commander", "liaison", "inspector")
    @blp.arguments(PoisoningReportSchema)
    @blp.response(201, ReportedIncidentSchema)
    @blp.alt_response(200, description="The same report again: the incident it opened")
    def post(self, body):
        """Report a suspected food poisoning: a food-safety incident opens, its level is
        suggested from the plan's table, and the initial report (2 hours) and the plan's
        measures start at once as assignments with deadlines.

        The same report sent again (the same `Idempotency-Key` header, or the same content
        within ten minutes) answers 200 with the incident it opened, `duplicate: true`.
        """
        from flask import current_app, request
        from sqlalchemy.exc import IntegrityError

        from app.supply.services import demand_point_by_code
        from app.types import utcnow

        plan = latest_plan(body["plan"] or current_app.config["BAOGONG_PLAN"], required=False)
        if plan is None:
            raise InvalidInput("report refused", {"plan": ["no such plan"]})
        point = None
        if body["demand_point"]:
            point = demand_point_by_code(body["demand_point"])
            if point is None:
                raise InvalidInput("report refused", {"demand_point": ["no such demand point"]})
        key = request.headers.get("Idempotency-Key")
        if key is not None and not re.fullmatch(r"[A-Za-z0-9._:-]{8,100}", key):
            raise InvalidInput(
                "report refused", {"Idempotency-Key": ["8 to 100 letters, digits, . _ : -"]}
            )
        figures = {k: body[k] for k in ("harmed", "deaths", "counties", "townships")}
        figures.update(school=body["school"], major_event=body["major_event"])

        def report():
            return response.report_suspected_poisoning(
                plan,
                at=utcnow(),
                title=body["title"],
                figures=figures,
                place=body["place"],
                demand_point=point,
                by=_acting_person(),
                report_key=key and f"key-{key}",
            )

        try:
            found = report()
            db.session.commit()
        except IntegrityError:
            # The same report, sent at the same moment, was stored first: answer with it.
            db.session.rollback()
            found = report()
            db.session.commit()
        return found, 200 if found.duplicate else 201


# Who is who -------------------------------------------------------------------------


class DepartmentSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    name_en = fields.String(allow_none=True)
    kind = fields.String()


class Phone(Text):
    """Digits with the usual separators and an optional leading +: nothing a spreadsheet
    would run as a formula."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(r"\+?[0-9][0-9 ()-]{2,38}", text):
            raise ValidationError("digits, spaces, ( ) and - only")
        return text


class ContactSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    code = Code(64, required=True)
    name = Text(100, required=True)
    department = Code(64, required=True, attribute="department.code")
    role = fields.String(
        required=True, validate=validate.OneOf(("commander", "liaison", "staff", "inspector"))
    )
    title = Text(200, load_default=None, allow_none=True)
    phone = Phone(40, load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=200))
    on_duty = Flag(load_default=True)
    available = Flag(load_default=True)


class ContactChangeSchema(StrictSchema):
    title = Text(200, allow_none=True)
    phone = Phone(40, allow_none=True)
    email = fields.Email(allow_none=True, validate=validate.Length(max=200))
    on_duty = Flag()
    available = Flag()


class ShiftSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    department = Code(64, required=True, attribute="department.code")
    role = fields.String(
        required=True, validate=validate.OneOf(("commander", "liaison", "inspector"))
    )
    person = Code(64, required=True, attribute="person.code")
    substitute = Code(64, load_default=None, allow_none=True, attribute="substitute.code")
    starts_at = Instant(required=True)
    ends_at = Instant(required=True)
    note = Text(500, load_default=None, allow_none=True)


class ShiftQuery(StrictSchema):
    department = Code(64, load_default=None)


class MemberSchema(StrictSchema):
    code = fields.String()
    name = fields.String()
    department = fields.String()
    phone = fields.String(allow_none=True)
    on_duty_now = fields.Boolean()


class GroupSchema(StrictSchema):
    code = fields.String()
    name = fields.String()
    name_en = fields.String(allow_none=True)
    lead = fields.String(allow_none=True)
    members = fields.List(fields.Nested(MemberSchema))


def _department(code, field="department"):
    found = db.session.scalar(select(Department).filter_by(code=code))
    if found is None:
        raise InvalidInput("refused", {field: [f"no department {code!r}"]})
    return found


def _person(code, field):
    found = db.session.scalar(select(Person).filter_by(code=code))
    if found is None:
        raise InvalidInput("refused", {field: [f"no person {code!r}"]})
    return found


def may_change(user, department_id, role=None):
    """A commander changes anyone's entries; a liaison only their own department's, and
    never a commander's, since escalations go to the commander."""
    if user.role == "commander":
        return True
    return user.role == "liaison" and user.department_id == department_id and role != "commander"


def _may_change_department(department_id, role=None):
    user = acting_user()
    if not may_change(user, department_id, role):
        raise Forbidden(
            f"{user.username} changes their own department's entries only, never a commander's"
        )


@blp.route("/departments")
class Departments(MethodView):
    @require_roles(*SIGNED_IN)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, DepartmentSchema(many=True))
    def get(self):
        return db.session.scalars(select(Department).order_by(Department.id)).all()


@blp.route("/contacts")
class Contacts(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(ShiftQuery, location="query")
    @blp.response(200, ContactSchema(many=True))
    def get(self, query):
        """People who can be paged, with their phone and whether they can be reached."""
        rows = select(Person).order_by(Person.department_id, Person.id)
        if query["department"]:
            rows = rows.where(Person.department_id == _department(query["department"]).id)
        return db.session.scalars(rows).all()

    @require_roles("commander", "liaison")
    @blp.arguments(ContactSchema)
    @blp.response(201, ContactSchema)
    @blp.alt_response(409, description="The code is taken")
    def post(self, body):
        department = _department(body.pop("department")["code"])
        _may_change_department(department.id, body["role"])
        if db.session.scalar(select(Person.id).filter_by(code=body["code"])) is not None:
            raise Conflict(f"{body['code']} exists; change it with PATCH")
        person = Person(department_id=department.id, **body)
        db.session.add(person)
        db.session.commit()
        return person


@blp.route(f"/contacts/<{ID}:person_id>")
class Contact(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, ContactSchema)
    def get(self, person_id):
        return db.get_or_404(Person, person_id, description=f"No contact {person_id}.")

    @require_roles("commander", "liaison")
    @blp.arguments(ContactChangeSchema)
    @blp.response(200, ContactSchema)
    def patch(self, body, person_id):
        """Change a phone, or mark someone as unreachable: their substitute is paged."""
        person = db.get_or_404(Person, person_id, description=f"No contact {person_id}.")
        _may_change_department(person.department_id, person.role)
        was_available = person.available
        for key, value in body.items():
            setattr(person, key, value)
        if was_available and not person.available:
            duties.hand_over(person)
        db.session.commit()
        return person


@blp.route("/rosters")
class Rosters(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(ShiftQuery, location="query")
    @blp.response(200, ShiftSchema(many=True))
    def get(self, query):
        """Shifts of the duty roster, latest first."""
        rows = select(RosterShift).order_by(RosterShift.starts_at.desc(), RosterShift.id)
        if query["department"]:
            rows = rows.where(RosterShift.department_id == _department(query["department"]).id)
        return db.session.scalars(rows.limit(1000)).all()

    @require_roles("commander", "liaison")
    @blp.arguments(ShiftSchema)
    @blp.response(201, ShiftSchema)
    def post(self, body):
        """Put someone on duty from one instant to another, with their substitute."""
        department = _department(body["department"]["code"])
        _may_change_department(department.id, body["role"])
        substitute = body.get("substitute") or {}
        shift = add_shift(
            department_id=department.id,
            role=body["role"],
            person=_person(body["person"]["code"], "person"),
            substitute=_person(substitute["code"], "substitute")
            if substitute.get("code")
            else None,
            starts_at=body["starts_at"],
            ends_at=body["ends_at"],
            note=body["note"],
        )
        db.session.commit()
        return shift


@blp.route(f"/rosters/<{ID}:shift_id>")
class Roster(MethodView):
    @require_roles("commander", "liaison")
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(204)
    def delete(self, shift_id):
        shift = db.get_or_404(RosterShift, shift_id, description=f"No shift {shift_id}.")
        _may_change_department(shift.department_id, shift.role)
        db.session.delete(shift)
        db.session.commit()


def groups_of(incident, at):
    """The incident's working groups with their members and whether each is on duty."""
    groups = []
    for group in db.session.scalars(
        select(WorkingGroup).filter_by(incident_id=incident.id).order_by(WorkingGroup.id)
    ):
        lead = (
            db.session.get(Department, group.lead_department_id)
            if group.lead_department_id
            else None
        )
        members = []
        for member in group.members:
            person = member.person
            members.append(
                {
                    "code": person.code,
                    "name": person.name,
                    "department": person.department.code,
                    "phone": person.phone,
                    "on_duty_now": on_duty(person.department_id, person.role, at) == person,
                }
            )
        groups.append(
            {
                "code": group.code,
                "name": group.name,
                "name_en": group.name_en,
                "lead": lead.code if lead else None,
                "members": members,
            }
        )
    return groups


@blp.route(f"/incidents/<{ID}:incident_id>/groups")
class Groups(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, GroupSchema(many=True))
    def get(self, incident_id):
        """The command's working groups for the incident, filled from the roster."""
        found = _incident(incident_id)
        return groups_of(found, now(found))


def matrix_file(incident, english):
    return send_file(
        io.BytesIO(matrix.matrix_workbook(incident, english=english)),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"duty-matrix-{incident.id}.xlsx",
    )
