"""Coordination tasks between departments: set by the command centre or a department,
accepted or declined, worked, done, reassigned and called off, over the API and the
pages; chased and escalated on the duties' clock exactly once."""

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.clock.models import ScheduledAction
from app.clock.services import tick
from app.coordination.models import CoordinationTask, Notification, TaskShare, TaskUpdate
from app.coordination.tasks import open_task_summary, task_escalation_of, task_figures
from app.extensions import db
from app.incidents.models import TimelineEntry
from app.organisation.models import CommandPost, Person
from app.organisation.services import department, liaison_of, office_liaison
from tests.helpers import T0, bearer, csrf_token, incident, make_user, set_clock, sign_in

DUE = T0 + timedelta(hours=2)
# Two hours after T0, written as Beijing time with its offset.
DUE_TEXT = "2026-09-14T10:00:00+08:00"
ESCALATE_AFTER = timedelta(minutes=30)
URGENT_AFTER = timedelta(minutes=15)


@pytest.fixture
def found(region):
    """An incident whose duties are all closed, so only tasks run on its clock."""
    from app.duties.services import close_all

    made = incident(level="II")
    close_all(made, "not under test", T0)
    db.session.commit()
    return made


def _liaison(code, password=None):
    """A liaison user of department `code`, paged as its on-duty liaison."""
    person = liaison_of(department(code).id, T0)
    user, token = make_user("liaison", department=code, password=password)
    user.person_id = person.id
    db.session.commit()
    return user, token


def _commander(password=None):
    return make_user("commander", department="government", password=password)


def _body(**change):
    body = {
        "title": "协助转运安置点物资",
        "details": "请派两辆货车",
        "priority": "routine",
        "due_at": DUE_TEXT,
        "departments": ["transport"],
    }
    body.update(change)
    return {key: value for key, value in body.items() if value is not None}


def _create(client, found, token, **change):
    answer = client.post(
        f"/api/incidents/{found.id}/tasks", json=_body(**change), headers=bearer(token)
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def _post(client, task_id, action, token, **body):
    return client.post(f"/api/tasks/{task_id}/{action}", json=body, headers=bearer(token))


def _messages(found, kind):
    return db.session.scalars(
        select(Notification).filter_by(incident_id=found.id, kind=kind).order_by(Notification.id)
    ).all()


def _events(found, prefix="task_"):
    return [
        e.event
        for e in db.session.scalars(
            select(TimelineEntry).filter_by(incident_id=found.id).order_by(TimelineEntry.id)
        )
        if e.event.startswith(prefix)
    ]


def _advance(found, at, run_worker, ticks=1):
    set_clock(found, at)
    fired = sum(tick(at, [found.id]) for _ in range(ticks))
    run_worker()
    db.session.expire_all()
    return fired


def _share(task_id, code):
    return db.session.scalar(
        select(TaskShare)
        .where(TaskShare.task_id == task_id, TaskShare.department_id == department(code).id)
        .order_by(TaskShare.id.desc())
        .limit(1)
    )


def _pending(share_id):
    return db.session.scalars(
        select(ScheduledAction).where(
            ScheduledAction.kind.in_(("task_remind", "task_escalate")),
            ScheduledAction.subject_id == share_id,
        )
    ).all()


# Transitions -------------------------------------------------------------------------


def test_a_task_is_accepted_worked_and_done_and_then_cannot_change(client, found):
    _, commander = _commander()
    _, transport = _liaison("transport")

    task = _create(client, found, commander)
    assert task["status"] == "open" and task["created_by_department"] is None
    [share] = task["shares"]
    assert share["department"] == "transport" and share["state"] == "assigned"
    assert share["due_at"] == "2026-09-14T02:00:00Z"
    [assigned] = _messages(found, "task_assigned")
    assert db.session.get(Person, assigned.person_id).department.code == "transport"

    accepted = _post(client, task["id"], "accept", transport)
    assert accepted.status_code == 200 and accepted.json["status"] == "in_progress"
    progress = _post(client, task["id"], "progress", transport, note="已派出一辆", percent=50)
    assert progress.status_code == 200
    assert progress.json["updates"][-1] | {"id": 0, "user": None} == {
        "id": 0,
        "event": "progress",
        "at": "2026-09-14T00:00:00Z",
        "department": "transport",
        "user": None,
        "note": "已派出一辆",
        "percent": 50,
    }
    done = _post(client, task["id"], "done", transport, note="已送达")
    assert done.status_code == 200 and done.json["status"] == "done"
    assert done.json["shares"][0]["done_note"] == "已送达"

    for action, body in (("accept", {}), ("decline", {"reason": "x"}), ("done", {})):
        again = _post(client, task["id"], action, transport, **body)
        assert again.status_code == 409 and "done and cannot be changed" in again.json["message"]
    cancelled = _post(client, task["id"], "cancel", commander, reason="x")
    assert cancelled.status_code == 409
    assert _events(found) == [
        "task_created",
        "task_accepted",
        "task_progress",
        "task_share_done",
        "task_done",
    ]
    read = client.get(f"/api/tasks/{task['id']}", headers=bearer(commander)).json
    assert [u["event"] for u in read["updates"]] == ["created", "accepted", "progress", "done"]


def test_a_liaison_sets_tasks_from_their_own_department_for_others_only(client, found):
    _, commerce = _liaison("commerce")

    task = _create(client, found, commerce)
    assert task["created_by_department"] == "commerce"

    other = client.post(
        f"/api/incidents/{found.id}/tasks",
        headers=bearer(commerce),
        json=_body(acting_department="health"),
    )
    assert other.status_code == 403
    own = client.post(
        f"/api/incidents/{found.id}/tasks",
        headers=bearer(commerce),
        json=_body(departments=["commerce"]),
    )
    assert own.status_code == 422 and "departments" in own.json["errors"]
    _, commander = _commander()
    for_itself = client.post(
        f"/api/incidents/{found.id}/tasks",
        headers=bearer(commander),
        json=_body(acting_department="transport"),
    )
    assert for_itself.status_code == 422 and "departments" in for_itself.json["errors"]
    _, viewer = make_user("viewer", department="health")
    refused = client.post(f"/api/incidents/{found.id}/tasks", json=_body(), headers=bearer(viewer))
    assert refused.status_code == 403
    assert db.session.scalar(select(func.count(CoordinationTask.id))) == 1


def test_a_liaison_is_refused_another_departments_share_on_the_api(client, found):
    _, commander = _commander()
    _, health = _liaison("health")
    task = _create(client, found, commander)

    for action, body in (
        ("accept", {}),
        ("decline", {"reason": "不归我们"}),
        ("progress", {"note": "x"}),
        ("done", {}),
        ("accept", {"department": "transport"}),
    ):
        refused = _post(client, task["id"], action, health, **body)
        assert refused.status_code == 403, (action, refused.json)
    assert _post(client, task["id"], "cancel", health, reason="x").status_code == 403
    moved = {"from_department": "transport", "to_department": "cdc", "reason": "x"}
    assert _post(client, task["id"], "reassign", health, **moved).status_code == 403

    db.session.expire_all()
    assert _share(task["id"], "transport").state == "assigned"
    assert db.session.scalar(select(func.count(TaskUpdate.id))) == 1


def test_a_decline_needs_a_reason_and_goes_to_the_creator_and_the_commander(client, found):
    creator, commerce = _liaison("commerce")
    _, transport = _liaison("transport")
    task = _create(client, found, commerce)

    blank = _post(client, task["id"], "decline", transport, reason="  ")
    assert blank.status_code == 422 and "reason" in blank.json["errors"]["json"]
    missing = _post(client, task["id"], "decline", transport)
    assert missing.status_code == 422 and "reason" in missing.json["errors"]["json"]

    declined = _post(client, task["id"], "decline", transport, reason="车辆已全部派出")
    assert declined.status_code == 200
    assert declined.json["shares"][0]["state"] == "declined"
    assert declined.json["shares"][0]["decline_reason"] == "车辆已全部派出"
    told = {db.session.get(Person, m.person_id) for m in _messages(found, "task_declined")}
    commander = db.session.scalar(select(CommandPost).filter_by(incident_id=found.id)).commander
    assert told == {db.session.get(Person, creator.person_id), commander}
    assert all("车辆已全部派出" in m.body for m in _messages(found, "task_declined"))
    assert {a.outcome for a in _pending(_share(task["id"], "transport").id)} == {
        "cancelled: declined"
    }
    again = _post(client, task["id"], "accept", transport)
    assert again.status_code == 409 and "declined" in again.json["message"]


def test_a_joint_inspection_of_three_is_done_only_when_all_have_done(client, found):
    _, commander = _commander()
    tokens = {code: _liaison(code)[1] for code in ("health", "cdc", "agriculture")}
    task = _create(
        client,
        found,
        commander,
        kind="joint_inspection",
        supplier="ZH-SUP-001",
        departments=list(tokens),
        title="联合检查中央厨房",
    )
    assert task["kind"] == "joint_inspection" and task["supplier"] == "ZH-SUP-001"
    assert [s["department"] for s in task["shares"]] == ["health", "cdc", "agriculture"]

    assert _post(client, task["id"], "done", tokens["health"]).json["status"] == "in_progress"
    assert _post(client, task["id"], "done", tokens["cdc"]).json["status"] == "in_progress"
    last = _post(client, task["id"], "done", tokens["agriculture"])
    assert last.json["status"] == "done" and last.json["done_at"] == "2026-09-14T00:00:00Z"
    assert _messages(found, "task_done")  # the commander set it, and is told

    commander_pick = _post(client, task["id"], "accept", commander)
    assert commander_pick.status_code in (409, 422)


def test_a_joint_inspection_is_done_when_those_who_did_not_decline_are_done(client, found):
    _, commander = _commander()
    tokens = {code: _liaison(code)[1] for code in ("health", "cdc", "agriculture")}
    task = _create(
        client,
        found,
        commander,
        kind="joint_inspection",
        place="蛟川街道安置点",
        departments=list(tokens),
    )

    _post(client, task["id"], "decline", tokens["agriculture"], reason="无农产品环节")
    _post(client, task["id"], "done", tokens["health"])
    answer = _post(client, task["id"], "done", tokens["cdc"])

    assert answer.json["status"] == "done" and answer.json["place"] == "蛟川街道安置点"


def test_the_commander_acts_for_a_named_department(client, found):
    _, commander = _commander()
    task = _create(client, found, commander, kind="joint_inspection", departments=["health", "cdc"])

    unnamed = _post(client, task["id"], "accept", commander)
    assert unnamed.status_code == 422 and "department" in unnamed.json["errors"]
    named = _post(client, task["id"], "accept", commander, department="cdc")
    assert named.status_code == 200
    assert {s["department"]: s["state"] for s in named.json["shares"]} == {
        "health": "assigned",
        "cdc": "accepted",
    }


def test_cancelling_stops_every_clock_and_tells_the_departments(client, found, run_worker):
    _, commerce = _liaison("commerce")
    _, commander = _commander()
    task = _create(client, found, commerce, kind="joint_inspection", departments=["health", "cdc"])

    blank = _post(client, task["id"], "cancel", commerce, reason="")
    assert blank.status_code == 422 and "reason" in blank.json["errors"]["json"]
    cancelled = _post(client, task["id"], "cancel", commerce, reason="检查改期")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert len(_messages(found, "task_cancelled")) == 2
    again = _post(client, task["id"], "cancel", commander, reason="x")
    assert again.status_code == 409 and "cancelled" in again.json["message"]

    _advance(found, DUE + timedelta(hours=3), run_worker)
    assert not _messages(found, "task_reminder") and not _messages(found, "task_escalation")


# The clock ---------------------------------------------------------------------------


def test_an_overdue_task_is_reminded_then_escalated_step_by_step_once(client, found, run_worker):
    _, commander = _commander()
    task = _create(client, found, commander)
    share = _share(task["id"], "transport")

    assert _advance(found, DUE, run_worker, ticks=3) == 1  # duplicate ticks add nothing
    share = _share(task["id"], "transport")
    assert share.overdue_at == DUE and share.escalated_at is None
    [reminder] = _messages(found, "task_reminder")
    assert db.session.get(Person, reminder.person_id).department.code == "transport"
    listed = client.get(f"/api/incidents/{found.id}/tasks?overdue=true", headers=bearer(commander))
    assert [t["id"] for t in listed.json] == [task["id"]] and listed.json[0]["overdue"]

    _advance(found, DUE + ESCALATE_AFTER, run_worker, ticks=2)
    assert [m.person_id for m in _messages(found, "task_escalation")] == [office_liaison(found).id]
    assert _share(task["id"], "transport").escalated_at == DUE + ESCALATE_AFTER

    _advance(found, DUE + 2 * ESCALATE_AFTER, run_worker, ticks=2)
    commander_person = db.session.scalar(
        select(CommandPost).filter_by(incident_id=found.id)
    ).commander
    assert [m.person_id for m in _messages(found, "task_escalation")] == [
        office_liaison(found).id,
        commander_person.id,
    ]
    assert _share(task["id"], "transport").escalation_step == 2

    _advance(found, DUE + timedelta(hours=6), run_worker)
    assert len(_messages(found, "task_escalation")) == 2
    assert len(_messages(found, "task_reminder")) == 1

    # The same job run again, as a restarted worker might: it claims nothing.
    from workers.jobs import run_scheduled_action

    fired = [a.id for a in _pending(share.id)]
    db.session.commit()
    assert all(run_scheduled_action(action_id) == "already done" for action_id in fired)
    db.session.expire_all()
    assert len(_messages(found, "task_escalation")) == 2
    assert task_figures(found) == {"created": 1, "done": 0, "overdue": 1, "escalated": 1, "open": 1}


def test_an_urgent_task_escalates_after_the_plans_urgent_minutes(client, found, run_worker):
    _, commander = _commander()
    task = _create(client, found, commander, priority="urgent")

    _advance(found, DUE, run_worker)
    _advance(found, DUE + URGENT_AFTER, run_worker)

    assert len(_messages(found, "task_escalation")) == 1
    assert _share(task["id"], "transport").escalated_at == DUE + URGENT_AFTER


def test_the_urgent_interval_is_a_checked_plan_setting_with_a_default():
    from app.process.schemas import EscalationSchema

    plain = SimpleNamespace(document={"escalation": {"escalate_after_minutes": 20}})
    assert task_escalation_of(plain, "urgent")[1] == timedelta(minutes=20)
    sooner = {"escalate_after_minutes": 20, "urgent_escalate_after_minutes": 5}
    plan = SimpleNamespace(document={"escalation": sooner})
    assert task_escalation_of(plan, "urgent")[1] == timedelta(minutes=5)
    assert task_escalation_of(plan, "routine")[1] == timedelta(minutes=20)

    later = EscalationSchema().validate(
        {"escalate_after_minutes": 20, "urgent_escalate_after_minutes": 40}
    )
    assert "urgent_escalate_after_minutes" in later
    assert "urgent_escalate_after_minutes" in EscalationSchema().validate(
        {"urgent_escalate_after_minutes": 0}
    )


def test_done_calls_off_the_pending_reminder_and_escalations(client, found, run_worker):
    _, commander = _commander()
    _, transport = _liaison("transport")
    task = _create(client, found, commander)
    share = _share(task["id"], "transport")
    assert len(_pending(share.id)) == 3  # the reminder and two steps of the chain

    _post(client, task["id"], "done", transport)
    _advance(found, DUE + timedelta(hours=3), run_worker)

    assert {a.outcome for a in _pending(share.id)} == {"cancelled: done"}
    assert not _messages(found, "task_reminder") and not _messages(found, "task_escalation")


def test_reassignment_keeps_the_history_and_moves_the_clock(client, found, run_worker):
    _, commander = _commander()
    task = _create(client, found, commander)
    first = _share(task["id"], "transport")

    later = "2026-09-14T11:00:00+08:00"
    moved = _post(
        client,
        task["id"],
        "reassign",
        commander,
        from_department="transport",
        to_department="emergency_management",
        reason="交通局车辆不足",
        due_at=later,
    )
    assert moved.status_code == 200, moved.json
    shares = {s["department"]: s for s in moved.json["shares"]}
    assert shares["transport"]["state"] == "reassigned"
    assert shares["transport"]["reassigned_to"] == "emergency_management"
    assert shares["transport"]["reassign_reason"] == "交通局车辆不足"
    assert shares["emergency_management"]["reassigned_from"] == "transport"
    assert shares["emergency_management"]["due_at"] == "2026-09-14T03:00:00Z"
    assert moved.json["updates"][-1]["event"] == "reassigned"
    assert {a.outcome for a in _pending(first.id)} == {"cancelled: reassigned"}

    _advance(found, DUE, run_worker)
    assert not _messages(found, "task_reminder")
    _advance(found, DUE + timedelta(hours=1), run_worker)
    [reminder] = _messages(found, "task_reminder")
    assert db.session.get(Person, reminder.person_id).department.code == "emergency_management"

    back = _post(
        client,
        task["id"],
        "reassign",
        commander,
        from_department="transport",
        to_department="cdc",
        reason="x",
    )
    assert back.status_code == 422 and "from_department" in back.json["errors"]
    same = _post(
        client,
        task["id"],
        "reassign",
        commander,
        from_department="emergency_management",
        to_department="emergency_management",
        reason="x",
    )
    assert same.status_code == 422 and "to_department" in same.json["errors"]


def test_progress_on_a_share_not_yet_accepted_records_the_acceptance(client, found):
    _, commander = _commander()
    task = _create(client, found, commander)

    answer = _post(client, task["id"], "progress", commander, note="车辆已出发", percent=30)

    assert answer.status_code == 200, answer.json
    assert [u["event"] for u in answer.json["updates"]] == ["created", "accepted", "progress"]
    assert _share(task["id"], "transport").state == "accepted"


def test_a_late_share_is_moved_only_with_a_new_due_time(client, found, run_worker):
    _, commander = _commander()
    task = _create(client, found, commander)
    _advance(found, DUE + timedelta(minutes=1), run_worker)

    refused = _post(client, task["id"], "reassign", commander,
                    from_department="transport", to_department="cdc", reason="改派")  # fmt: skip
    moved = _post(client, task["id"], "reassign", commander, from_department="transport",
                  to_department="cdc", reason="改派",
                  due_at="2026-09-14T12:00:00+08:00")  # fmt: skip

    assert refused.status_code == 422 and "due_at" in refused.json["errors"]
    assert moved.status_code == 200, moved.json
    assert _share(task["id"], "cdc").due_at == T0 + timedelta(hours=4)


def test_ending_the_response_calls_off_open_tasks_and_their_clock(client, found):
    _, commander = _commander()
    task = _create(client, found, commander)
    share = _share(task["id"], "transport")

    ended = client.post(f"/api/incidents/{found.id}/level", headers=bearer(commander),
                        json={"level": None, "reason": "响应终止"})  # fmt: skip

    assert ended.status_code == 200, ended.json
    assert ended.json["tasks"] == {"cancelled": 1}
    db.session.expire_all()
    assert db.session.get(CoordinationTask, task["id"]).status == "cancelled"
    assert {a.outcome for a in _pending(share.id)} == {"cancelled: task cancelled"}


# Bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"due_at": "2026-09-14T10:00:00"}, "due_at"),
        ({"due_at": "2026-09-13T10:00:00+08:00"}, "due_at"),
        ({"departments": ["no-such-department"]}, "departments"),
        ({"departments": []}, "departments"),
        ({"departments": ["transport", "transport"], "kind": "joint_inspection"}, "departments"),
        ({"departments": ["health"], "kind": "joint_inspection"}, "departments"),
        ({"departments": ["health", "cdc"]}, "departments"),
        ({"priority": "critical"}, "priority"),
        ({"kind": "meeting"}, "kind"),
        ({"title": "  "}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"acting_department": "nowhere"}, "acting_department"),
        ({"supplier": "ZH-SUP-001"}, "kind"),
        (
            {"supplier": "NO-SUCH", "kind": "joint_inspection", "departments": ["health", "cdc"]},
            "supplier",
        ),
    ],
)
def test_bad_tasks_are_refused_naming_the_field(client, found, change, field):
    _, commander = _commander()

    answer = client.post(
        f"/api/incidents/{found.id}/tasks", json=_body(**change), headers=bearer(commander)
    )

    assert answer.status_code == 422, answer.json
    assert field in str(answer.json["errors"])
    assert db.session.scalar(select(func.count(CoordinationTask.id))) == 0
    assert (
        db.session.scalar(
            select(func.count(ScheduledAction.id)).filter(ScheduledAction.kind.like("task_%"))
        )
        == 0
    )


def test_bad_share_actions_and_filters_are_refused_naming_the_field(client, found):
    _, commander = _commander()
    _, transport = _liaison("transport")
    task = _create(client, found, commander)

    cases = [
        ("progress", {"note": "x", "percent": 101}, "percent"),
        ("progress", {"note": "x", "percent": "50"}, "percent"),
        ("progress", {"percent": 5}, "note"),
        ("accept", {"stray": 1}, "stray"),
        ("accept", {"department": "nowhere"}, "department"),
        (
            "reassign",
            {"from_department": "transport", "to_department": "x", "reason": "r"},
            "to_department",
        ),
        (
            "reassign",
            {
                "from_department": "transport",
                "to_department": "cdc",
                "reason": "r",
                "due_at": "2026-09-14T10:00:00",
            },
            "due_at",
        ),
    ]
    for action, body, field in cases:
        token = commander if action == "reassign" else transport
        answer = _post(client, task["id"], action, token, **body)
        assert answer.status_code == 422, (action, body, answer.json)
        assert field in str(answer.json["errors"]), (action, answer.json)

    url = f"/api/incidents/{found.id}/tasks"
    for query, field in (
        ("priority=critical", "priority"),
        ("overdue=yes", "overdue"),
        ("department=nowhere", "department"),
        ("status=x", "status"),
        ("colour=red", "colour"),
    ):
        answer = client.get(f"{url}?{query}", headers=bearer(commander))
        assert answer.status_code == 422 and field in str(answer.json["errors"]), query
    assert client.get("/api/tasks/999999", headers=bearer(commander)).status_code == 404
    assert _post(client, 999999, "accept", transport).status_code == 404
    assert client.get("/api/incidents/999999/tasks", headers=bearer(commander)).status_code == 404
    assert client.get(url).status_code == 401


def test_the_list_filters_by_status_department_and_priority(client, found):
    _, commander = _commander()
    _, transport = _liaison("transport")
    routine = _create(client, found, commander)
    urgent = _create(client, found, commander, priority="urgent", departments=["health"])
    _post(client, routine["id"], "accept", transport)
    url = f"/api/incidents/{found.id}/tasks"

    def ids(query):
        return [t["id"] for t in client.get(f"{url}?{query}", headers=bearer(commander)).json]

    assert ids("") == [urgent["id"], routine["id"]]
    assert ids("status=in_progress") == [routine["id"]]
    assert ids("department=health") == [urgent["id"]]
    assert ids("priority=urgent") == [urgent["id"]]
    assert ids("overdue=false") == [urgent["id"], routine["id"]]


def test_the_open_task_summary_puts_urgent_first_then_by_due_time(client, found):
    _, commander = _commander()
    _, transport = _liaison("transport")
    late = _create(client, found, commander, due_at="2026-09-14T12:00:00+08:00")
    soon = _create(client, found, commander, departments=["health"])
    urgent = _create(
        client,
        found,
        commander,
        priority="urgent",
        departments=["cdc"],
        due_at="2026-09-14T13:00:00+08:00",
    )
    finished = _create(client, found, commander, departments=["commerce"])
    _post(client, finished["id"], "cancel", commander, reason="不需要了")
    _post(client, late["id"], "accept", transport)

    summary = open_task_summary(found, DUE + timedelta(minutes=1))

    assert [row["id"] for row in summary] == [urgent["id"], soon["id"], late["id"]]
    assert summary[1] == {
        "id": soon["id"],
        "title": "协助转运安置点物资",
        "priority": "routine",
        "kind": "task",
        "status": "open",
        "due_at": DUE,
        "overdue": True,
        "departments": ["health"],
    }
    assert summary[2]["status"] == "in_progress" and not summary[2]["overdue"]
    assert summary[0]["due_at"].utcoffset() == timedelta(0)
    assert task_figures(found) == {"created": 4, "done": 0, "overdue": 0, "escalated": 0, "open": 3}


def test_a_closed_incident_takes_no_new_task(client, found):
    from app.process.response import end_response

    _, commander = _commander()
    task = _create(client, found, commander)
    end_response(found, at=T0 + timedelta(minutes=5), reason="结束")
    db.session.commit()

    assert (
        client.post(
            f"/api/incidents/{found.id}/tasks", json=_body(), headers=bearer(commander)
        ).status_code
        == 409
    )
    assert _post(client, task["id"], "cancel", commander, reason="x").status_code == 409


# Concurrency -------------------------------------------------------------------------


def test_an_accept_and_a_decline_at_once_give_one_200_and_one_409(app, client, found):
    """Each request in its own thread, session and connection: never both, never a 500."""
    _, commander = _commander()
    _, transport = _liaison("transport")
    task = _create(client, found, commander)
    db.session.commit()
    barrier = threading.Barrier(2)
    codes = []

    def post(action, body):
        own = app.test_client()
        barrier.wait(timeout=30)
        codes.append(_post(own, task["id"], action, transport, **body).status_code)

    threads = [
        threading.Thread(target=post, args=("done", {})),
        threading.Thread(target=post, args=("decline", {"reason": "同时"})),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(codes) == [200, 409]
    db.session.expire_all()
    assert _share(task["id"], "transport").state in ("done", "declined")
    updates = db.session.scalars(select(TaskUpdate.event).filter_by(task_id=task["id"])).all()
    # Done on a share nobody accepted records the acceptance first.
    assert sorted(updates) in (["created", "declined"], ["accepted", "created", "done"])


# Pages -------------------------------------------------------------------------------


HOSTILE = '<script>alert("x")</script> "引号" & \'单引号\' <b>粗</b>'


def test_pages_set_a_task_and_show_hostile_text_literally(client, found):
    user, _ = _liaison("commerce", password="pw-commerce-1234")
    sign_in(client, user.username, "pw-commerce-1234")
    page = client.get(f"/incidents/{found.id}/tasks")
    assert page.status_code == 200 and "协同任务" in page.get_data(as_text=True)

    form = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "title": HOSTILE,
        "details": HOSTILE,
        "priority": "urgent",
        "kind": "task",
        "due": "2026-09-14T10:00",  # Asia/Shanghai, as the browser sends it
        "departments": "transport",
        "acting_department": "commerce",
        "supplier": "",
        "place": "",
    }
    made = client.post(f"/incidents/{found.id}/tasks", data=form)
    assert made.status_code in (302, 303), made.get_data(as_text=True)
    task = db.session.scalar(select(CoordinationTask))
    assert task.title == HOSTILE and task.due_at == DUE and task.priority == "urgent"

    for url in (f"/incidents/{found.id}/tasks", f"/tasks/{task.id}", "/tasks"):
        text = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in text and "<b>粗</b>" not in text, url
        assert "&lt;script&gt;alert(" in text and "&lt;b&gt;粗&lt;/b&gt;" in text, url
        assert "引号" in text
    detail = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "紧急" in detail and "2026-09-14 10:00" in detail

    from flask_babel import refresh

    refresh()
    english = client.get(f"/tasks/{task.id}?lang=en").get_data(as_text=True)
    assert "urgent" in english and "History" in english and "Transport" in english


@pytest.mark.parametrize("due", ["2026-09-14T07:00", "2150-12-05T10:00"])
def test_a_due_time_refused_on_the_page_names_the_form_field(client, found, due):
    user, _ = _liaison("commerce", password="pw-commerce-1234")
    sign_in(client, user.username, "pw-commerce-1234")
    page = client.get(f"/incidents/{found.id}/tasks").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "title": "送水", "priority": "routine",
            "kind": "task", "due": due, "departments": "transport",
            "acting_department": "commerce"}  # fmt: skip

    refused = client.post(f"/incidents/{found.id}/tasks", data=form)

    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "<b>完成时限</b>" in text and "due_at" not in text
    assert db.session.scalar(select(func.count(CoordinationTask.id))) == 0


def test_a_liaison_works_their_share_on_the_page_and_is_refused_another(client, found):
    _, commander = _commander()
    task = _create(
        client, found, commander, kind="joint_inspection", departments=["transport", "health"]
    )
    user, _ = _liaison("transport", password="pw-transport-1234")
    sign_in(client, user.username, "pw-transport-1234")
    page = client.get(f"/tasks/{task['id']}").get_data(as_text=True)
    token = csrf_token(page)
    assert 'value="transport"' in page and 'value="health"' not in page

    refused = client.post(
        f"/tasks/{task['id']}/accept", data={"csrf_token": token, "department": "health"}
    )
    assert refused.status_code == 403
    no_reason = client.post(
        f"/tasks/{task['id']}/decline",
        data={"csrf_token": token, "department": "transport", "reason": ""},
    )
    assert no_reason.status_code == 422
    expired = client.post(f"/tasks/{task['id']}/accept", data={"department": "transport"})
    assert expired.status_code == 400

    accepted = client.post(
        f"/tasks/{task['id']}/accept", data={"csrf_token": token, "department": "transport"}
    )
    assert accepted.status_code in (302, 303)
    progress = client.post(
        f"/tasks/{task['id']}/progress",
        data={"csrf_token": token, "department": "transport", "note": "车辆出发", "percent": "30"},
    )
    assert progress.status_code in (302, 303)
    done = client.post(
        f"/tasks/{task['id']}/done", data={"csrf_token": token, "department": "transport"}
    )
    assert done.status_code in (302, 303)
    again = client.post(
        f"/tasks/{task['id']}/done", data={"csrf_token": token, "department": "transport"}
    )
    assert again.status_code == 409
    cancel = client.post(f"/tasks/{task['id']}/cancel", data={"csrf_token": token, "reason": "x"})
    assert cancel.status_code == 403

    db.session.expire_all()
    assert _share(task["id"], "transport").state == "done"
    assert _share(task["id"], "health").state == "assigned"
    history = client.get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert "车辆出发" in history and "30%" in history


def test_the_commander_reassigns_and_calls_off_on_the_page(client, found):
    user, _ = _commander(password="pw-commander-1234")
    sign_in(client, user.username, "pw-commander-1234")
    page = client.get(f"/incidents/{found.id}/tasks").get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(page),
        "title": "调配车辆",
        "details": "",
        "priority": "routine",
        "kind": "task",
        "due": "2026-09-14T10:00",
        "departments": "transport",
        "acting_department": "",
        "supplier": "",
        "place": "",
    }
    assert client.post(f"/incidents/{found.id}/tasks", data=form).status_code in (302, 303)
    stale = dict(form, due="2026-09-13T10:00")
    refused = client.post(f"/incidents/{found.id}/tasks", data=stale)
    assert refused.status_code == 422 and "<b>完成时限</b>" in refused.get_data(as_text=True)
    task = db.session.scalar(select(CoordinationTask))
    assert task.created_by_department_id is None

    token = csrf_token(client.get(f"/tasks/{task.id}").get_data(as_text=True))
    moved = client.post(
        f"/tasks/{task.id}/reassign",
        data={
            "csrf_token": token,
            "from_department": "transport",
            "to_department": "emergency_management",
            "reason": "车辆不足",
            "due": "",
        },
    )
    assert moved.status_code in (302, 303), moved.get_data(as_text=True)
    called_off = client.post(f"/tasks/{task.id}/cancel", data={"csrf_token": token, "reason": "x"})
    assert called_off.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(CoordinationTask, task.id).status == "cancelled"
    assert [s.state for s in db.session.get(CoordinationTask, task.id).shares] == [
        "reassigned",
        "assigned",
    ]
