"""The statutory clock over the API and the pages: a liaison answers for their own
department only, the commander sets the level, a poisoning report starts the clock, and
the duty matrix comes as JSON, a page and an Excel file."""

import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.duties.models import DutyAssignment
from app.extensions import db
from app.organisation.models import Person
from app.organisation.services import department
from tests.helpers import T0, bearer, csrf_token, first_assignment, incident, make_user, sign_in


@pytest.fixture
def found(region):
    return incident(level="II")


def _assignment(found, code):
    return first_assignment(found, code)


def _liaison(code):
    person = db.session.scalar(
        select(Person).filter_by(department_id=department(code).id, role="liaison", on_duty=True)
    )
    user, token = make_user("liaison", department=code)
    user.person_id = person.id
    db.session.commit()
    return user, token


def test_a_liaison_confirms_their_own_duty_and_is_refused_another(client, found):
    _, education = _liaison("education")
    own = _assignment(found, "education")
    other = _assignment(found, "health")

    answer = client.post(f"/api/assignments/{own.id}/confirm", headers=bearer(education))
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "confirmed" and answer.json["confirmed_at"].endswith("Z")

    refused = client.post(f"/api/assignments/{other.id}/confirm", headers=bearer(education))
    assert refused.status_code == 403 and "own department" in refused.json["message"]
    refused = client.post(
        f"/api/assignments/{other.id}/objection", json={"reason": "x"}, headers=bearer(education)
    )
    assert refused.status_code == 403
    db.session.expire_all()
    assert _assignment(found, "health").status == "assigned"


def test_the_clock_needs_a_signed_in_user_with_the_right_role(client, found):
    own = _assignment(found, "education")
    _, viewer = make_user("viewer", department="education")
    assert client.post(f"/api/assignments/{own.id}/confirm").status_code == 401
    assert (
        client.post(f"/api/assignments/{own.id}/confirm", headers=bearer(viewer)).status_code == 403
    )
    assert client.get(f"/api/incidents/{found.id}/duty-matrix").status_code == 401
    level = {"level": "III", "reason": "x"}
    answer = client.post(f"/api/incidents/{found.id}/level", json=level, headers=bearer(viewer))
    assert answer.status_code == 403


def test_an_objection_needs_a_reason_and_the_commander_decides(client, found):
    _, education = _liaison("education")
    _, commander = make_user("commander", department="government")
    own = _assignment(found, "education")

    blank = client.post(
        f"/api/assignments/{own.id}/objection", json={"reason": " "}, headers=bearer(education)
    )
    assert blank.status_code == 422 and "reason" in blank.json["errors"]["json"]
    objected = client.post(
        f"/api/assignments/{own.id}/objection",
        json={"reason": "学校停课"},
        headers=bearer(education),
    )
    assert objected.status_code == 200 and objected.json["status"] == "objected"
    decided = client.post(
        f"/api/assignments/{own.id}/decision",
        json={"uphold": True, "reason": "安置点设在学校"},
        headers=bearer(commander),
    )
    assert decided.status_code == 200 and decided.json["status"] == "assigned"
    again = client.post(
        f"/api/assignments/{own.id}/decision",
        json={"uphold": False, "reason": "x"},
        headers=bearer(commander),
    )
    assert again.status_code == 409


def test_the_commander_changes_and_ends_the_level_with_a_reason(client, found):
    _, commander = make_user("commander", department="government")
    url = f"/api/incidents/{found.id}/level"

    assert client.post(url, json={"level": "IV"}, headers=bearer(commander)).status_code == 422
    bad = client.post(url, json={"level": "V", "reason": "x"}, headers=bearer(commander))
    assert bad.status_code == 422 and "level" in bad.json["errors"]["json"]
    lowered = client.post(url, json={"level": "IV", "reason": "降级"}, headers=bearer(commander))
    assert lowered.status_code == 200, lowered.json
    assert lowered.json["level"] == "IV" and lowered.json["duties"]["retired"] > 0
    same = client.post(url, json={"level": "IV", "reason": "again"}, headers=bearer(commander))
    assert same.status_code == 409
    ended = client.post(url, json={"level": None, "reason": "结束"}, headers=bearer(commander))
    assert ended.status_code == 200 and ended.json["status"] == "closed"
    assert ended.json["duties"]["closed"] > 0
    late = client.post(url, json={"level": "III", "reason": "x"}, headers=bearer(commander))
    assert late.status_code == 409


def test_the_duty_matrix_over_the_api(client, found):
    _, viewer = make_user("viewer", department="government", password="pw-viewer-123456")
    matrix = client.get(f"/api/incidents/{found.id}/duty-matrix", headers=bearer(viewer))
    assert matrix.status_code == 200
    assert len(matrix.json["assignments"]) == 35
    assert {row["department"] for row in matrix.json["departments"]} >= {"education", "cdc"}
    filtered = client.get(
        f"/api/incidents/{found.id}/assignments?department=education", headers=bearer(viewer)
    )
    assert filtered.status_code == 200 and {r["department"] for r in filtered.json} == {"education"}
    assert (
        client.get(
            f"/api/incidents/{found.id}/assignments?status=nonsense", headers=bearer(viewer)
        ).status_code
        == 422
    )


def test_matrix_pages_need_sign_in_and_speak_chinese_and_english(client, found):
    from openpyxl import load_workbook

    user, _ = make_user("viewer", department="government", password="pw-viewer-123456")
    assert client.get(f"/incidents/{found.id}/duties").status_code in (302, 303)
    assert sign_in(client, user.username, "pw-viewer-123456").status_code in (302, 303)

    page = client.get(f"/incidents/{found.id}/duties").get_data(as_text=True)
    assert "职责矩阵" in page and "区教育局" in page
    from flask_babel import refresh

    refresh()
    english = client.get(f"/incidents/{found.id}/duties?lang=en").get_data(as_text=True)
    assert "Duty matrix" in english and "Education Bureau" in english

    refresh()
    answer = client.get(f"/incidents/{found.id}/duties.xlsx")
    assert answer.status_code == 200
    book = load_workbook(io.BytesIO(answer.data))
    sheet = book["职责矩阵"]
    rows = list(sheet.values)
    assert rows[0][0] == "部门" and len(rows) == 36
    assert {"区教育局" in (row[0] or "") for row in rows[1:]} == {True, False}
    assert client.get(f"/incidents/{found.id}").status_code == 200
    assert client.get("/contacts").status_code == 200
    assert client.get("/rosters").status_code == 200
    assert client.get("/incidents").status_code == 200


def test_a_liaison_confirms_on_the_page_with_csrf(client, found):
    user, _ = make_user("liaison", department="education", password="pw-liaison-123456")
    sign_in(client, user.username, "pw-liaison-123456")
    own = _assignment(found, "education")
    other = _assignment(found, "health")
    page = client.get(f"/incidents/{found.id}/duties").get_data(as_text=True)
    token = csrf_token(page)

    assert client.post(f"/assignments/{own.id}/confirm", data={}).status_code == 400
    assert (
        client.post(f"/assignments/{other.id}/confirm", data={"csrf_token": token}).status_code
        == 403
    )
    done = client.post(f"/assignments/{own.id}/confirm", data={"csrf_token": token})
    assert done.status_code in (302, 303)
    db.session.expire_all()
    assert _assignment(found, "education").status == "confirmed"
    assert _assignment(found, "health").status == "assigned"


def test_a_poisoning_report_over_the_api_starts_the_clock(client, region):
    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "某安置点疑似食物中毒", "harmed": 31, "demand_point": "ZH-SH-01"}
    answer = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))
    assert answer.status_code == 201, answer.json
    assert answer.json["kind"] == "food_safety" and answer.json["suggested_level"] == "IV"
    rows = db.session.scalars(select(DutyAssignment).filter_by(incident_id=answer.json["id"])).all()
    initial = next(a for a in rows if a.duty.code == "fs-initial-report")
    assert initial.deadline_at - initial.assigned_at == timedelta(hours=2)

    for bad, field in (
        ({**body, "harmed": -1}, "harmed"),
        ({**body, "harmed": "12"}, "harmed"),
        ({**body, "demand_point": "NOPE"}, "demand_point"),
        ({**body, "extra": 1}, "extra"),
        ({"title": "x", "harmed": 3}, "place"),
    ):
        refused = client.post("/api/food-safety-reports", json=bad, headers=bearer(inspector))
        assert refused.status_code == 422, bad
        assert field in str(refused.json["errors"]), (bad, refused.json)


def test_contacts_and_rosters_over_the_api(client, region):
    _, commerce = _liaison("commerce")
    _, commander = make_user("commander", department="government")
    people = client.get("/api/contacts?department=commerce", headers=bearer(commerce)).json
    standing, substitute = sorted(people, key=lambda p: p["id"])

    shift = {
        "department": "commerce",
        "role": "liaison",
        "person": substitute["code"],
        "substitute": standing["code"],
        "starts_at": (T0 + timedelta(hours=1)).isoformat(),
        "ends_at": (T0 + timedelta(hours=9)).isoformat(),
    }
    made = client.post("/api/rosters", json=shift, headers=bearer(commerce))
    assert made.status_code == 201, made.json
    listed = client.get("/api/rosters?department=commerce", headers=bearer(commerce)).json
    assert [s["person"] for s in listed] == [substitute["code"]]
    health = {**shift, "department": "health"}
    assert client.post("/api/rosters", json=health, headers=bearer(commerce)).status_code == 403
    backwards = {**shift, "ends_at": shift["starts_at"]}
    refused = client.post("/api/rosters", json=backwards, headers=bearer(commander))
    assert refused.status_code == 422 and "ends_at" in str(refused.json["errors"])
    naive = {**shift, "starts_at": "2026-09-14T08:00:00"}
    assert client.post("/api/rosters", json=naive, headers=bearer(commander)).status_code == 422

    away = client.patch(
        f"/api/contacts/{substitute['id']}", json={"available": False}, headers=bearer(commerce)
    )
    assert away.status_code == 200 and away.json["available"] is False
    assert (
        client.delete(f"/api/rosters/{made.json['id']}", headers=bearer(commerce)).status_code
        == 204
    )


def test_working_groups_of_an_incident(client, found):
    _, viewer = make_user("viewer", department="government")
    groups = client.get(f"/api/incidents/{found.id}/groups", headers=bearer(viewer)).json
    supply = next(g for g in groups if g["code"] == "supply")
    assert supply["lead"] == "commerce" and supply["members"]
    assert all(member["on_duty_now"] for member in supply["members"])


def test_the_commander_closes_a_duty_and_moves_the_phase(client, found):
    _, commander = make_user("commander", department="government")
    _, education = _liaison("education")
    own = _assignment(found, "education")

    closed = client.post(
        f"/api/assignments/{own.id}/close", json={"note": "已完成"}, headers=bearer(commander)
    )
    assert closed.status_code == 200 and closed.json["status"] == "closed"
    late = client.post(f"/api/assignments/{own.id}/confirm", headers=bearer(education))
    assert late.status_code == 409

    lines = client.get(f"/api/incidents/{found.id}/checklist", headers=bearer(commander)).json
    response_lines = [line for line in lines if line["phase"] == "response"]
    assert response_lines and all(line["status"] == "open" for line in response_lines)
    url = f"/api/checklist-items/{response_lines[0]['id']}/done"
    assert client.post(url, headers=bearer(education)).status_code == 403  # the command's list
    done = client.post(url, headers=bearer(commander))
    assert done.status_code == 200 and done.json["status"] == "done"

    moved = client.post(
        f"/api/incidents/{found.id}/phase",
        json={"phase": "recovery", "reason": "台风过境"},
        headers=bearer(commander),
    )
    assert moved.status_code == 200 and moved.json["phase"] == "recovery"
    assert moved.json["checklist"]["added"] > 0
    lines = client.get(f"/api/incidents/{found.id}/checklist", headers=bearer(commander)).json
    statuses = {line["id"]: line["status"] for line in lines}
    assert statuses[response_lines[0]["id"]] == "done"  # done stays done
    assert all(statuses[line["id"]] == "retired" for line in response_lines[1:])
    bad = client.post(
        f"/api/incidents/{found.id}/phase", json={"phase": "later"}, headers=bearer(commander)
    )
    assert bad.status_code == 422 and "phase" in bad.json["errors"]["json"]


def test_marking_the_liaison_unreachable_hands_their_duties_over(client, found):
    from app.coordination.models import Notification

    _, commander = make_user("commander", department="government")
    standing = db.session.scalar(
        select(Person).filter_by(department_id=department("commerce").id, on_duty=True)
    )
    answer = client.patch(
        f"/api/contacts/{standing.id}", json={"available": False}, headers=bearer(commander)
    )
    assert answer.status_code == 200
    handed = db.session.scalars(
        select(Notification).filter_by(incident_id=found.id, kind="duty_handover")
    ).all()
    assert handed and all(m.person_id != standing.id for m in handed)
    substitute = db.session.get(Person, handed[0].person_id)
    assert substitute.department.code == "commerce" and substitute.available


def test_a_liaison_cannot_make_or_silence_a_commander(client, region):
    _, government = _liaison("government")
    commander = db.session.scalar(select(Person).filter_by(role="commander"))
    made = client.post(
        "/api/contacts",
        json={
            "code": "fake-cmd",
            "name": "假指挥长",
            "department": "government",
            "role": "commander",
        },
        headers=bearer(government),
    )
    assert made.status_code == 403
    silenced = client.patch(
        f"/api/contacts/{commander.id}", json={"available": False}, headers=bearer(government)
    )
    assert silenced.status_code == 403
    db.session.expire_all()
    assert db.session.get(Person, commander.id).available


@pytest.mark.parametrize(
    "url, body",
    [
        ("/api/assignments/{own}/confirm", {"bogus": 1}),
        ("/api/assignments/{own}/decision", {"uphold": "yes", "reason": "x"}),
    ],
)
def test_stray_fields_and_loose_booleans_are_refused(client, found, url, body):
    _, education = _liaison("education")
    _, commander = make_user("commander", department="government")
    own = _assignment(found, "education")
    token = education if "confirm" in url else commander
    answer = client.post(url.format(own=own.id), json=body, headers=bearer(token))
    assert answer.status_code == 422
    db.session.expire_all()
    assert _assignment(found, "education").status == "assigned"


def test_bad_filters_phases_shifts_and_phones_are_refused(client, found):
    _, commander = make_user("commander", department="government")
    nowhere = client.get(
        f"/api/incidents/{found.id}/assignments?department=nowhere", headers=bearer(commander)
    )
    assert nowhere.status_code == 422 and "department" in str(nowhere.json["errors"])
    person = db.session.scalar(select(Person).filter_by(role="liaison"))
    decade = {
        "department": person.department.code,
        "role": "liaison",
        "person": person.code,
        "starts_at": "2026-09-14T08:00:00+08:00",
        "ends_at": "2036-09-14T08:00:00+08:00",
    }
    long_shift = client.post("/api/rosters", json=decade, headers=bearer(commander))
    assert long_shift.status_code == 422 and "ends_at" in str(long_shift.json["errors"])
    phone = client.patch(
        f"/api/contacts/{person.id}", json={"phone": "=cmd|'/C calc'!A0"}, headers=bearer(commander)
    )
    assert phone.status_code == 422 and "phone" in str(phone.json["errors"])


def test_the_closure_checklist_is_ticked_after_the_end(client, found):
    _, commander = make_user("commander", department="government")
    url = f"/api/incidents/{found.id}/level"
    assert client.post(url, json={"level": None, "reason": "结束"}, headers=bearer(commander)).json
    lines = client.get(f"/api/incidents/{found.id}/checklist", headers=bearer(commander)).json
    closure = [line for line in lines if line["phase"] == "closure" and line["status"] == "open"]
    response_line = next(line for line in lines if line["phase"] == "response")
    assert closure
    done = client.post(f"/api/checklist-items/{closure[0]['id']}/done", headers=bearer(commander))
    assert done.status_code == 200 and done.json["status"] == "done"
    late = client.post(
        f"/api/checklist-items/{response_line['id']}/done", headers=bearer(commander)
    )
    assert late.status_code == 409


def test_the_same_poisoning_report_twice_opens_one_incident(client, region):
    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "同一起事件", "harmed": 35, "demand_point": "ZH-SH-01"}
    first = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))
    again = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.json["duplicate"] is True

    keyed = {**bearer(inspector), "Idempotency-Key": "report-0001-abc"}
    other = {**body, "harmed": 36}
    one = client.post("/api/food-safety-reports", json=other, headers=keyed)
    two = client.post("/api/food-safety-reports", json=other, headers=keyed)
    assert one.status_code == 201 and two.status_code == 200 and two.json["id"] == one.json["id"]
    bad = {**bearer(inspector), "Idempotency-Key": "x"}
    assert client.post("/api/food-safety-reports", json=body, headers=bad).status_code == 422


def test_a_food_safety_incident_is_not_asked_shelter_duties(client, region):
    _, inspector = make_user("inspector", department="market_supervision")
    _, commander = make_user("commander", department="government")
    body = {"title": "学校食堂疑似食物中毒", "harmed": 60, "school": True, "place": "某中学"}
    found = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector)).json
    assert found["suggested_level"] == "II"
    level = client.post(
        f"/api/incidents/{found['id']}/level",
        json={"level": "II", "reason": "确认II级"},
        headers=bearer(commander),
    )
    assert level.status_code == 200, level.json
    assert level.json["duties"]["kept"] == 4 and level.json["checklist"]["added"] > 0
    codes = {
        a.duty.code for a in db.session.scalars(
            select(DutyAssignment).filter_by(incident_id=found["id"])
        )
    }  # fmt: skip
    assert "fs-initial-report" in codes and "ms-incident-handling" in codes
    assert not {code for code in codes if "shelters" in code or "receive-meals" in code}


def test_a_liaison_adds_a_shift_and_marks_someone_unreachable_on_the_pages(client, region):
    from app.organisation.models import RosterShift

    user, _ = make_user("liaison", department="commerce", password="pw-commerce-1234")
    sign_in(client, user.username, "pw-commerce-1234")
    standing, substitute = db.session.scalars(
        select(Person)
        .filter_by(department_id=department("commerce").id, role="liaison")
        .order_by(Person.id)
    ).all()
    page = client.get("/rosters").get_data(as_text=True)
    assert "添加班次" in page and "卫生健康局" not in page.split("<form")[1]
    token = csrf_token(page)

    form = {"csrf_token": token, "person": substitute.id, "substitute": standing.id,
            "starts": "2026-09-14T08:00", "ends": "2026-09-14T20:00", "note": "夜班"}  # fmt: skip
    assert client.post("/rosters", data=form).status_code in (302, 303)
    [shift] = db.session.scalars(select(RosterShift)).all()
    assert shift.starts_at.isoformat() == "2026-09-14T00:00:00+00:00"  # 08:00 in Shanghai
    backwards = client.post("/rosters", data={**form, "ends": "2026-09-14T07:00"})
    assert backwards.status_code == 422 and "ends_at" in backwards.get_data(as_text=True)
    health = db.session.scalar(select(Person).filter_by(code="health-liaison-1"))
    foreign = client.post("/rosters", data={**form, "person": health.id})
    assert foreign.status_code == 422 and len(db.session.scalars(select(RosterShift)).all()) == 1

    contacts = client.get("/contacts").get_data(as_text=True)
    assert client.post(f"/contacts/{standing.id}/availability", data={}).status_code == 400
    marked = client.post(
        f"/contacts/{standing.id}/availability", data={"csrf_token": csrf_token(contacts)}
    )
    assert marked.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(Person, standing.id).available is False
    refused = client.post(
        f"/contacts/{health.id}/availability", data={"csrf_token": csrf_token(contacts)}
    )
    assert refused.status_code == 403


def test_a_report_before_any_level_escalates_to_the_plans_office(client, region, run_worker):
    from app.clock.services import tick
    from app.coordination.models import Notification
    from app.incidents.models import Incident
    from app.organisation.services import office_liaison
    from app.types import utcnow

    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "无人确认的报告", "harmed": 3, "place": "某食堂"}
    found = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector)).json
    incident = db.session.get(Incident, found["id"])
    for assignment in db.session.scalars(select(DutyAssignment).filter_by(incident_id=incident.id)):
        assignment.assigned_at -= timedelta(hours=5)
        assignment.deadline_at -= timedelta(hours=5)
    from app.clock.models import ScheduledAction

    for action in db.session.scalars(select(ScheduledAction).filter_by(incident_id=incident.id)):
        action.due_at -= timedelta(hours=5)
    db.session.commit()

    tick(utcnow(), [incident.id])
    run_worker()
    run_worker()
    db.session.expire_all()
    escalations = db.session.scalars(
        select(Notification).filter_by(incident_id=incident.id, kind="duty_escalation")
    ).all()
    office = office_liaison(incident)
    assert office is not None and office.department.code == "market_supervision"
    assert office.id in {m.person_id for m in escalations}
    assert len(escalations) == 2 * 4  # office and commander, for each of the four duties


def test_a_keyed_report_and_the_same_words_unkeyed_are_one_incident(client, region):
    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "同一起事件（键）", "harmed": 40, "place": "某食堂"}
    keyed = {**bearer(inspector), "Idempotency-Key": "key-00001"}
    first = client.post("/api/food-safety-reports", json=body, headers=keyed)
    plain = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))
    reused = client.post("/api/food-safety-reports", json={**body, "harmed": 41}, headers=keyed)

    assert first.status_code == 201 and plain.status_code == 200
    assert plain.json["id"] == first.json["id"]
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json["message"]


def test_overlapping_shifts_of_one_role_are_refused(client, region):
    _, commander = make_user("commander", department="government")
    people = client.get("/api/contacts?department=commerce", headers=bearer(commander)).json
    first, second = sorted(people, key=lambda p: p["id"])
    shift = {
        "department": "commerce",
        "role": "liaison",
        "person": first["code"],
        "starts_at": "2026-09-14T08:00:00+08:00",
        "ends_at": "2026-09-14T20:00:00+08:00",
    }
    assert client.post("/api/rosters", json=shift, headers=bearer(commander)).status_code == 201
    overlap = {**shift, "person": second["code"], "starts_at": "2026-09-14T19:00:00+08:00",
               "ends_at": "2026-09-15T08:00:00+08:00"}  # fmt: skip
    refused = client.post("/api/rosters", json=overlap, headers=bearer(commander))
    assert refused.status_code == 422 and "overlaps" in str(refused.json["errors"])
    after = {**overlap, "starts_at": "2026-09-14T20:00:00+08:00"}
    assert client.post("/api/rosters", json=after, headers=bearer(commander)).status_code == 201


def test_the_excel_matrix_keeps_times_as_dates(client, found):
    from datetime import datetime

    from openpyxl import load_workbook

    user, _ = make_user("viewer", department="government", password="pw-viewer-123456")
    sign_in(client, user.username, "pw-viewer-123456")
    book = load_workbook(io.BytesIO(client.get(f"/incidents/{found.id}/duties.xlsx").data))
    rows = list(book["职责矩阵"].values)
    assert rows[0][5] == "分派时间 (Asia/Shanghai)"
    assert rows[1][5] == datetime(2026, 9, 14, 8, 0)  # T0 in Shanghai
    assert rows[1][4] == "已分派"


def test_the_same_report_sent_at_once_opens_one_incident(app, region):
    """Each request in its own thread, session and connection."""
    import threading

    from app.incidents.models import Incident

    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "同时提交的报告", "harmed": 12, "place": "某工地食堂"}
    barrier = threading.Barrier(4)
    codes = []

    def post():
        client = app.test_client()
        barrier.wait(timeout=30)
        codes.append(
            client.post(
                "/api/food-safety-reports", json=body, headers=bearer(inspector)
            ).status_code
        )

    db.session.commit()
    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(codes) == [200, 200, 200, 201]
    db.session.expire_all()
    assert len(db.session.scalars(select(Incident).filter_by(kind="food_safety")).all()) == 1
