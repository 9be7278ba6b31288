"""Situation reports: drafted on the plan's schedule through a real worker, from the live
figures of each section; edited as versions from a named base, approved by the commander
alone, sent once to each recipient; exported as a Word document and a printable page."""

import io
import types
from datetime import timedelta

import pytest
from docx import Document
from flask_babel import refresh
from sqlalchemy import func, select

from app.clock.models import ScheduledAction
from app.clock.services import tick
from app.coordination import sitrep_export, sitrep_text, sitreps
from app.coordination.models import Notification, SituationReport
from app.coordination.sitreps import (
    approve_sitrep,
    draft_sitrep,
    edit_sitrep,
    send_sitrep,
    sitreps_issued,
)
from app.coordination.tasks import create_task
from app.duties.models import DutyAssignment
from app.duties.services import confirm
from app.errors import Conflict, Forbidden
from app.extensions import db
from app.organisation.services import commander_of, department, liaison_of, office_liaison
from app.supply.models import SupplyTask
from app.supply.services import allocate_meal
from app.techsupport.services import record_rapid_test
from tests.helpers import (
    T0,
    bearer,
    csrf_token,
    first_assignment,
    incident,
    make_user,
    open_shelters,
    set_clock,
    sign_in,
)

LUNCH = T0 + timedelta(hours=4)
SHELTERS = {"ZH-SH-01": 3960, "ZH-SH-02": 2370}
PASSWORD = "pw-sitreps-123456"


def _small_incident():
    """A level II drill incident: two shelters' lunch allocated and one task delivered,
    every department but education confirmed, one failed rapid test."""
    found = incident(level="II")
    _confirm_all_but(found, "education", T0 + timedelta(minutes=5))
    open_shelters(found, SHELTERS)
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    delivered = min(tasks, key=lambda t: t.id)
    delivered.status = "delivered"
    failing = max(tasks, key=lambda t: t.meals).supplier
    record_rapid_test(
        supplier=failing,
        incident=found,
        analyte="亚硝酸盐",
        method="快检",
        value=45.0,
        limit=30.0,
        unit="mg/kg",
        tested_by="inspector",
        at=T0 + timedelta(minutes=30),
    )
    db.session.commit()
    return found, delivered, failing


def _confirm_all_but(found, code, at):
    left = first_assignment(found, code).department_id if code else None
    for assignment in db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id)):
        if assignment.department_id != left:
            confirm(assignment, liaison_of(assignment.department_id, at), at)
    db.session.commit()


def _sent(found, at):
    report = draft_sitrep(found, at)
    approve_sitrep(report, version=1, user=None, at=at)
    send_sitrep(report, user=None, at=at)
    db.session.commit()
    return report


def _messages(found, kind="sitrep"):
    return db.session.scalars(
        select(Notification).filter_by(incident_id=found.id, kind=kind).order_by(Notification.id)
    ).all()


@pytest.fixture
def found(region):
    return incident(level="II")


@pytest.fixture
def commander(found):
    user, token = make_user("commander", department="government", password=PASSWORD)
    return user, token


def test_the_schedule_drafts_a_report_through_a_worker_once(found, run_worker):
    _confirm_all_but(found, None, T0 + timedelta(minutes=5))  # no reminder falls due
    due = T0 + timedelta(hours=12)
    set_clock(found, due - timedelta(minutes=1))
    assert tick(due - timedelta(minutes=1), [found.id]) == 0

    set_clock(found, due)
    assert sum(tick(due, [found.id]) for _ in range(3)) == 1
    run_worker()
    db.session.expire_all()

    reports = db.session.scalars(select(SituationReport).filter_by(incident_id=found.id)).all()
    assert [(r.number, r.status, r.current_version) for r in reports] == [(1, "draft", 1)]
    report = reports[0]
    assert report.period_start == T0 and report.period_end == due
    assert set(report.versions[0].sections) == set(sitrep_text.SECTION_KEYS)
    following = db.session.scalars(
        select(ScheduledAction.due_at).filter_by(incident_id=found.id, kind="sitrep")
    ).all()
    assert sorted(following) == [due, due + timedelta(hours=12)]
    # A draft is not an issue: nobody is sent a report, the commander is told one waits.
    assert not _messages(found)
    assert len(_messages(found, "sitrep_draft")) == 2
    assert sitreps_issued(found) == 0


def test_each_section_tells_the_figures_of_a_small_incident(region):
    found, delivered, failing = _small_incident()
    at = T0 + timedelta(hours=5)

    report = draft_sitrep(found, at)
    figures, text = report.figures, report.versions[0].sections

    assert figures["level"]["declared"] == "II" and figures["level"]["phase"] == "response"
    assert text["level"].startswith("当前响应级别：II级（重大）")
    duties = figures["duties"]
    assert duties["open"] >= 1 and duties["confirmed"] == duties["assigned"] - duties["open"]
    assert [d["code"] for d in duties["waiting"]] == ["education"]
    assert "尚未确认的部门：" in text["duties"] and duties["waiting"][0]["name"] in text["duties"]

    [lunch] = figures["meals"]
    assert lunch["meal"] == "lunch" and lunch["demand"] == sum(SHELTERS.values())
    assert lunch["allocated"] == sum(SHELTERS.values())
    assert lunch["delivered"] == delivered.meals
    assert lunch["unmet"] == lunch["demand"] - delivered.meals
    assert f"已送达 {delivered.meals} 份" in text["meals"]

    safety = figures["food_safety"]
    assert (safety["tests_run"], safety["tests_failed"]) == (1, 1)
    assert safety["failed"][0]["supplier"] == failing.code
    assert failing.name in text["food_safety"] and "亚硝酸盐" in text["food_safety"]
    assert [s["supplier"] for s in safety["suspended"]] == [failing.code]
    assert "暂停供应的供应商" in text["food_safety"]

    assert text["tasks"] == "当前无未办结的协调任务。"
    assert text["changes"].startswith("本期为首期报告。")
    assert "快检不合格" in text["changes"]  # the timeline of the period
    assert sitrep_export.title(report) == "[演练] 镇海区餐饮保供信息专报 第1期"


def test_open_coordination_tasks_are_reported_with_their_departments(found):
    assert sitreps._open_tasks(found, T0) == []
    create_task(
        found,
        title="协调转运<车辆>",
        priority="urgent",
        due_at=T0 + timedelta(hours=1),
        departments=[department("transport")],
        at=T0 + timedelta(minutes=10),
    )
    db.session.commit()

    report = draft_sitrep(found, T0 + timedelta(hours=2))

    [task] = report.figures["tasks"]
    assert task["due_at"] == "2026-09-14T01:00:00Z" and task["overdue"] is True
    assert [d["code"] for d in task["departments"]] == ["transport"]
    text = report.versions[0].sections["tasks"]
    assert "未办结协调任务 1 项，其中逾期 1 项" in text
    assert "协调转运<车辆>" in text and "已逾期" in text and "区交通运输局" in text


def test_changes_are_told_against_the_last_sent_report(region):
    found, delivered, _ = _small_incident()
    first = _sent(found, T0 + timedelta(hours=1))
    other = db.session.scalar(
        select(SupplyTask).where(
            SupplyTask.incident_id == found.id,
            SupplyTask.status != "cancelled",
            SupplyTask.id != delivered.id,
        )
    )
    other.status = "delivered"
    db.session.commit()

    second = draft_sitrep(found, T0 + timedelta(hours=13))

    assert second.number == 2 and second.previous_id == first.id
    assert second.period_start == first.period_end
    changes = {c["figure"]: (c["before"], c["after"]) for c in second.figures["changes"]}
    before = first.figures["headline"]["delivered_meals"]
    assert changes["delivered_meals"] == (before, before + other.meals)
    text = second.versions[0].sections["changes"]
    assert text.startswith("与第1期（截至 2026-09-14 09:00）相比：")
    assert f"已送达餐数：由 {before} 变为 {before + other.meals}（+{other.meals}）" in text
    # Timeline lines before the first report's end are not told again.
    assert "快检不合格" not in text


def test_a_new_draft_supersedes_one_not_sent_and_keeps_its_number(found):
    first = draft_sitrep(found, T0 + timedelta(hours=1))
    second = draft_sitrep(found, T0 + timedelta(hours=2))
    db.session.commit()

    assert (first.status, first.superseded_by_id) == ("superseded", second.id)
    assert second.number == first.number == 1
    with pytest.raises(Conflict, match="superseded"):
        edit_sitrep(first, {"level": "x"}, base_version=1, user=None, at=T0)


def test_an_edit_is_a_new_version_and_a_stale_base_is_409(client, found, commander):
    _, token = commander
    created = client.post(f"/api/incidents/{found.id}/sitreps", json={}, headers=bearer(token))
    assert created.status_code == 201, created.get_json()
    report_id = created.get_json()["id"]

    body = {"base_version": 1, "sections": {"level": "指挥长改写的级别说明。"}, "note": "改写"}
    saved = client.put(f"/api/sitreps/{report_id}", json=body, headers=bearer(token))
    assert saved.status_code == 200, saved.get_json()
    data = saved.get_json()
    assert data["current_version"] == 2 and data["status"] == "draft"
    level = next(s for s in data["sections"] if s["key"] == "level")
    assert level["text"] == "指挥长改写的级别说明。" and level["edited"] is True
    assert [v["number"] for v in data["versions"]] == [1, 2]
    assert data["versions"][0]["sections"]["level"].startswith("当前响应级别")  # kept

    # The second editor worked from version 1 too: told, not overwritten.
    body = {"base_version": 1, "sections": {"duties": "另一人的文字"}}
    stale = client.put(f"/api/sitreps/{report_id}", json=body, headers=bearer(token))
    assert stale.status_code == 409
    assert "version 2" in stale.get_json()["message"]
    old = client.get(f"/api/sitreps/{report_id}?version=1", headers=bearer(token)).get_json()
    assert old["version"] == 1 and old["sections"][0]["edited"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"base_version": 1, "sections": {"weather": "x"}}, "sections.weather"),
        ({"base_version": 1, "sections": {"level": "a\x07b"}}, "sections.level"),
        ({"base_version": 1, "sections": {"level": "长" * 20001}}, "sections.level"),
        ({"base_version": 1, "sections": {"level": 5}}, "sections.level"),
        ({"base_version": "1", "sections": {}}, "base_version"),
        ({"sections": {}}, "base_version"),
        ({"base_version": 1, "sections": {}, "colour": "red"}, "colour"),
    ],
)
def test_bad_edits_are_422_naming_the_field(client, found, commander, body, field):
    _, token = commander
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    db.session.commit()

    answer = client.put(f"/api/sitreps/{report.id}", json=body, headers=bearer(token))

    assert answer.status_code == 422
    errors = answer.get_json()["errors"]
    assert field in errors or field in errors.get("json", {}), errors
    assert db.session.get(SituationReport, report.id).current_version == 1


def test_the_office_liaison_edits_but_only_the_commander_approves(client, found):
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    db.session.commit()
    _, office = make_user("liaison", department="market_supervision")
    _, other = make_user("liaison", department="education")
    body = {"base_version": 1, "sections": {"meals": "办公室核实后的数字。"}}

    refused = client.put(f"/api/sitreps/{report.id}", json=body, headers=bearer(other))
    assert refused.status_code == 403
    saved = client.put(f"/api/sitreps/{report.id}", json=body, headers=bearer(office))
    assert saved.status_code == 200
    approve = client.post(
        f"/api/sitreps/{report.id}/approve", json={"version": 2}, headers=bearer(office)
    )
    assert approve.status_code == 403
    assert db.session.get(SituationReport, report.id).status == "draft"


def test_sending_needs_an_approved_latest_version(client, found, commander):
    _, token = commander
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    db.session.commit()

    unapproved = client.post(f"/api/sitreps/{report.id}/send", json={}, headers=bearer(token))
    assert unapproved.status_code == 409
    older = client.post(
        f"/api/sitreps/{report.id}/approve", json={"version": 2}, headers=bearer(token)
    )
    assert older.status_code == 409
    assert not _messages(found)


def test_a_sent_report_reaches_each_recipient_once_with_a_stable_key(client, found, commander):
    _, token = commander
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    db.session.commit()
    at = T0 + timedelta(hours=1)

    approved = client.post(
        f"/api/sitreps/{report.id}/approve", json={"version": 1}, headers=bearer(token)
    )
    assert approved.get_json()["status"] == "approved"
    sent = client.post(f"/api/sitreps/{report.id}/send", json={}, headers=bearer(token))
    assert sent.status_code == 200 and sent.get_json()["status"] == "sent"

    messages = _messages(found)
    expected = {commander_of(found, at).id, office_liaison(found, at).id}
    for code in ("health", "commerce", "emergency_management", "publicity"):
        from app.organisation.services import department

        expected.add(liaison_of(department(code).id, at).id)
    assert {m.person_id for m in messages} == expected and len(messages) == len(expected)
    assert {m.key for m in messages} == {f"sitrep-{found.id}-1-v1-p{person}" for person in expected}
    assert messages[0].subject == "[演练] 镇海区餐饮保供信息专报 第1期"
    assert "一、响应级别与阶段" in messages[0].body

    again = client.post(f"/api/sitreps/{report.id}/send", json={}, headers=bearer(token))
    assert again.status_code == 200
    assert len(_messages(found)) == len(expected)
    edit = {"base_version": 1, "sections": {"level": "改"}}
    assert (
        client.put(f"/api/sitreps/{report.id}", json=edit, headers=bearer(token)).status_code == 409
    )
    assert sitreps_issued(found) == 1
    listed = client.get(f"/api/incidents/{found.id}/sitreps", headers=bearer(token)).get_json()
    assert [(r["number"], r["status"], r["sent_version"]) for r in listed] == [(1, "sent", 1)]


def test_the_service_refuses_a_liaison_approving_or_sending(found):
    user, _ = make_user("liaison", department="market_supervision")
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    with pytest.raises(Forbidden):
        approve_sitrep(report, version=1, user=user, at=T0)
    approve_sitrep(report, version=1, user=None, at=T0)
    with pytest.raises(Forbidden):
        send_sitrep(report, user=user, at=T0)


def _signed_in(client, role="commander", department="government"):
    user, _ = make_user(role, department=department, password=PASSWORD)
    assert sign_in(client, user.username, PASSWORD).status_code in (302, 303)
    return user


def test_the_docx_holds_title_sections_and_the_meal_table(client, region):
    found, _, _ = _small_incident()
    report = draft_sitrep(found, T0 + timedelta(hours=5))
    hostile = '供应商 "老王" <b>厨房</b> & 名'
    edit_sitrep(report, {"duties": hostile}, base_version=1, user=None, at=T0)
    db.session.commit()
    _signed_in(client)

    answer = client.get(f"/sitreps/{report.id}.docx")

    assert answer.status_code == 200
    assert answer.mimetype.endswith("wordprocessingml.document")
    word = Document(io.BytesIO(answer.data))
    paragraphs = [p.text for p in word.paragraphs]
    assert paragraphs[0] == "[演练] 镇海区餐饮保供信息专报 第1期"
    assert "编发：镇海区市场监督管理局（指挥部办公室）" in paragraphs
    headings = [p.text for p in word.paragraphs if p.style.name.startswith("Heading")]
    assert headings == [sitrep_text.SECTION_TITLES[key]["zh"] for key in sitrep_text.SECTION_KEYS]
    assert hostile in paragraphs
    [table] = word.tables
    assert [c.text for c in table.rows[0].cells][:2] == ["日期", "餐次"]
    assert [c.text for c in table.rows[1].cells][1:3] == ["午餐", str(sum(SHELTERS.values()))]
    assert any(p.startswith("第 2 版") for p in paragraphs) and "未审核" in paragraphs


def test_pages_show_hostile_text_literally(client, found):
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    hostile = "<script>alert('x')</script> & \"引号\""
    edit_sitrep(report, {"level": hostile}, base_version=1, user=None, at=T0)
    db.session.commit()
    _signed_in(client, "viewer")

    for path in (f"/sitreps/{report.id}", f"/sitreps/{report.id}.html"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;引号&#34;" in page, path


def test_pages_speak_chinese_by_default_and_english_on_request(client, found):
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    edit_sitrep(report, {"duties": "人工写的职责情况"}, base_version=1, user=None, at=T0)
    db.session.commit()
    _signed_in(client, "viewer")

    chinese = client.get(f"/sitreps/{report.id}").get_data(as_text=True)
    assert "[演练] 镇海区餐饮保供信息专报 第1期" in chinese
    assert "一、响应级别与阶段" in chinese and "当前响应级别：II级" in chinese

    refresh()  # the test's app context outlives each request, and Babel keeps its choice there
    english = client.get(f"/sitreps/{report.id}?lang=en").get_data(as_text=True)
    assert "[演练] [Drill] Zhenhai District catering supply situation report no. 1" in english
    assert "1. Response level and phase" in english and "Response level II" in english
    assert "人工写的职责情况" in english  # a person's text stays as written
    printable = client.get(f"/sitreps/{report.id}.html?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in printable and "6. Changes since the last report" in printable
    refresh()
    listing = client.get(f"/incidents/{found.id}/sitreps").get_data(as_text=True)
    assert "信息专报" in listing and "草稿" in listing


def test_the_page_edits_from_its_version_and_tells_a_stale_save(client, found):
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    db.session.commit()
    _signed_in(client, "liaison", "market_supervision")
    page = client.get(f"/sitreps/{report.id}").get_data(as_text=True)
    assert 'name="base_version" value="1"' in page
    assert "/approve" not in page  # a liaison has no approve button
    form = {"csrf_token": csrf_token(page), "base_version": "1", "note": "核对"}
    form.update({f"section_{k}": v for k, v in report.versions[0].sections.items()})
    form["section_meals"] = "办公室核实：午餐已足额。"

    saved = client.post(f"/sitreps/{report.id}/edit", data=form)
    assert saved.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(SituationReport, report.id).current_version == 2

    stale = client.post(f"/sitreps/{report.id}/edit", data={**form, "section_meals": "晚到"})
    assert stale.status_code == 409
    assert "晚到" in stale.get_data(as_text=True)  # the typed text is not lost
    assert db.session.get(SituationReport, report.id).current_version == 2


def test_the_commander_drafts_approves_and_sends_on_the_pages(client, found):
    _signed_in(client)
    listing = client.get(f"/incidents/{found.id}/sitreps").get_data(as_text=True)
    drafted = client.post(
        f"/incidents/{found.id}/sitreps", data={"csrf_token": csrf_token(listing)}
    )
    assert drafted.status_code in (302, 303)
    report = db.session.scalar(select(SituationReport).filter_by(incident_id=found.id))
    assert drafted.headers["Location"].endswith(f"/sitreps/{report.id}")
    page = client.get(f"/sitreps/{report.id}").get_data(as_text=True)
    token = csrf_token(page)

    approve = client.post(
        f"/sitreps/{report.id}/approve", data={"csrf_token": token, "version": "1"}
    )
    assert approve.status_code in (302, 303)
    assert client.post(f"/sitreps/{report.id}/send", data={}).status_code == 400  # no CSRF
    client.post(f"/sitreps/{report.id}/send", data={"csrf_token": token})

    db.session.expire_all()
    assert db.session.get(SituationReport, report.id).status == "sent"
    assert _messages(found)
    page = client.get(f"/sitreps/{report.id}").get_data(as_text=True)
    assert "/send" not in page and 'name="base_version"' not in page


def test_the_drill_report_counts_sent_reports_only(found):
    from app.drills.models import DrillRun
    from app.drills.report import build_report

    draft_sitrep(found, T0 + timedelta(hours=1))
    _sent(found, T0 + timedelta(hours=2))
    draft_sitrep(found, T0 + timedelta(hours=3))
    db.session.commit()
    scenario = types.SimpleNamespace(name="test", title="test", data={})

    report = build_report(db.session.get(DrillRun, found.drill_run_id), found, scenario)

    assert report["sitreps"] == sitreps_issued(found) == 1
    total = db.session.scalar(
        select(func.count(SituationReport.id)).filter_by(incident_id=found.id)
    )
    assert total == 3


def test_reports_need_a_signed_in_staff_member(client, found):
    report = draft_sitrep(found, T0 + timedelta(hours=1))
    db.session.commit()
    _, supplier = make_user("supplier", supplier=supplier_by_code_first())
    assert client.get(f"/api/sitreps/{report.id}").status_code == 401
    assert client.get(f"/api/sitreps/{report.id}", headers=bearer(supplier)).status_code == 403
    assert client.get(f"/sitreps/{report.id}.docx").status_code in (302, 303)
    assert client.get("/api/sitreps/999999").status_code == 401


def supplier_by_code_first():
    from app.supply.models import Supplier

    return db.session.scalar(select(Supplier.code).order_by(Supplier.id).limit(1))


def test_an_approval_read_before_a_concurrent_edit_is_refused(found):
    """The approver read version 1; an editor saved version 2 before the approval was
    written (two requests at once on PostgreSQL). The approval must not stick to a
    report whose text moved on."""
    from sqlalchemy.orm.attributes import set_committed_value

    report = draft_sitrep(found, T0 + timedelta(hours=1))
    edit_sitrep(
        report, {"meals": "改过的文字"}, base_version=1, user=None, at=T0 + timedelta(hours=1)
    )
    db.session.commit()
    set_committed_value(report, "current_version", 1)  # what the approver had read

    with pytest.raises(Conflict):
        approve_sitrep(report, version=1, user=None, at=T0 + timedelta(hours=1))
    db.session.rollback()

    stored = db.session.get(SituationReport, report.id)
    assert (stored.status, stored.approved_version, stored.current_version) == ("draft", None, 2)
