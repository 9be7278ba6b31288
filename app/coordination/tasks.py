"""Coordination tasks between departments: set, accepted or declined, worked with progress
updates, done, reassigned or cancelled, and chased on the statutory clock.

Each department's part is a share with its own due time. At the due time an unfinished
share is overdue and its liaison is reminded; then the plan's escalation chain is told one
step at a time, exactly as for duties, through the same scheduled actions and job. A share
that is done, declined or moved away calls off its pending actions.

Every change locks the task's row first, so two concurrent changes go one after the
other and the second sees what the first did. The caller commits.
"""

import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from app.clock.models import ScheduledAction
from app.clock.services import schedule
from app.coordination.models import (
    SHARE_OPEN_STATES,
    TASK_KINDS,
    TASK_PRIORITIES,
    CoordinationTask,
    TaskShare,
    TaskUpdate,
)
from app.coordination.services import notify
from app.duties.services import escalation_of, take_chain_step
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.services import record
from app.organisation.models import Department, Person
from app.organisation.services import commander_of, liaison_of
from app.types import local_iso, utcnow

log = logging.getLogger(__name__)

TASK_ACTIONS = ("task_remind", "task_escalate")
# A share that still counts toward the task being done: not declined, not moved away.
COUNTING_STATES = ("assigned", "accepted", "done")
# A task of an emergency falls due within it; a date years ahead is a typing error.
FURTHEST_DUE = timedelta(days=366)
FINISHED_TASK = ("done", "cancelled")
PRIORITY_RANK = {priority: rank for rank, priority in enumerate(TASK_PRIORITIES)}


def task_escalation_of(plan, priority):
    """(chain, minutes between steps, remind at the deadline) for a task of `priority`: an
    urgent task climbs every `urgent_escalate_after_minutes` when the plan says so."""
    chain, after = escalation_of(plan)
    escalation = plan.document.get("escalation") or {}
    if priority == "urgent" and escalation.get("urgent_escalate_after_minutes"):
        after = timedelta(minutes=int(escalation["urgent_escalate_after_minutes"]))
    return chain, after, escalation.get("remind_at_deadline", True) is not False


def locked(task_id):
    """The task, read afresh and held until the transaction ends (PostgreSQL's row lock;
    SQLite's transactions already take the write lock when they begin)."""
    task = db.session.scalar(
        select(CoordinationTask)
        .where(CoordinationTask.id == task_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if task is not None:
        # The shares too: another transaction may have changed them before the lock.
        db.session.expire(task, ["shares", "updates"])
        db.session.scalars(
            select(TaskShare)
            .where(TaskShare.task_id == task_id)
            .execution_options(populate_existing=True)
        ).all()
    return task


def _incident(task):
    from app.incidents.models import Incident

    return db.session.get(Incident, task.incident_id)


def _person_of(user):
    return db.session.get(Person, user.person_id) if user is not None and user.person_id else None


def _history(task, event, at, *, share=None, user=None, note="", percent=None):
    db.session.add(
        TaskUpdate(
            task_id=task.id,
            share_id=share.id if share is not None else None,
            department_id=share.department_id if share is not None else None,
            user_id=user.id if user is not None else None,
            event=event,
            note=note or "",
            percent=percent,
            at=at,
        )
    )


def _label(task):
    return f"task {task.id} {task.title}"


def _cancel_pending(share, why):
    """Call off the reminders and escalations still waiting for this share (marked on the
    wall clock, as the tick's own bookkeeping is).

    A row a worker has claimed but not committed is skipped, not waited for: that worker
    waits for this task's lock, then finds the share answered and does nothing. Waiting
    here instead would deadlock the two.
    """
    pending = db.session.scalars(
        select(ScheduledAction.id)
        .where(
            ScheduledAction.kind.in_(TASK_ACTIONS),
            ScheduledAction.subject_id == share.id,
            ScheduledAction.done_at.is_(None),
        )
        .with_for_update(skip_locked=True)
    ).all()
    if not pending:
        return
    db.session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.id.in_(pending), ScheduledAction.done_at.is_(None))
        .values(done_at=utcnow(), outcome=f"cancelled: {why}"),
        execution_options={"synchronize_session": False},
    )


def _schedule_clock(incident, task, share):
    chain, after, _ = task_escalation_of(incident.plan, task.priority)
    schedule("task_remind", incident, share.id, share.due_at)
    for step in range(len(chain)):
        schedule("task_escalate", incident, share.id, share.due_at + after * (step + 1))


def _page(incident, department_id, at, **message):
    """Tell the department's liaison on duty now, if anyone is."""
    liaison = liaison_of(department_id, at)
    if liaison is not None:
        notify(incident=incident, person=liaison, at=at, **message)
    return liaison


def _assign(incident, task, department, due_at, at, reassigned_from=None):
    share = TaskShare(
        task_id=task.id,
        department_id=department.id,
        state="assigned",
        due_at=due_at,
        assigned_at=at,
        reassigned_from_id=reassigned_from.id if reassigned_from is not None else None,
    )
    db.session.add(share)
    db.session.flush()
    _schedule_clock(incident, task, share)
    _page(
        incident,
        department.id,
        at,
        key=f"task-assigned-{share.id}",
        kind="task_assigned",
        subject=f"协同任务：{task.title}",
        body=f"请于 {local_iso(due_at)} 前完成；{task.details}".rstrip("；"),
        data={"task_id": task.id, "share_id": share.id, "priority": task.priority},
    )
    return share


def _check_new_task(incident, fields, departments, acting_department, at):
    """Every refusal of a new task, by field, before anything is written."""
    errors = {}
    if fields["priority"] not in TASK_PRIORITIES:
        errors["priority"] = [f"must be one of {', '.join(TASK_PRIORITIES)}"]
    if fields["kind"] not in TASK_KINDS:
        errors["kind"] = [f"must be one of {', '.join(TASK_KINDS)}"]
    if fields["due_at"] <= at:
        errors["due_at"] = [f"must be after now ({local_iso(at)})"]
    elif fields["due_at"] > at + FURTHEST_DUE:
        errors["due_at"] = ["at most a year from now"]
    ids = [d.id for d in departments]
    if not departments:
        errors["departments"] = ["name at least one department"]
    elif len(set(ids)) != len(ids):
        errors["departments"] = ["each department once"]
    elif fields["kind"] == "task" and len(departments) != 1:
        errors["departments"] = ["a task goes to one department; a joint inspection to several"]
    elif fields["kind"] == "joint_inspection" and len(departments) < 2:
        errors["departments"] = ["a joint inspection takes two or more departments"]
    elif acting_department is not None and acting_department.id in ids:
        errors["departments"] = [
            f"{acting_department.code} sets tasks for other departments, not for itself"
        ]
    if errors:
        raise InvalidInput("task refused", errors)
    if incident.status == "closed":
        raise Conflict(f"incident {incident.id} is closed")


def create_task(
    incident,
    *,
    title,
    priority,
    due_at,
    departments,
    at,
    details="",
    kind="task",
    user=None,
    acting_department=None,
    supplier=None,
    place=None,
):
    """Set a task for `departments` (Department rows), from `acting_department` (None: the
    command centre); each department gets a share, its clock and a message."""
    fields = {"priority": priority, "kind": kind, "due_at": due_at}
    _check_new_task(incident, fields, departments, acting_department, at)

    task = CoordinationTask(
        incident_id=incident.id,
        title=title,
        details=details or "",
        priority=priority,
        kind=kind,
        status="open",
        due_at=due_at,
        created_at=at,
        created_by_user_id=user.id if user is not None else None,
        created_by_department_id=acting_department.id if acting_department else None,
        supplier_id=supplier.id if supplier is not None else None,
        place=place,
    )
    db.session.add(task)
    db.session.flush()
    for department in departments:
        _assign(incident, task, department, due_at, at)
    db.session.expire(task, ["shares"])

    source = acting_department.code if acting_department else "command"
    targets = ", ".join(d.code for d in departments)
    _history(task, "created", at, user=user, note=f"{source} -> {targets}")
    record(incident, "task_created", f"{_label(task)}: {source} -> {targets} ({priority})", at)
    log.info("task %s: created in incident %s for %s", task.id, incident.id, targets)
    return task


# Who may do what ------------------------------------------------------------------------


def may_manage(user, task):
    """The commander reassigns and cancels any task; a liaison those their own department
    set."""
    if user is None:
        return False
    if user.role == "commander":
        return True
    return (
        user.role == "liaison"
        and user.department_id is not None
        and user.department_id == task.created_by_department_id
    )


def share_for(task, user, department=None):
    """The share `user` acts on: a liaison's own department's; a commander's the one of
    `department` (a Department), or the task's only share still open. Raises Forbidden for
    another department's share."""
    counting = [s for s in task.shares if s.state in COUNTING_STATES]
    if user.role == "liaison":
        if department is not None and department.id != user.department_id:
            raise Forbidden(
                f"{user.username} answers for their own department only, not for {department.code}"
            )
        own = [s for s in counting if s.department_id == user.department_id]
        if not own:
            own = [s for s in task.shares if s.department_id == user.department_id]
        if not own:
            raise Forbidden(f"task {task.id} is not set for {user.username}'s department")
        return own[-1]
    if user.role != "commander":
        raise Forbidden("only the commander or the department's liaison answers a task")
    if department is None:
        if len(counting) == 1:
            return counting[0]
        raise InvalidInput("say which department", {"department": ["required for this task"]})
    held = [s for s in task.shares if s.department_id == department.id]
    if not held:
        raise InvalidInput("no such share", {"department": [f"{department.code} holds no share"]})
    counted = [s for s in held if s.state in COUNTING_STATES]
    return (counted or held)[-1]


def _open_task(task):
    if task.status in FINISHED_TASK:
        raise Conflict(f"task {task.id} is {task.status} and cannot be changed")


def _open_share(share, doing):
    _open_task(share.task)
    if share.state not in SHARE_OPEN_STATES:
        raise Conflict(
            f"the share of {share.department.code} is {share.state}; it cannot be {doing}"
        )


def _settle(task, at):
    """The task's status from its shares: done once every counting share is done, in
    progress once any is accepted."""
    counting = [s for s in task.shares if s.state in COUNTING_STATES]
    if counting and all(s.state == "done" for s in counting):
        task.status = "done"
        task.done_at = at
        incident = _incident(task)
        record(incident, "task_done", f"{_label(task)}", at)
        _tell_creator(
            task,
            incident,
            at,
            key=f"task-done-{task.id}",
            kind="task_done",
            subject=f"协同任务已完成：{task.title}",
            body="",
        )
    elif any(s.state in ("accepted", "done") for s in counting):
        task.status = "in_progress"
    else:
        task.status = "open"


def _tell_creator(task, incident, at, *, key, kind, subject, body, commander_too=False):
    """The person who set the task (or their department's liaison), and the commander when
    asked; each once."""
    from app.accounts.models import User

    people = []
    creator = db.session.get(User, task.created_by_user_id) if task.created_by_user_id else None
    person = _person_of(creator)
    if person is None and task.created_by_department_id is not None:
        person = liaison_of(task.created_by_department_id, at)
    if person is not None:
        people.append(person)
    if commander_too or task.created_by_department_id is None:
        commander = commander_of(incident, at)
        if commander is not None and all(p.id != commander.id for p in people):
            people.append(commander)
    for person in people:
        notify(
            key=f"{key}-{person.id}",
            kind=kind,
            subject=subject,
            body=body,
            incident=incident,
            person=person,
            at=at,
            data={"task_id": task.id},
        )
    return people


# Transitions of a share -----------------------------------------------------------------


def accept(share, at, user=None):
    """The department takes its share on."""
    _open_share(share, "accepted")
    if share.state == "accepted":
        return share
    share.state = "accepted"
    share.accepted_at = at
    _history(share.task, "accepted", at, share=share, user=user)
    detail = f"{_label(share.task)}: {share.department.code}"
    record(_incident(share.task), "task_accepted", detail, at)
    _settle(share.task, at)
    return share


def decline(share, reason, at, user=None):
    """The department declines its share with a reason; the task's creator and the
    commander are told, and its clock stops."""
    if not reason or not reason.strip():
        raise InvalidInput("a decline needs a reason", {"reason": ["required"]})
    _open_share(share, "declined")
    reason = reason.strip()
    task = share.task
    incident = _incident(task)
    share.state = "declined"
    share.declined_at = at
    share.decline_reason = reason
    _cancel_pending(share, "declined")
    _history(task, "declined", at, share=share, user=user, note=reason)
    record(incident, "task_declined", f"{_label(task)}: {share.department.code}: {reason}", at)
    _tell_creator(
        task,
        incident,
        at,
        key=f"task-declined-{share.id}",
        kind="task_declined",
        subject=f"协同任务被拒：{task.title}",
        body=f"{share.department.name}：{reason}",
        commander_too=True,
    )
    log.info("task %s: %s declined", task.id, share.department.code)
    _settle(task, at)
    return share


def progress(share, note, at, percent=None, user=None):
    """A progress update of the department's share; taking it up accepts it."""
    if not note or not note.strip():
        raise InvalidInput("a progress update needs a note", {"note": ["required"]})
    if percent is not None and not 0 <= percent <= 100:
        raise InvalidInput("percent refused", {"percent": ["from 0 to 100"]})
    _open_share(share, "updated")
    if share.state == "assigned":
        accept(share, at, user)
    _history(share.task, "progress", at, share=share, user=user, note=note.strip(), percent=percent)
    shown = f" ({percent}%)" if percent is not None else ""
    detail = f"{_label(share.task)}: {share.department.code}{shown}: {note.strip()}"
    record(_incident(share.task), "task_progress", detail, at)
    _settle(share.task, at)
    return share


def finish(share, at, note="", user=None):
    """The department has done its share; the task is done when every counting share is."""
    _open_share(share, "marked done")
    if share.state == "assigned":
        accept(share, at, user)
    share.state = "done"
    share.done_at = at
    share.done_note = (note or "").strip() or None
    _cancel_pending(share, "done")
    late = " (late)" if at > share.due_at else ""
    _history(share.task, "done", at, share=share, user=user, note=share.done_note or "")
    detail = f"{_label(share.task)}: {share.department.code}{late}"
    record(_incident(share.task), "task_share_done", detail, at)
    _settle(share.task, at)
    return share


def reassign(task, from_department, to_department, reason, at, user=None, due_at=None):
    """Move a share to another department, keeping the old one as history; the new share
    gets its own clock, from `due_at` or the old share's due time."""
    errors = {}
    if not reason or not reason.strip():
        errors["reason"] = ["required"]
    held = [s for s in task.shares if s.department_id == from_department.id]
    moving = next((s for s in reversed(held) if s.state != "reassigned"), None)
    if moving is None:
        errors["from_department"] = [f"{from_department.code} holds no share of task {task.id}"]
    if to_department.id == from_department.id:
        errors["to_department"] = ["must be another department"]
    elif to_department.id == task.created_by_department_id:
        errors["to_department"] = [f"{to_department.code} set the task; it cannot take it"]
    elif any(
        s.department_id == to_department.id and s.state in COUNTING_STATES for s in task.shares
    ):
        errors["to_department"] = [f"{to_department.code} already holds a share"]
    if due_at is not None and due_at <= at:
        errors["due_at"] = [f"must be after now ({local_iso(at)})"]
    elif due_at is not None and due_at > at + FURTHEST_DUE:
        errors["due_at"] = ["at most a year from now"]
    elif due_at is None and moving is not None and moving.due_at <= at:
        errors["due_at"] = [
            f"the share was due {local_iso(moving.due_at)}, already past: give the new "
            "department a due time of its own"
        ]
    if errors:
        raise InvalidInput("reassignment refused", errors)
    _open_task(task)
    if moving.state == "done":
        raise Conflict(f"the share of {from_department.code} is done; it cannot be moved")

    incident = _incident(task)
    reason = reason.strip()
    moving.state = "reassigned"
    moving.reassigned_at = at
    moving.reassign_reason = reason
    _cancel_pending(moving, "reassigned")
    new_due = due_at or moving.due_at
    share = _assign(incident, task, to_department, new_due, at, reassigned_from=moving)
    moving.reassigned_to_id = share.id
    db.session.expire(task, ["shares"])

    move = f"{from_department.code} -> {to_department.code}"
    _history(task, "reassigned", at, share=share, user=user, note=f"{move}: {reason}")
    record(incident, "task_reassigned", f"{_label(task)}: {move}: {reason}", at)
    log.info("task %s: share moved %s", task.id, move)
    _settle(task, at)
    return share


def cancel(task, reason, at, user=None):
    """Call the whole task off, with a reason; every open share's clock stops and its
    department is told."""
    if not reason or not reason.strip():
        raise InvalidInput("a cancellation needs a reason", {"reason": ["required"]})
    _open_task(task)
    incident = _incident(task)
    reason = reason.strip()
    task.status = "cancelled"
    task.cancelled_at = at
    task.cancel_reason = reason
    for share in task.shares:
        if share.state in SHARE_OPEN_STATES:
            _cancel_pending(share, "task cancelled")
            _page(
                incident,
                share.department_id,
                at,
                key=f"task-cancelled-{share.id}",
                kind="task_cancelled",
                subject=f"协同任务已取消：{task.title}",
                body=reason,
            )
    _history(task, "cancelled", at, user=user, note=reason)
    record(incident, "task_cancelled", f"{_label(task)}: {reason}", at)
    log.info("task %s: cancelled", task.id)
    return task


def cancel_open_tasks(incident, reason, at):
    """The response ended: every task still open is called off, so no clock chases it;
    returns how many."""
    open_tasks = db.session.scalars(
        select(CoordinationTask).where(
            CoordinationTask.incident_id == incident.id,
            CoordinationTask.status.not_in(FINISHED_TASK),
        )
    ).all()
    for task in open_tasks:
        cancel(task, reason, at)
    return len(open_tasks)


# The clock ------------------------------------------------------------------------------


def _clocked_share(share_id):
    share = db.session.get(TaskShare, share_id)
    if share is None:
        raise LookupError(f"task share {share_id} does not exist")
    locked(share.task_id)
    return share


def remind(share_id, at):
    """At the due time: mark the share overdue and remind its liaison, unless it is done,
    declined or moved away."""
    share = _clocked_share(share_id)
    task = share.task
    if share.state not in SHARE_OPEN_STATES or task.status in FINISHED_TASK:
        return f"not reminded: {share.state}"
    incident = _incident(task)
    _, _, remind_at_deadline = task_escalation_of(incident.plan, task.priority)
    share.overdue_at = at
    _history(task, "overdue", at, share=share)
    told = None
    if remind_at_deadline:
        told = _page(
            incident,
            share.department_id,
            at,
            key=f"task-remind-{share.id}-{share.due_at.timestamp():.0f}",
            kind="task_reminder",
            subject=f"协同任务已超时：{task.title}",
            body=f"截止 {local_iso(share.due_at)}；逾期将上报。",
            data={"task_id": task.id, "share_id": share.id},
        )
    who = "reminded" if told is not None else "nobody on duty to remind"
    record(incident, "task_overdue", f"{_label(task)}: {share.department.code}: {who}", at)
    log.info("task %s: %s overdue, %s", task.id, share.department.code, who)
    return "reminded" if told is not None else "overdue: nobody on duty"


def escalate(share_id, at):
    """After each grace period: tell the next step of the plan's chain, unless the share
    is done, declined or moved away."""
    share = _clocked_share(share_id)
    task = share.task
    if share.state not in SHARE_OPEN_STATES or task.status in FINISHED_TASK:
        return f"not escalated: {share.state}"
    incident = _incident(task)
    chain, _, _ = task_escalation_of(incident.plan, task.priority)
    taken = take_chain_step(share, chain, incident, at)
    if taken is None:
        return "chain exhausted"
    step, person = taken
    if person is not None:
        notify(
            key=f"task-escalate-{share.id}-{share.due_at.timestamp():.0f}-{share.escalation_step}",
            kind="task_escalation",
            subject=f"协同任务逾期未完成：{share.department.name}",
            body=f"{task.title}（截止 {local_iso(share.due_at)}）",
            incident=incident,
            person=person,
            at=at,
            data={"task_id": task.id, "share_id": share.id, "step": share.escalation_step},
        )
    reached = step if person is not None else f"{step}, nobody on duty"
    _history(task, "escalated", at, share=share, note=reached)
    record(incident, "task_escalated", f"{_label(task)}: {share.department.code}: to {reached}", at)
    log.info("task %s: %s escalated to %s", task.id, share.department.code, reached)
    return f"escalated to {reached}"


# Reading --------------------------------------------------------------------------------


def counting_shares(task):
    return [s for s in task.shares if s.state in COUNTING_STATES]


def is_overdue(task, at):
    """An unfinished task with a share past its due time and not done."""
    if task.status in FINISHED_TASK:
        return False
    waiting = [s for s in task.shares if s.state in SHARE_OPEN_STATES]
    if not waiting:
        return task.due_at <= at
    return any(s.overdue_at is not None or s.due_at <= at for s in waiting)


def next_due(task):
    """The earliest due time among shares still owed, else the task's own."""
    waiting = [s.due_at for s in task.shares if s.state in SHARE_OPEN_STATES]
    return min(waiting) if waiting else task.due_at


def tasks_of(incident, *, status=None, department=None, priority=None, overdue=None, at=None):
    """The incident's tasks, newest first, filtered by status, department (a Department:
    tasks where it holds a share), priority and whether overdue at `at`."""
    query = select(CoordinationTask).filter_by(incident_id=incident.id)
    if status is not None:
        query = query.where(CoordinationTask.status == status)
    if priority is not None:
        query = query.where(CoordinationTask.priority == priority)
    if department is not None:
        query = query.where(
            CoordinationTask.id.in_(
                select(TaskShare.task_id).where(TaskShare.department_id == department.id)
            )
        )
    rows = db.session.scalars(query.order_by(CoordinationTask.id.desc())).all()
    if overdue is not None:
        at = at or utcnow()
        rows = [task for task in rows if is_overdue(task, at) == overdue]
    return rows


def open_task_summary(incident, at):
    """The incident's open tasks for a situation report, urgent first, then by due time:
    each {"id", "title", "priority", "kind", "status", "due_at" (UTC), "overdue",
    "departments" (codes of the shares still owed)}."""
    rows = db.session.scalars(
        select(CoordinationTask).where(
            CoordinationTask.incident_id == incident.id,
            CoordinationTask.status.in_(("open", "in_progress")),
        )
    ).all()
    summary = [
        {
            "id": task.id,
            "title": task.title,
            "priority": task.priority,
            "kind": task.kind,
            "status": task.status,
            "due_at": next_due(task),
            "overdue": is_overdue(task, at),
            "departments": [s.department.code for s in task.shares if s.state in SHARE_OPEN_STATES],
        }
        for task in rows
    ]
    summary.sort(key=lambda row: (PRIORITY_RANK[row["priority"]], row["due_at"], row["id"]))
    return summary


def task_figures(incident):
    """Counts for the drill report: tasks created, done, ever overdue, ever escalated, and
    still open."""

    def count(*where):
        return db.session.scalar(
            select(func.count(func.distinct(CoordinationTask.id)))
            .select_from(CoordinationTask)
            .outerjoin(TaskShare, TaskShare.task_id == CoordinationTask.id)
            .where(CoordinationTask.incident_id == incident.id, *where)
        )

    return {
        "created": count(),
        "done": count(CoordinationTask.status == "done"),
        "overdue": count(TaskShare.overdue_at.is_not(None)),
        "escalated": count(TaskShare.escalated_at.is_not(None)),
        "open": count(CoordinationTask.status.in_(("open", "in_progress"))),
    }


def department_by_code(code, field):
    """A department by its code, or 422 naming `field`."""
    found = db.session.scalar(select(Department).filter_by(code=code))
    if found is None:
        raise InvalidInput("unknown department", {field: [f"no department {code!r}"]})
    return found
