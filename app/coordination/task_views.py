"""Pages of coordination tasks: an incident's tasks with the form that sets one, a task
with its shares, history and the buttons the signed-in user may press, and the open
tasks of every incident (a liaison's own department's)."""

from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.clock.services import now
from app.coordination import tasks
from app.coordination.models import TASK_KINDS, TASK_PRIORITIES, CoordinationTask, TaskShare
from app.coordination.tasks_api import new_task
from app.duties.api import STAFF
from app.duties.views import _department_names
from app.errors import DomainError, Forbidden
from app.extensions import db
from app.incidents.models import Incident
from app.organisation.models import Department

bp = Blueprint("tasks", __name__)

PRIORITY_NAMES = {
    "urgent": lazy_gettext("urgent"),
    "routine": lazy_gettext("routine"),
    "low": lazy_gettext("low priority"),
}
TASK_KIND_NAMES = {
    "task": lazy_gettext("coordination task"),
    "joint_inspection": lazy_gettext("joint inspection"),
}
TASK_STATUS_NAMES = {
    "open": lazy_gettext("open"),
    "in_progress": lazy_gettext("in progress"),
    "done": lazy_gettext("done"),
    "cancelled": lazy_gettext("called off"),
}
SHARE_STATE_NAMES = {
    "assigned": lazy_gettext("assigned"),
    "accepted": lazy_gettext("accepted"),
    "declined": lazy_gettext("declined"),
    "done": lazy_gettext("done"),
    "reassigned": lazy_gettext("moved to another department"),
}
EVENT_NAMES = {
    "created": lazy_gettext("set"),
    "accepted": lazy_gettext("accepted"),
    "declined": lazy_gettext("declined"),
    "progress": lazy_gettext("progress"),
    "done": lazy_gettext("done"),
    "reassigned": lazy_gettext("moved to another department"),
    "cancelled": lazy_gettext("called off"),
    "overdue": lazy_gettext("overdue"),
    "escalated": lazy_gettext("escalated along the chain"),
}


def _plain_text(form, field):
    """What the API refuses, the form refuses too: control characters."""
    if any(ord(c) < 32 and c not in "\r\n\t" or 127 <= ord(c) < 160 for c in field.data or ""):
        raise ValidationError(gettext("must not hold control characters"))


class TaskForm(FlaskForm):
    """A new task, its due time in the command's local time."""

    title = StringField(
        lazy_gettext("Title"), validators=[DataRequired(), Length(max=300), _plain_text]
    )
    details = TextAreaField(
        lazy_gettext("Details"), validators=[Optional(), Length(max=4000), _plain_text]
    )
    priority = SelectField(lazy_gettext("Priority"), default="routine")
    kind = SelectField(lazy_gettext("Kind"), default="task")
    due = DateTimeLocalField(lazy_gettext("Due"), validators=[DataRequired()])
    departments = SelectMultipleField(lazy_gettext("For departments"))
    acting_department = SelectField(lazy_gettext("Set by"), default="")
    supplier = SelectField(lazy_gettext("Supplier inspected"), default="")
    place = StringField(
        lazy_gettext("Place inspected"), validators=[Optional(), Length(max=500), _plain_text]
    )


class ShareForm(FlaskForm):
    """A button on one department's share."""

    department = HiddenField()


class DeclineForm(ShareForm):
    reason = StringField(
        lazy_gettext("Reason"), validators=[DataRequired(), Length(max=2000), _plain_text]
    )


class ProgressForm(ShareForm):
    note = StringField(
        lazy_gettext("Note"), validators=[DataRequired(), Length(max=2000), _plain_text]
    )
    percent = IntegerField(lazy_gettext("Percent"), validators=[Optional(), NumberRange(0, 100)])


class DoneForm(ShareForm):
    note = StringField(lazy_gettext("Note"), validators=[Optional(), Length(max=2000), _plain_text])


class ReassignForm(FlaskForm):
    from_department = SelectField(lazy_gettext("From department"))
    to_department = SelectField(lazy_gettext("To department"))
    reason = StringField(
        lazy_gettext("Reason"), validators=[DataRequired(), Length(max=2000), _plain_text]
    )
    due = DateTimeLocalField(lazy_gettext("New due time"), validators=[Optional()])


class CancelForm(FlaskForm):
    reason = StringField(
        lazy_gettext("Reason"), validators=[DataRequired(), Length(max=2000), _plain_text]
    )


def _zone():
    return ZoneInfo(current_app.config["BAOGONG_TIMEZONE"])


def _names():
    return {
        "priorities": PRIORITY_NAMES,
        "task_kinds": TASK_KIND_NAMES,
        "task_statuses": TASK_STATUS_NAMES,
        "share_states": SHARE_STATE_NAMES,
        "events": EVENT_NAMES,
        "department_names": _department_names(),
    }


def _keep_lang(**values):
    if request.args.get("lang"):
        values["lang"] = request.args["lang"]
    return values


def _department_choices():
    names = _department_names()
    departments = db.session.scalars(select(Department).order_by(Department.id)).all()
    return [(d.code, names.get(d.code, d.name)) for d in departments]


def _task_form(user):
    from app.supply.models import Supplier

    form = TaskForm()
    form.priority.choices = [(p, PRIORITY_NAMES[p]) for p in TASK_PRIORITIES]
    form.kind.choices = [(k, TASK_KIND_NAMES[k]) for k in TASK_KINDS]
    departments = _department_choices()
    form.departments.choices = departments
    if user.role == "commander":
        form.acting_department.choices = [("", gettext("the command centre")), *departments]
    else:
        own = user.department
        label = _department_names().get(own.code, own.name) if own else ""
        form.acting_department.choices = [(own.code if own else "", label)]
    suppliers = db.session.scalars(select(Supplier).order_by(Supplier.code)).all()
    form.supplier.choices = [("", "—"), *((s.code, f"{s.code} {s.name}") for s in suppliers)]
    return form


def _may_set(user):
    return user.role == "commander" or (user.role == "liaison" and user.department_id)


@bp.route(f"/incidents/<{ID}:incident_id>/tasks", methods=["GET", "POST"])
@require_roles(*STAFF)
def incident_tasks(incident_id):
    """The incident's tasks, and the form a commander or liaison sets one with."""
    found = db.get_or_404(Incident, incident_id)
    user = acting_user()
    form = _task_form(user) if _may_set(user) else None
    errors = None
    if request.method == "POST":
        if form is None:
            abort(403, gettext("Only the commander or a department's liaison sets tasks."))
        if form.validate_on_submit():
            body = {
                "title": form.title.data.strip(),
                "details": (form.details.data or "").strip(),
                "priority": form.priority.data,
                "kind": form.kind.data,
                "due_at": form.due.data.replace(tzinfo=_zone()),
                "departments": form.departments.data,
                "acting_department": form.acting_department.data or None,
                "supplier": form.supplier.data or None,
                "place": (form.place.data or "").strip() or None,
            }
            try:
                task = new_task(found, body, user)
                db.session.commit()
                return redirect(url_for("tasks.task_page", task_id=task.id, **_keep_lang()))
            except Forbidden as error:
                db.session.rollback()
                abort(403, str(error))
            except DomainError as error:
                db.session.rollback()
                errors = _by_label(getattr(error, "errors", None) or {"": [str(error)]}, form)
        else:
            errors = _by_label(form.errors, form)

    at = now(found)
    rows = tasks.tasks_of(found)
    page = render_template(
        "coordination/tasks.html",
        incident=found,
        rows=rows,
        form=form,
        errors=errors,
        at_of=lambda task: at,
        is_overdue=tasks.is_overdue,
        next_due=tasks.next_due,
        **_names(),
    )
    return page, 422 if errors else 200


@bp.get("/tasks")
@require_roles(*STAFF)
def open_tasks():
    """Open tasks of every open incident; a liaison sees those their department holds a
    share of or set."""
    user = acting_user()
    query = (
        select(CoordinationTask)
        .join(Incident, Incident.id == CoordinationTask.incident_id)
        .where(Incident.status != "closed", CoordinationTask.status.in_(("open", "in_progress")))
    )
    if user.role == "liaison" and user.department_id:
        mine = select(TaskShare.task_id).where(TaskShare.department_id == user.department_id)
        query = query.where(
            CoordinationTask.id.in_(mine)
            | (CoordinationTask.created_by_department_id == user.department_id)
        )
    rows = db.session.scalars(query.order_by(CoordinationTask.due_at).limit(500)).all()
    incidents = {
        i.id: i
        for i in db.session.scalars(
            select(Incident).where(Incident.id.in_({t.incident_id for t in rows}))
        )
    }
    return render_template(
        "coordination/tasks_open.html",
        rows=rows,
        incidents=incidents,
        at_of=lambda task: now(incidents[task.incident_id]),
        is_overdue=tasks.is_overdue,
        next_due=tasks.next_due,
        **_names(),
    )


def _may_act(user, share):
    """Whether the user's buttons show on this share."""
    if share.state not in ("assigned", "accepted") or share.task.status in ("done", "cancelled"):
        return False
    if user.role == "commander":
        return True
    return user.role == "liaison" and user.department_id == share.department_id


def _detail(task, errors=None, status=200):
    user = acting_user()
    found = db.session.get(Incident, task.incident_id)
    manage = tasks.may_manage(user, task) and task.status not in ("done", "cancelled")
    reassign = None
    if manage:
        reassign = ReassignForm(formdata=None)
        reassign.from_department.choices = [
            (s.department.code, _department_names().get(s.department.code, s.department.name))
            for s in task.shares
            if s.state in ("assigned", "accepted", "declined")
        ]
        reassign.to_department.choices = _department_choices()
    page = render_template(
        "coordination/tasks_detail.html",
        task=task,
        incident=found,
        at=now(found),
        errors=errors,
        may_act=lambda share: _may_act(user, share),
        share_form=ShareForm(formdata=None),
        decline_form=DeclineForm(formdata=None),
        progress_form=ProgressForm(formdata=None),
        done_form=DoneForm(formdata=None),
        reassign_form=reassign,
        cancel_form=CancelForm(formdata=None) if manage else None,
        is_overdue=tasks.is_overdue,
        shares_by_id={s.id: s for s in task.shares},
        **_names(),
    )
    return page, status


@bp.get(f"/tasks/<{ID}:task_id>")
@require_roles(*STAFF)
def task_page(task_id):
    return _detail(db.get_or_404(CoordinationTask, task_id))


def _locked_or_404(task_id):
    task = tasks.locked(task_id)
    if task is None:
        abort(404)
    return task


def _change(task_id, form, change):
    """Check the form, lock the task, apply `change(task, incident, at, user)`; a refusal
    shows the task again with the reason."""
    user = acting_user()
    task = _locked_or_404(task_id)
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400, gettext("The form has expired; reload the page and try again."))
        return _detail(task, form.errors, 422)
    found = db.session.get(Incident, task.incident_id)
    try:
        if found.status == "closed":
            raise DomainError(gettext("The incident is closed."))
        change(task, found, now(found), user)
        db.session.commit()
    except Forbidden:
        db.session.rollback()
        abort(
            403,
            gettext(
                "You act only on your own department's share, or on tasks your department set."
            ),
        )
    except DomainError as error:
        db.session.rollback()
        errors = getattr(error, "errors", None) or {"": [str(error)]}
        return _detail(db.get_or_404(CoordinationTask, task_id), errors, error.status)
    return redirect(url_for("tasks.task_page", task_id=task_id, **_keep_lang()))


# The service names a field as the API does; the form may call it otherwise.
FORM_FIELDS = {"due_at": "due"}


def _by_label(errors, form):
    """Refusals keyed by the label the reader sees on the form, where the form has it."""
    named = {}
    for key, messages in errors.items():
        field = getattr(form, FORM_FIELDS.get(key, key), None) if key else None
        label = str(field.label.text) if field is not None and hasattr(field, "label") else key
        named.setdefault(label, []).extend(messages)
    return named


def _share(task, form, user):
    code = (form.department.data or "").strip() or None
    department = tasks.department_by_code(code, "department") if code else None
    return tasks.share_for(task, user, department)


@bp.post(f"/tasks/<{ID}:task_id>/accept")
@require_roles("commander", "liaison")
def accept_page(task_id):
    form = ShareForm()
    return _change(
        task_id, form, lambda task, _i, at, user: tasks.accept(_share(task, form, user), at, user)
    )


@bp.post(f"/tasks/<{ID}:task_id>/decline")
@require_roles("commander", "liaison")
def decline_page(task_id):
    form = DeclineForm()

    def change(task, _incident, at, user):
        tasks.decline(_share(task, form, user), form.reason.data, at, user)

    return _change(task_id, form, change)


@bp.post(f"/tasks/<{ID}:task_id>/progress")
@require_roles("commander", "liaison")
def progress_page(task_id):
    form = ProgressForm()

    def change(task, _incident, at, user):
        share = _share(task, form, user)
        tasks.progress(share, form.note.data, at, percent=form.percent.data, user=user)

    return _change(task_id, form, change)


@bp.post(f"/tasks/<{ID}:task_id>/done")
@require_roles("commander", "liaison")
def done_page(task_id):
    form = DoneForm()

    def change(task, _incident, at, user):
        tasks.finish(_share(task, form, user), at, note=form.note.data or "", user=user)

    return _change(task_id, form, change)


@bp.post(f"/tasks/<{ID}:task_id>/reassign")
@require_roles("commander", "liaison")
def reassign_page(task_id):
    form = ReassignForm()
    codes = [code for code, _ in _department_choices()]
    form.from_department.choices = form.to_department.choices = [(c, c) for c in codes]

    def change(task, _incident, at, user):
        if not tasks.may_manage(user, task):
            raise Forbidden("not the commander nor the department that set it")
        due = form.due.data.replace(tzinfo=_zone()) if form.due.data else None
        tasks.reassign(
            task,
            tasks.department_by_code(form.from_department.data, "from_department"),
            tasks.department_by_code(form.to_department.data, "to_department"),
            form.reason.data,
            at,
            user=user,
            due_at=due,
        )

    return _change(task_id, form, change)


@bp.post(f"/tasks/<{ID}:task_id>/cancel")
@require_roles("commander", "liaison")
def cancel_page(task_id):
    form = CancelForm()

    def change(task, _incident, at, user):
        if not tasks.may_manage(user, task):
            raise Forbidden("not the commander nor the department that set it")
        tasks.cancel(task, form.reason.data, at, user=user)

    return _change(task_id, form, change)
