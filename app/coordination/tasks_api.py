"""Coordination tasks over the API: set, list and read tasks of an incident, and accept,
decline, report progress, finish, reassign and cancel them.

A liaison acts for their own department only; the commander for any. Departments are
named by code. The request boundary commits once.
"""

import logging

from flask.views import MethodView
from marshmallow import fields, validate, validates_schema
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, Blueprint, NoQuery, StrictSchema
from app.clock.services import now
from app.coordination import tasks
from app.coordination.models import TASK_KINDS, TASK_PRIORITIES, TASK_STATUSES
from app.duties.api import STAFF
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.supply.schemas import Code, Instant, Text
from app.types import isoformat_utc

log = logging.getLogger(__name__)

blp = Blueprint("coordination_tasks", __name__, url_prefix="/api", description="Coordination tasks")


class TaskCreateSchema(StrictSchema):
    title = Text(300, required=True)
    details = Text(4000, blank=True, load_default="")
    priority = fields.String(required=True, validate=validate.OneOf(TASK_PRIORITIES))
    due_at = Instant(required=True)
    kind = fields.String(load_default="task", validate=validate.OneOf(TASK_KINDS))
    departments = fields.List(Code(64), required=True, validate=validate.Length(1, 30))
    acting_department = Code(64, load_default=None)
    supplier = Code(64, load_default=None)
    place = Text(500, load_default=None)

    @validates_schema
    def check_place_of_inspection(self, data, **kwargs):
        from marshmallow import ValidationError

        if data.get("kind") != "joint_inspection" and (data.get("supplier") or data.get("place")):
            raise ValidationError("only a joint inspection names a supplier or place", "kind")


class TaskQuery(StrictSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(TASK_STATUSES))
    department = Code(64, load_default=None)
    priority = fields.String(load_default=None, validate=validate.OneOf(TASK_PRIORITIES))
    overdue = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})


class ShareSchema(StrictSchema):
    """Whose share: a liaison's own department (the default), or any for the commander."""

    department = Code(64, load_default=None)


class DeclineSchema(ShareSchema):
    reason = Text(2000, required=True)


class ProgressSchema(ShareSchema):
    note = Text(2000, required=True)
    percent = fields.Integer(load_default=None, strict=True, validate=validate.Range(0, 100))


class DoneSchema(ShareSchema):
    note = Text(2000, blank=True, load_default="")


class ReassignSchema(StrictSchema):
    from_department = Code(64, required=True)
    to_department = Code(64, required=True)
    reason = Text(2000, required=True)
    due_at = Instant(load_default=None)


class CancelSchema(StrictSchema):
    reason = Text(2000, required=True)


class ShareOutSchema(StrictSchema):
    id = fields.Integer()
    department = fields.String()
    department_name = fields.String()
    state = fields.String()
    due_at = fields.String()
    assigned_at = fields.String()
    accepted_at = fields.String(allow_none=True)
    declined_at = fields.String(allow_none=True)
    decline_reason = fields.String(allow_none=True)
    done_at = fields.String(allow_none=True)
    done_note = fields.String(allow_none=True)
    overdue_at = fields.String(allow_none=True)
    escalated_at = fields.String(allow_none=True)
    escalation_step = fields.Integer()
    reassigned_at = fields.String(allow_none=True)
    reassign_reason = fields.String(allow_none=True)
    reassigned_to = fields.String(allow_none=True)
    reassigned_from = fields.String(allow_none=True)


class UpdateOutSchema(StrictSchema):
    id = fields.Integer()
    event = fields.String()
    at = fields.String()
    department = fields.String(allow_none=True)
    user = fields.String(allow_none=True)
    note = fields.String()
    percent = fields.Integer(allow_none=True)


class TaskOutSchema(StrictSchema):
    id = fields.Integer()
    incident_id = fields.Integer()
    title = fields.String()
    details = fields.String()
    priority = fields.String()
    kind = fields.String()
    status = fields.String()
    overdue = fields.Boolean()
    due_at = fields.String()
    created_at = fields.String()
    created_by = fields.String(allow_none=True)
    created_by_department = fields.String(allow_none=True)
    supplier = fields.String(allow_none=True)
    place = fields.String(allow_none=True)
    done_at = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    shares = fields.List(fields.Nested(ShareOutSchema))
    updates = fields.List(fields.Nested(UpdateOutSchema))


SHARE_INSTANTS = ("due_at", "assigned_at", "accepted_at", "declined_at", "done_at")
SHARE_INSTANTS += ("overdue_at", "escalated_at", "reassigned_at")


def share_row(share):
    """One department's share as the API and pages show it; instants ISO-8601 UTC."""
    by_id = {s.id: s for s in share.task.shares}
    moved_to = by_id.get(share.reassigned_to_id)
    moved_from = by_id.get(share.reassigned_from_id)
    row = {
        "id": share.id,
        "department": share.department.code,
        "department_name": share.department.name,
        "state": share.state,
        "decline_reason": share.decline_reason,
        "done_note": share.done_note,
        "escalation_step": share.escalation_step,
        "reassign_reason": share.reassign_reason,
        "reassigned_to": moved_to.department.code if moved_to else None,
        "reassigned_from": moved_from.department.code if moved_from else None,
    }
    row.update({name: isoformat_utc(getattr(share, name)) for name in SHARE_INSTANTS})
    return row


def task_row(task, at, with_updates=True):
    """A task with its shares (and its history, when asked) as the API answers it."""
    row = {
        "id": task.id,
        "incident_id": task.incident_id,
        "title": task.title,
        "details": task.details,
        "priority": task.priority,
        "kind": task.kind,
        "status": task.status,
        "overdue": tasks.is_overdue(task, at),
        "due_at": isoformat_utc(task.due_at),
        "created_at": isoformat_utc(task.created_at),
        "created_by": _username(task.created_by_user_id),
        "created_by_department": (
            task.created_by_department.code if task.created_by_department else None
        ),
        "supplier": task.supplier.code if task.supplier else None,
        "place": task.place,
        "done_at": isoformat_utc(task.done_at),
        "cancelled_at": isoformat_utc(task.cancelled_at),
        "cancel_reason": task.cancel_reason,
        "shares": [share_row(s) for s in task.shares],
    }
    if with_updates:
        row["updates"] = [
            {
                "id": u.id,
                "event": u.event,
                "at": isoformat_utc(u.at),
                "department": u.department.code if u.department else None,
                "user": u.user.username if u.user else None,
                "note": u.note,
                "percent": u.percent,
            }
            for u in task.updates
        ]
    return row


def _username(user_id):
    from app.accounts.models import User

    user = db.session.get(User, user_id) if user_id else None
    return user.username if user else None


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")


def _locked_task(task_id):
    """The task, held until the commit; 404 when there is none."""
    from flask_smorest import abort

    task = tasks.locked(task_id)
    if task is None:
        abort(404, message=f"No task {task_id}.")
    return task


def _live(incident):
    if incident.status == "closed":
        raise Conflict(f"incident {incident.id} is closed")
    return incident


def new_task(incident, body, user):
    """Set a task from a checked body (API or page) for `user`; the caller commits."""
    from app.supply.models import Supplier

    acting = None
    if user.role == "liaison":
        if user.department_id is None:
            raise Forbidden(f"{user.username} has no department to act for")
        if body.get("acting_department") and body["acting_department"] != user.department.code:
            raise Forbidden(
                f"{user.username} sets tasks from their own department only, not from "
                f"{body['acting_department']}"
            )
        acting = user.department
    elif body.get("acting_department"):
        acting = tasks.department_by_code(body["acting_department"], "acting_department")
    departments = [tasks.department_by_code(c, "departments") for c in body["departments"]]
    supplier = None
    if body.get("supplier"):
        supplier = db.session.scalar(select(Supplier).filter_by(code=body["supplier"]))
        if supplier is None:
            raise InvalidInput(
                "unknown supplier", {"supplier": [f"no supplier {body['supplier']!r}"]}
            )
    return tasks.create_task(
        incident,
        title=body["title"],
        details=body.get("details") or "",
        priority=body["priority"],
        due_at=body["due_at"],
        kind=body.get("kind") or "task",
        departments=departments,
        at=now(incident),
        user=user,
        acting_department=acting,
        supplier=supplier,
        place=body.get("place"),
    )


def acting_share(task, department_code):
    """The share the signed-in user acts on (403 for another department's)."""
    department = (
        tasks.department_by_code(department_code, "department") if department_code else None
    )
    return tasks.share_for(task, acting_user(), department)


def may_manage_or_403(task):
    user = acting_user()
    if not tasks.may_manage(user, task):
        raise Forbidden(
            f"{user.username} reassigns and cancels only tasks their own department set"
        )


@blp.route(f"/incidents/<{ID}:incident_id>/tasks")
class IncidentTasks(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(TaskQuery, location="query")
    @blp.response(200, TaskOutSchema(many=True))
    def get(self, query, incident_id):
        """The incident's coordination tasks, newest first, filtered by status, department
        (code; tasks where it holds a share), priority and overdue (true or false)."""
        found = _incident(incident_id)
        department = None
        if query["department"]:
            department = tasks.department_by_code(query["department"], "department")
        at = now(found)
        rows = tasks.tasks_of(
            found,
            status=query["status"],
            department=department,
            priority=query["priority"],
            overdue=query["overdue"],
            at=at,
        )
        return [task_row(task, at, with_updates=False) for task in rows]

    @require_roles("commander", "liaison")
    @blp.arguments(TaskCreateSchema)
    @blp.response(201, TaskOutSchema)
    @blp.alt_response(403, description="A liaison setting a task from another department")
    @blp.alt_response(409, description="The incident is closed")
    def post(self, body, incident_id):
        """Set a task (`kind` task: one department; joint_inspection: two or more) with a
        due time (ISO-8601 with offset, after now) and a priority. A liaison sets it from
        their own department for others; the commander from the command centre, or from
        `acting_department`."""
        # TODO: no Idempotency-Key: a request sent twice (a retry, a double click on the
        # page) sets two tasks, which the departments then see twice.
        found = _live(_incident(incident_id))
        task = new_task(found, body, acting_user())
        db.session.commit()
        return task_row(task, now(found))


@blp.route(f"/tasks/<{ID}:task_id>")
class TaskById(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, TaskOutSchema)
    def get(self, task_id):
        """One task with every department's share and its history of updates."""
        from app.coordination.models import CoordinationTask

        task = db.get_or_404(CoordinationTask, task_id, description=f"No task {task_id}.")
        return task_row(task, now(_incident(task.incident_id)))


def _share_change(task_id, body, change):
    """Lock the task, find the acting user's share, apply `change(share, at, user)`."""
    task = _locked_task(task_id)
    share = acting_share(task, body.pop("department", None))
    incident = _live(_incident(task.incident_id))
    at = now(incident)
    change(share, at, acting_user())
    db.session.commit()
    return task_row(task, at)


@blp.route(f"/tasks/<{ID}:task_id>/accept")
class Accept(MethodView):
    @require_roles("commander", "liaison")
    @blp.arguments(ShareSchema)
    @blp.response(200, TaskOutSchema)
    @blp.alt_response(403, description="Another department's share")
    @blp.alt_response(409, description="The share or the task is finished")
    def post(self, body, task_id):
        """The department takes its share on."""
        return _share_change(task_id, body, lambda s, at, user: tasks.accept(s, at, user))


@blp.route(f"/tasks/<{ID}:task_id>/decline")
class Decline(MethodView):
    @require_roles("commander", "liaison")
    @blp.arguments(DeclineSchema)
    @blp.response(200, TaskOutSchema)
    @blp.alt_response(403, description="Another department's share")
    @blp.alt_response(409, description="The share or the task is finished")
    def post(self, body, task_id):
        """The department declines its share with a reason; the task's creator and the
        commander are told."""
        reason = body.pop("reason")
        return _share_change(task_id, body, lambda s, at, user: tasks.decline(s, reason, at, user))


@blp.route(f"/tasks/<{ID}:task_id>/progress")
class Progress(MethodView):
    @require_roles("commander", "liaison")
    @blp.arguments(ProgressSchema)
    @blp.response(200, TaskOutSchema)
    @blp.alt_response(403, description="Another department's share")
    @blp.alt_response(409, description="The share or the task is finished")
    def post(self, body, task_id):
        """A progress update (`note`, optional `percent` 0-100); it accepts the share if it
        was not yet."""
        note, percent = body.pop("note"), body.pop("percent")
        return _share_change(
            task_id,
            body,
            lambda s, at, user: tasks.progress(s, note, at, percent=percent, user=user),
        )


@blp.route(f"/tasks/<{ID}:task_id>/done")
class Done(MethodView):
    @require_roles("commander", "liaison")
    @blp.arguments(DoneSchema)
    @blp.response(200, TaskOutSchema)
    @blp.alt_response(403, description="Another department's share")
    @blp.alt_response(409, description="The share or the task is finished")
    def post(self, body, task_id):
        """The department has done its share; the task is done once every department that
        did not decline has."""
        note = body.pop("note")
        return _share_change(
            task_id, body, lambda s, at, user: tasks.finish(s, at, note=note, user=user)
        )


@blp.route(f"/tasks/<{ID}:task_id>/reassign")
class Reassign(MethodView):
    @require_roles("commander", "liaison")
    @blp.arguments(ReassignSchema)
    @blp.response(200, TaskOutSchema)
    @blp.alt_response(403, description="Not the commander nor the department that set it")
    @blp.alt_response(409, description="The task or the share is finished")
    def post(self, body, task_id):
        """Move a department's share to another department, with a reason; the old share
        stays in the history and the new one gets its own clock (`due_at`, or the old
        share's due time)."""
        task = _locked_task(task_id)
        may_manage_or_403(task)
        incident = _live(_incident(task.incident_id))
        source = tasks.department_by_code(body["from_department"], "from_department")
        target = tasks.department_by_code(body["to_department"], "to_department")
        at = now(incident)
        tasks.reassign(
            task, source, target, body["reason"], at, user=acting_user(), due_at=body["due_at"]
        )
        db.session.commit()
        return task_row(task, at)


@blp.route(f"/tasks/<{ID}:task_id>/cancel")
class Cancel(MethodView):
    @require_roles("commander", "liaison")
    @blp.arguments(CancelSchema)
    @blp.response(200, TaskOutSchema)
    @blp.alt_response(403, description="Not the commander nor the department that set it")
    @blp.alt_response(409, description="The task is done or cancelled")
    def post(self, body, task_id):
        """Call the task off, with a reason; every department still working it is told."""
        task = _locked_task(task_id)
        may_manage_or_403(task)
        incident = _live(_incident(task.incident_id))
        at = now(incident)
        tasks.cancel(task, body["reason"], at, user=acting_user())
        db.session.commit()
        return task_row(task, at)
