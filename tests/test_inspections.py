"""Inspectors posted at suppliers and inspections against the plan's checklist: who may
be posted where, what an inspection must answer, what it counts, who hears of a serious
finding, over the services, the API and the pages."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.accounts.models import User
from app.accounts.services import issue_token, set_password
from app.coordination.models import Notification
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import TimelineEntry
from app.incidents.services import open_incident
from app.organisation.models import Person
from app.process.response import activate
from app.process.services import latest_plan
from app.supply.models import Supplier
from app.techsupport.inspections import (
    checklist_for,
    end_posting,
    post_inspector,
    record_inspection,
)
from app.techsupport.models import Inspection, InspectorPosting
from tests.helpers import T0, bearer, csrf_token, drill_run, incident, make_user, sign_in

HOSTILE = '"检查"<script>alert(1)</script> & <b>粗</b>'


def _get(client, url):
    """A page, in the language its URL asks for: the tests' shared app context would
    otherwise keep the language of the request before."""
    from flask_babel import refresh

    refresh()
    return client.get(url)


def _post(client, url, data):
    from flask_babel import refresh

    refresh()
    return client.post(url, data=data)


SERIOUS = ("staff_health", "purchase_records", "retained_samples", "holding_temperature",
           "cross_contamination")  # fmt: skip
MINOR = ("pest_control", "tableware_disinfection", "delivery_vehicles")
EVERY_KIND = SERIOUS + MINOR
MAJOR_EVENT_ONLY = ("menu_approved", "event_pledge_and_plan")


def _person(code):
    return db.session.scalar(select(Person).filter_by(code=code))


def _supplier(code):
    return db.session.scalar(select(Supplier).filter_by(code=code))


def _answers(codes=EVERY_KIND, **results):
    return {code: {"result": results.get(code, "pass"), "note": ""} for code in codes}


def _token(username):
    """An API token of a region-pack user (they have none to begin with)."""
    user = db.session.scalar(select(User).filter_by(username=username))
    _, token = issue_token(user, "test")
    db.session.commit()
    return token


def _major_event(at=T0, drill=True):
    found = open_incident(kind="major_event", title="马拉松赛事保障", plan=latest_plan(
        "zhenhai-catering-supply"), at=at, drill_run=drill_run(at) if drill else None)  # fmt: skip
    activate(found, "IV", at=at, reason="test activation")
    db.session.commit()
    return found


@pytest.fixture
def found(region):
    return incident(level="II")


@pytest.fixture
def suppliers(region):
    return db.session.scalars(select(Supplier).order_by(Supplier.code).limit(3)).all()


@pytest.fixture
def commander(region):
    return make_user("commander", department="government")[1]


def _told(found=None):
    query = select(Notification).filter_by(kind="inspection_serious_finding")
    if found is not None:
        query = query.filter_by(incident_id=found.id)
    return db.session.scalars(query.order_by(Notification.id)).all()


# The checklist -----------------------------------------------------------------------


def test_the_plan_checklist_asks_the_major_event_items_only_in_a_major_event(region):
    plan = latest_plan("zhenhai-catering-supply")

    usual = [item["code"] for item in checklist_for(plan, "supply_emergency")]
    event = [item["code"] for item in checklist_for(plan, "major_event")]

    assert usual == list(EVERY_KIND)
    assert set(event) == set(EVERY_KIND + MAJOR_EVENT_ONLY)
    serious = {item["code"] for item in checklist_for(plan, "major_event") if item["serious"]}
    assert serious == set(SERIOUS) | {"menu_approved"}
    assert all(item.get("basis") for item in checklist_for(plan, "major_event"))


def test_a_plan_with_repeated_checklist_codes_is_refused(region):
    from app.process.schemas import PlanDocumentSchema

    document = dict(latest_plan("zhenhai-catering-supply").document)
    settings = dict(document["settings"])
    items = settings["inspection_checklist"]
    settings["inspection_checklist"] = [*items, items[0]]
    document["settings"] = settings

    errors = PlanDocumentSchema().validate(document)

    assert "inspection_checklist" in errors["settings"]


# Postings ----------------------------------------------------------------------------


def test_an_inspector_is_posted_and_the_posting_ends(found, suppliers):
    inspector = _person("ms-inspector-1")

    posting = post_inspector(found, suppliers[0], inspector, T0, "test")
    end_posting(posting, T0 + timedelta(hours=8))

    assert posting.ends_at == T0 + timedelta(hours=8)
    with pytest.raises(Conflict):
        end_posting(posting, T0 + timedelta(hours=9))
    events = db.session.scalars(select(TimelineEntry.event).filter_by(incident_id=found.id))
    assert {"inspector_posted", "posting_ended"} <= set(events)


def test_only_an_inspector_is_posted(found, suppliers):
    with pytest.raises(InvalidInput) as refused:
        post_inspector(found, suppliers[0], _person("ms-liaison-1"), T0, "test")

    assert "person" in refused.value.errors
    with pytest.raises(InvalidInput) as unknown:
        post_inspector(found, None, _person("ms-inspector-1"), T0, "test")
    assert "supplier" in unknown.value.errors


def test_an_inspector_is_posted_in_one_place_at_a_time_across_incidents(region, suppliers):
    inspector = _person("ms-inspector-1")
    found = incident(level="II", drill=False)
    first = post_inspector(found, suppliers[0], inspector, T0, "test")
    event = _major_event(drill=False)

    with pytest.raises(Conflict, match="posted at"):
        post_inspector(found, suppliers[1], inspector, T0 + timedelta(hours=1), "test")
    with pytest.raises(Conflict):
        post_inspector(event, suppliers[0], inspector, T0 + timedelta(hours=1), "test")
    end_posting(first, T0 + timedelta(hours=2))
    again = post_inspector(event, suppliers[1], inspector, T0 + timedelta(hours=2), "test")

    assert again.supplier_id == suppliers[1].id
    # Someone else may be posted at the same supplier meanwhile.
    post_inspector(event, suppliers[1], _person("ms-inspector-2"), T0 + timedelta(hours=2), "t")


def test_the_api_posts_lists_and_ends_postings(client, found, suppliers, commander):
    url = f"/api/incidents/{found.id}/postings"
    body = {"supplier": suppliers[0].code, "person": "ms-inspector-1"}

    made = client.post(url, json=body, headers=bearer(commander))
    twice = client.post(url, json={**body, "supplier": suppliers[1].code},
                        headers=bearer(commander))  # fmt: skip
    listed = client.get(url + "?open=true", headers=bearer(commander))

    assert made.status_code == 201, made.json
    assert made.json["person"] == "ms-inspector-1" and made.json["risk_colour"]
    assert twice.status_code == 409 and "posted at" in twice.json["message"]
    assert [p["id"] for p in listed.json] == [made.json["id"]]

    end = f"/api/postings/{made.json['id']}/end"
    ended = client.post(end, json={}, headers=bearer(_token("ms-inspector-1")))
    assert ended.status_code == 200 and ended.json["ends_at"]
    assert client.post(end, json={}, headers=bearer(commander)).status_code == 409
    assert client.get(url + "?open=true", headers=bearer(commander)).json == []


def test_the_api_refuses_bad_postings(client, found, suppliers, commander):
    url = f"/api/incidents/{found.id}/postings"

    def post(body, target=url, token=commander):
        return client.post(target, json=body, headers=bearer(token))

    code = suppliers[0].code
    not_inspector = post({"supplier": code, "person": "ms-liaison-1"})
    no_person = post({"supplier": code, "person": "nobody-1"})
    no_supplier = post({"supplier": "ZH-SUP-999", "person": "ms-inspector-1"})
    stray = post({"supplier": code, "person": "ms-inspector-1", "until": "tomorrow"})
    too_long = post({"supplier": "S" * 41, "person": "ms-inspector-1"})
    wrong_type = post({"supplier": 12, "person": "ms-inspector-1"})
    no_incident = post(
        {"supplier": code, "person": "ms-inspector-1"}, "/api/incidents/99999/postings"
    )
    viewer = post({"supplier": code, "person": "ms-inspector-1"}, token=make_user("viewer")[1])
    inspector = post({"supplier": code, "person": "ms-inspector-1"},
                     token=_token("ms-inspector-1"))  # fmt: skip

    assert not_inspector.status_code == 422 and "person" in not_inspector.json["errors"]
    assert no_person.status_code == 422 and "person" in no_person.json["errors"]
    assert no_supplier.status_code == 422 and "supplier" in no_supplier.json["errors"]
    assert stray.status_code == 422 and "until" in stray.json["errors"]["json"]
    assert too_long.status_code == 422 and "supplier" in too_long.json["errors"]["json"]
    assert wrong_type.status_code == 422 and "supplier" in wrong_type.json["errors"]["json"]
    assert no_incident.status_code == 404
    assert viewer.status_code == 403 and inspector.status_code == 403
    missing = client.post("/api/postings/99999/end", json={}, headers=bearer(commander))
    assert missing.status_code == 404
    assert db.session.scalar(select(func.count(InspectorPosting.id))) == 0


def test_another_inspector_cannot_end_a_posting(client, found, suppliers, commander):
    posting = post_inspector(found, suppliers[0], _person("ms-inspector-1"), T0, "test")
    db.session.commit()

    refused = client.post(f"/api/postings/{posting.id}/end", json={},
                          headers=bearer(_token("ms-inspector-2")))  # fmt: skip

    assert refused.status_code == 403


# Inspections -------------------------------------------------------------------------


def test_every_item_must_be_answered_and_nothing_else(found, suppliers):
    answers = _answers(EVERY_KIND[1:])
    answers["menu_approved"] = {"result": "pass"}  # a major-event item, not asked here
    answers["smell"] = {"result": "pass"}

    with pytest.raises(InvalidInput) as refused:
        record_inspection(suppliers[0], incident=found, inspector="张三", answers=answers, at=T0)

    messages = refused.value.errors["answers"]
    assert messages == ["missing: staff_health", "unknown: menu_approved, smell"]
    assert db.session.scalar(select(func.count(Inspection.id))) == 0


def test_findings_are_counted_and_a_serious_failure_fails_the_inspection(found, suppliers):
    failed = record_inspection(
        suppliers[0], incident=found, inspector="张三", at=T0,
        answers=_answers(staff_health="fail", holding_temperature="fail", pest_control="fail",
                         delivery_vehicles="na"),
    )  # fmt: skip
    minor_only = record_inspection(
        suppliers[1], incident=found, inspector="张三", at=T0,
        answers=_answers(pest_control="fail", tableware_disinfection="fail"),
    )  # fmt: skip

    assert (failed.serious_findings, failed.minor_findings, failed.passed) == (2, 1, False)
    assert (minor_only.serious_findings, minor_only.minor_findings) == (0, 2)
    assert minor_only.passed is True
    row = next(r for r in failed.checklist if r["code"] == "staff_health")
    assert row["serious"] is True and row["result"] == "fail" and row["text"]


def test_a_serious_routine_failure_tells_the_commander_and_market_supervision_once(
    found, suppliers
):
    inspection = record_inspection(suppliers[0], incident=found, inspector="张三", at=T0,
                                   answers=_answers(retained_samples="fail"))  # fmt: skip
    record_inspection(suppliers[0], incident=found, inspector="张三", at=T0,
                      answers=_answers(pest_control="fail"))  # fmt: skip
    record_inspection(suppliers[0], incident=found, inspector="张三", at=T0, purpose="reinspection",
                      answers=_answers(retained_samples="fail"))  # fmt: skip

    told = _told(found)
    assert len(told) == 2
    people = {db.session.get(Person, n.person_id).department.code for n in told}
    assert people == {"government", "market_supervision"}
    assert {n.key for n in told} == {
        f"inspection-serious-{inspection.id}-{n.person_id}" for n in told
    }


def test_a_posted_inspector_records_their_supplier_linked_to_the_posting(found, suppliers):
    inspector = _person("ms-inspector-1")
    posting = post_inspector(found, suppliers[0], inspector, T0, "test")
    later = T0 + timedelta(hours=1)

    inspection = record_inspection(suppliers[0], incident=found, inspector=inspector,
                                   answers=_answers(), at=later)  # fmt: skip
    with pytest.raises(Forbidden):
        record_inspection(suppliers[1], incident=found, inspector=inspector,
                          answers=_answers(), at=later)  # fmt: skip
    end_posting(posting, later)
    rounds = record_inspection(suppliers[1], incident=found, inspector=inspector,
                               answers=_answers(), at=later)  # fmt: skip

    assert inspection.posting_id == posting.id and inspection.person_id == inspector.id
    assert rounds.posting_id is None


def test_a_drill_posting_holds_the_inspector_in_that_drill_only(found, suppliers):
    """A drill's postings never stop a person's real work, nor another drill's."""
    inspector = _person("ms-inspector-1")
    post_inspector(found, suppliers[0], inspector, T0, "drill")
    real = incident(level="II", drill=False)
    other_drill = incident(level="II")

    post_inspector(real, suppliers[1], inspector, T0 + timedelta(hours=1), "test")
    post_inspector(other_drill, suppliers[2], inspector, T0 + timedelta(hours=1), "test")
    inspection = record_inspection(suppliers[1], incident=None, inspector=inspector,
                                   answers=_answers(), at=T0 + timedelta(hours=2))  # fmt: skip
    with pytest.raises(Conflict):
        post_inspector(found, suppliers[1], inspector, T0 + timedelta(hours=1), "drill")

    assert inspection.incident_id == real.id


def test_ending_the_response_ends_its_postings(found, suppliers):
    from app.process.response import end_response

    posting = post_inspector(found, suppliers[0], _person("ms-inspector-1"), T0, "test")

    end_response(found, at=T0 + timedelta(hours=3), reason="over")

    assert posting.ends_at == T0 + timedelta(hours=3)


def test_a_posted_inspector_cannot_date_an_inspection_elsewhere_back(region, suppliers):
    """Dating an inspection before the posting does not free the inspector from it."""
    from app.types import utcnow

    now = utcnow()
    real = incident(level="II", drill=False, at=now - timedelta(hours=3))
    inspector = _person("ms-inspector-1")
    post_inspector(real, suppliers[0], inspector, now - timedelta(hours=1), "test")

    with pytest.raises(Forbidden):
        record_inspection(suppliers[1], incident=real, inspector=inspector,
                          answers=_answers(), at=now - timedelta(hours=2))  # fmt: skip
    with pytest.raises(InvalidInput):
        record_inspection(suppliers[0], incident=real, inspector=inspector,
                          answers=_answers(), at=now - timedelta(hours=2))  # fmt: skip


def test_a_posting_of_another_supplier_is_not_linked(found, suppliers):
    inspector = _person("ms-inspector-1")
    posting = post_inspector(found, suppliers[0], inspector, T0, "test")

    with pytest.raises(InvalidInput) as refused:
        record_inspection(suppliers[1], incident=found, inspector="张三", posting=posting,
                          answers=_answers(), at=T0)  # fmt: skip

    assert "posting" in refused.value.errors


def test_a_major_event_inspection_answers_the_menu_too(region, suppliers):
    event = _major_event()

    with pytest.raises(InvalidInput):
        record_inspection(suppliers[0], incident=event, inspector="张三", answers=_answers(), at=T0)
    done = record_inspection(
        suppliers[0], incident=event, inspector="张三", at=T0,
        answers=_answers(EVERY_KIND + MAJOR_EVENT_ONLY, menu_approved="fail"),
    )  # fmt: skip

    assert done.serious_findings == 1 and not done.passed


def _inspect(client, supplier, token, **change):
    body = {"incident": None, "answers": _answers(), "summary": ""}
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}
    return client.post(f"/api/suppliers/{supplier.id}/inspections", json=body,
                       headers=bearer(token))  # fmt: skip


def test_the_api_records_an_inspection_of_a_posted_inspector(client, found, suppliers):
    post_inspector(found, suppliers[0], _person("ms-inspector-1"), T0, "test")
    db.session.commit()
    token = _token("ms-inspector-1")

    made = _inspect(client, suppliers[0], token, incident=found.id,
                    answers=_answers(cross_contamination="fail"), summary=HOSTILE)  # fmt: skip
    elsewhere = _inspect(client, suppliers[1], token, incident=found.id)
    listed = client.get(f"/api/suppliers/{suppliers[0].id}/inspections?passed=false",
                        headers=bearer(token))  # fmt: skip

    assert made.status_code == 201, made.json
    assert made.json["posting_id"] and made.json["person"] == "ms-inspector-1"
    assert made.json["serious_findings"] == 1 and made.json["passed"] is False
    assert made.json["summary"] == HOSTILE and made.json["inspected_at"] == "2026-09-14T00:00:00Z"
    assert elsewhere.status_code == 403
    on_site = _inspect(client, suppliers[0], token)
    assert on_site.status_code == 201 and on_site.json["incident_id"] == found.id
    assert on_site.json["posting_id"] == made.json["posting_id"]
    assert [i["id"] for i in listed.json] == [made.json["id"]]
    of_incident = client.get(f"/api/incidents/{found.id}/inspections", headers=bearer(token))
    assert {i["id"] for i in of_incident.json} == {made.json["id"], on_site.json["id"]}
    assert len(_told(found)) == 2


def test_only_inspectors_and_the_commander_record_inspections(client, found, suppliers, commander):
    _, viewer = make_user("viewer")
    _, liaison = make_user("liaison", department="market_supervision")
    _, supplier_user = make_user("supplier", supplier=suppliers[0].code)
    inspector = _token("ms-inspector-2")

    assert _inspect(client, suppliers[0], viewer).status_code == 403
    assert _inspect(client, suppliers[0], liaison).status_code == 403
    assert _inspect(client, suppliers[0], supplier_user).status_code == 403
    assert _inspect(client, suppliers[0], inspector, person="ms-inspector-1").status_code == 403
    assert _inspect(client, suppliers[0], inspector, inspector="别人").status_code == 403
    assert db.session.scalar(select(func.count(Inspection.id))) == 0

    by_commander = _inspect(client, suppliers[0], commander, person="ms-inspector-1")
    named = _inspect(client, suppliers[0], commander, inspector="区局检查组")
    not_inspector = _inspect(client, suppliers[0], commander, person="ms-liaison-1")
    own = _inspect(client, suppliers[0], inspector)
    assert by_commander.status_code == 201 and by_commander.json["person"] == "ms-inspector-1"
    assert named.status_code == 201 and named.json["inspector"] == "区局检查组"
    assert not_inspector.status_code == 422 and "person" in not_inspector.json["errors"]
    assert own.status_code == 201 and own.json["inspector"] == "李雪"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"colour": "red"}, "colour"),
        ({"answers": {**_answers(), "pest_control": {"result": "maybe"}}}, "answers"),
        ({"answers": {**_answers(), "pest_control": {"result": "pass", "x": 1}}}, "answers"),
        ({"answers": {**_answers(), "pest_control": {"result": "pass", "note": "长" * 1001}}},
         "answers"),
        ({"answers": []}, "answers"),
        ({"answers": {}}, "answers"),
        ({"purpose": "curiosity"}, "purpose"),
        ({"summary": "长" * 4001}, "summary"),
        ({"summary": 12}, "summary"),
        ({"incident": "1"}, "incident"),
        ({"incident": 0}, "incident"),
        ({"inspected_at": "2026-09-14T08:00:00"}, "inspected_at"),
        ({"inspected_at": "yesterday"}, "inspected_at"),
        ({"inspected_at": "2026-09-14T09:00:00+08:00"}, "inspected_at"),  # later than now
    ],
)  # fmt: skip
def test_bad_inspections_are_refused_naming_the_field(
    client, found, suppliers, commander, change, field
):
    refused = _inspect(client, suppliers[0], commander, **{"incident": found.id, **change})

    assert refused.status_code == 422, refused.json
    errors = refused.json["errors"]
    assert field in errors.get("json", errors), errors
    assert db.session.scalar(select(func.count(Inspection.id))) == 0


def test_missing_and_unknown_items_are_named_over_the_api(client, found, suppliers, commander):
    answers = _answers(EVERY_KIND[:-1])
    answers["smell"] = {"result": "pass"}

    refused = _inspect(client, suppliers[0], commander, incident=found.id, answers=answers)

    assert refused.status_code == 422
    assert refused.json["errors"]["answers"] == ["missing: delivery_vehicles", "unknown: smell"]


def test_unknown_ids_are_refused(client, found, suppliers, commander):
    no_supplier = client.post("/api/suppliers/99999/inspections", json={"answers": _answers()},
                              headers=bearer(commander))  # fmt: skip
    no_incident = _inspect(client, suppliers[0], commander, incident=99999)

    assert no_supplier.status_code == 404
    assert no_incident.status_code == 422 and "incident" in no_incident.json["errors"]
    assert client.get("/api/incidents/99999/inspections",
                      headers=bearer(commander)).status_code == 404  # fmt: skip
    assert client.get("/api/inspections/99999", headers=bearer(commander)).status_code == 404


def test_an_inspection_written_up_later_keeps_its_instant(client, found, suppliers, commander):
    from tests.helpers import set_clock

    set_clock(found, T0 + timedelta(hours=2))
    made = _inspect(client, suppliers[0], commander, incident=found.id,
                    inspected_at="2026-09-14T08:30:00+08:00")  # fmt: skip
    early = _inspect(client, suppliers[0], commander, incident=found.id,
                     inspected_at="2026-09-14T07:30:00+08:00")  # fmt: skip

    assert made.status_code == 201 and made.json["inspected_at"] == "2026-09-14T00:30:00Z"
    # Before the incident opened: not an inspection of it.
    assert early.status_code == 422 and "inspected_at" in str(early.json["errors"])


def test_an_inspection_outside_incidents_uses_the_plan_and_tells_on_serious(
    client, region, suppliers, commander
):
    made = _inspect(client, suppliers[0], commander, answers=_answers(purchase_records="fail"))

    assert made.status_code == 201 and made.json["incident_id"] is None
    assert len(_told()) == 2


# Pages -------------------------------------------------------------------------------


def _sign_in_inspector(client, code="ms-inspector-1"):
    user = db.session.scalar(select(User).filter_by(username=code))
    set_password(user, "pw-inspector-1234")
    db.session.commit()
    sign_in(client, code, "pw-inspector-1234")


def test_the_inspection_form_renders_the_checklist_and_records(client, found, suppliers):
    post_inspector(found, suppliers[0], _person("ms-inspector-1"), T0, "test")
    db.session.commit()
    _sign_in_inspector(client)
    url = f"/suppliers/{suppliers[0].id}/inspections/new?incident={found.id}"

    chinese = _get(client, url)
    english = _get(client, url + "&lang=en").get_data(as_text=True)
    assert chinese.status_code == 200 and "从业人员持有效健康证明" in chinese.get_data(as_text=True)
    assert "Staff hold valid health certificates" in english and "risk-" in english
    assert "The major event" not in english

    form = {"csrf_token": csrf_token(english), "incident": str(found.id),
            "purpose": "routine", "summary": HOSTILE}  # fmt: skip
    form.update({f"result_{i}": "pass" for i in range(len(EVERY_KIND))})
    form["result_0"] = "fail"
    form["note_0"] = "两名员工健康证过期"
    made = _post(client, url + "&lang=en", form)
    assert made.status_code in (302, 303), made.get_data(as_text=True)

    inspection = db.session.scalar(select(Inspection))
    assert inspection.posting_id is not None and inspection.serious_findings == 1
    record = _get(client, f"/inspections/{inspection.id}?lang=en").get_data(as_text=True)
    assert "两名员工健康证过期" in record and "did not pass" in record
    for page in (record, _get(client, f"/suppliers/{suppliers[0].id}/inspections").get_data(
            as_text=True)):  # fmt: skip
        assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in record


def test_the_inspection_form_refuses_an_unanswered_item_and_an_expired_form(
    client, found, suppliers
):
    _sign_in_inspector(client)
    url = f"/suppliers/{suppliers[0].id}/inspections/new?lang=en"
    page = _get(client, url).get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "purpose": "routine"}
    form.update({f"result_{i}": "pass" for i in range(1, len(EVERY_KIND))})

    unanswered = _post(client, url, form)
    expired = client.post(url, data={**form, "csrf_token": "", "result_0": "pass"})

    assert unanswered.status_code == 422
    assert "answer this item" in unanswered.get_data(as_text=True)
    assert expired.status_code == 400
    assert db.session.scalar(select(func.count(Inspection.id))) == 0


def test_a_viewer_reads_the_supplier_page_but_gets_no_form(client, found, suppliers):
    record_inspection(suppliers[0], incident=found, inspector=HOSTILE, answers=_answers(), at=T0)
    db.session.commit()
    user, _ = make_user("viewer", password="pw-viewer-1234")
    sign_in(client, user.username, "pw-viewer-1234")

    page = _get(client, f"/suppliers/{suppliers[0].id}/inspections?lang=en")
    form = _get(client, f"/suppliers/{suppliers[0].id}/inspections/new")

    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Record an inspection" not in text
    assert f"risk-{suppliers[0].risk_colour}" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text
    assert form.status_code == 403
    assert _get(client, "/suppliers/99999/inspections").status_code == 404


def test_the_commander_posts_an_inspector_on_the_page(client, found, suppliers):
    user, _ = make_user("commander", department="government", password="pw-commander-1234")
    sign_in(client, user.username, "pw-commander-1234")
    url = f"/incidents/{found.id}/postings"
    page = _get(client, url + "?lang=en").get_data(as_text=True)
    assert "Post an inspector" in page and _get(client, url).status_code == 200

    data = {"csrf_token": csrf_token(page), "supplier": suppliers[0].code,
            "person": "ms-inspector-1"}  # fmt: skip
    made = client.post(url, data=data)
    twice = _post(client, url + "?lang=en", {**data, "supplier": suppliers[1].code})

    assert made.status_code in (302, 303)
    assert twice.status_code == 409 and "posted at" in twice.get_data(as_text=True)
    shown = _get(client, url + "?lang=en").get_data(as_text=True)
    assert suppliers[0].name in shown and "End the posting" in shown

    posting = db.session.scalar(select(InspectorPosting))
    ended = client.post(f"/postings/{posting.id}/end", data={"csrf_token": csrf_token(shown)})
    assert ended.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(InspectorPosting, posting.id).ends_at is not None


def test_two_postings_of_one_inspector_at_once_give_one_201_and_one_409(
    app, found, suppliers, commander
):
    """Each request in its own thread, session and connection: never both, never a 500."""
    import threading

    url = f"/api/incidents/{found.id}/postings"
    barrier = threading.Barrier(2)
    codes = []

    def post(supplier_code):
        own = app.test_client()
        barrier.wait(timeout=30)
        body = {"supplier": supplier_code, "person": "ms-inspector-1"}
        codes.append(own.post(url, json=body, headers=bearer(commander)).status_code)

    codes_of = [s.code for s in suppliers[:2]]
    # The test's own transaction ends first: on SQLite it would hold the write lock.
    db.session.commit()
    threads = [threading.Thread(target=post, args=(code,)) for code in codes_of]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(codes) == [201, 409]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(InspectorPosting.id))) == 1
