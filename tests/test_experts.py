"""The expert pool and the labs: loaded with the region pack, kept by the commander and
the office, and experts called to incidents and released, over the API and the pages."""

import shutil

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.fixtures import DEFAULT_REGION, load_all
from app.incidents.models import TimelineEntry
from app.supply.models import Supplier
from app.techsupport.experts import assign_expert, experts_for, release_expert
from app.techsupport.models import Expert, ExpertAssignment, Lab
from app.techsupport.registry import EXPERTISE
from tests.helpers import T0, bearer, csrf_token, incident, make_user, sign_in

HOSTILE = '"专家"<script>alert(1)</script> & <b>粗</b>'


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


def _expert(code):
    return db.session.scalar(select(Expert).filter_by(code=code))


def _codes(rows):
    return [row["code"] if isinstance(row, dict) else row.code for row in rows]


@pytest.fixture
def found(region):
    return incident(level="II")


@pytest.fixture
def commander(region):
    return make_user("commander", department="government")[1]


# The region pack ---------------------------------------------------------------------


def test_the_pool_loads_with_the_region_pack_and_again_without_change(app):
    first = load_all()
    second = load_all()

    assert first["experts"]["created"] == 12 and first["labs"]["created"] == 4
    assert second["experts"] == {"created": 0, "updated": 0, "unchanged": 12}
    assert second["labs"] == {"created": 0, "updated": 0, "unchanged": 4}
    pool = db.session.scalars(select(Expert)).all()
    assert all(e.fictitious for e in pool)
    assert set(EXPERTISE) == {code for e in pool for code in e.expertise}
    assert all(lab.fictitious for lab in db.session.scalars(select(Lab)))


def test_loading_again_keeps_the_availability_the_office_set(app):
    load_all()
    _expert("ZH-EXP-03").available = False
    _expert("ZH-EXP-03").on_call = False
    db.session.commit()

    again = load_all()

    assert again["experts"]["unchanged"] == 12
    assert _expert("ZH-EXP-03").available is False


def _copy_region(tmp_path):
    target = tmp_path / "region"
    shutil.copytree(DEFAULT_REGION, target)
    return target


@pytest.mark.parametrize(
    "name, old, new, where, said",
    [
        ("experts.yaml", "expertise: [epidemiology]\n", "expertise: [cooking]\n",
         "ZH-EXP-05", "expertise unknown cooking"),
        ("experts.yaml", "    on_call: true\n    fictitious: true\n  - code: ZH-EXP-04",
         "    on_call: yes please\n    fictitious: true\n  - code: ZH-EXP-04",
         "ZH-EXP-03", "on_call must be true or false"),
        ("experts.yaml", "code: ZH-EXP-12", "code: ZH-EXP-11", "ZH-EXP-11", "code ZH-EXP-11"),
        ("experts.yaml", "name: 程颖", "name: 程颖\n    title: 主任", "ZH-EXP-09",
         "unknown keys: title"),
        ("labs.yaml", "capacity_per_day: 40", "capacity_per_day: -40", "ZH-LAB-02",
         "capacity_per_day must be from 0"),
        ("labs.yaml", "turnaround_hours: 72", "turnaround_hours: .nan", "ZH-LAB-03",
         "turnaround_hours must be a number"),
        ("labs.yaml", "turnaround_hours: 48", "turnaround_hours: fast", "ZH-LAB-04",
         "turnaround_hours must be a number"),
    ],
)  # fmt: skip
def test_a_bad_pool_file_is_refused_naming_the_entry_and_field_and_nothing_loads(
    app, tmp_path, name, old, new, where, said
):
    region = _copy_region(tmp_path)
    path = region / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")

    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region))

    messages = [(key, m) for key, ms in refused.value.errors.items() for m in ms]
    assert any(key.startswith(f"{name} line ") and said in m for key, m in messages), messages
    assert any(where in m for _, m in messages), messages
    for model in (Expert, Lab, Supplier):
        assert db.session.scalar(select(func.count(model.id))) == 0


def test_a_pool_file_that_is_not_a_list_is_refused(app, tmp_path):
    region = _copy_region(tmp_path)
    (region / "labs.yaml").write_text("labs: many\n", encoding="utf-8")

    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region))

    assert "labs.yaml" in refused.value.errors


# Finding and assigning experts ---------------------------------------------------------


def test_the_finder_lists_available_experts_with_the_on_call_first(region):
    assert _codes(experts_for("toxicology", T0)) == ["ZH-EXP-03", "ZH-EXP-04", "ZH-EXP-08"]
    # ZH-EXP-10 (nutrition) is marked unavailable in the pack.
    assert _codes(experts_for("nutrition", T0)) == ["ZH-EXP-09"]


def test_a_busy_expert_comes_after_a_free_one_of_the_same_standing(found):
    assign_expert(found, _expert("ZH-EXP-03"), "毒物鉴定", "test", T0)

    assert _codes(experts_for("testing", T0)) == ["ZH-EXP-12", "ZH-EXP-03", "ZH-EXP-02",
                                                  "ZH-EXP-11"]  # fmt: skip


def test_an_unknown_expertise_is_refused():
    with pytest.raises(InvalidInput) as refused:
        experts_for("astrology", T0)
    assert "expertise" in refused.value.errors


def test_an_expert_is_assigned_once_at_a_time_and_again_after_release(found):
    expert = _expert("ZH-EXP-05")
    first = assign_expert(found, expert, "流行病学调查指导", "test", T0)

    with pytest.raises(Conflict):
        assign_expert(found, expert, "again", "test", T0)
    release_expert(first, T0)
    with pytest.raises(Conflict):
        release_expert(first, T0)
    again = assign_expert(found, expert, "复核", "test", T0)

    assert again.id != first.id
    events = db.session.scalars(
        select(TimelineEntry.event).filter_by(incident_id=found.id).order_by(TimelineEntry.id)
    ).all()
    assert [e for e in events if e.startswith("expert_")] == [
        "expert_assigned", "expert_released", "expert_assigned"
    ]  # fmt: skip


def test_an_expert_may_serve_two_incidents_at_once(found):
    other = incident(level="IV")
    expert = _expert("ZH-EXP-05")

    assign_expert(found, expert, "流调", "test", T0)
    assign_expert(other, expert, "流调", "test", T0)

    assert db.session.scalar(select(func.count(ExpertAssignment.id))) == 2


def test_an_unavailable_expert_is_refused(found):
    with pytest.raises(Conflict, match="not available"):
        assign_expert(found, _expert("ZH-EXP-10"), "营养评估", "test", T0)


def test_the_api_assigns_lists_and_releases(client, found, commander):
    url = f"/api/incidents/{found.id}/experts"
    made = client.post(url, json={"expert": "ZH-EXP-07", "role": "医疗救治会诊"},
                       headers=bearer(commander))  # fmt: skip
    twice = client.post(url, json={"expert": "ZH-EXP-07", "role": "x"}, headers=bearer(commander))
    unavailable = client.post(url, json={"expert": "ZH-EXP-10", "role": "x"},
                              headers=bearer(commander))  # fmt: skip
    listed = client.get(url, headers=bearer(commander))

    assert made.status_code == 201, made.json
    assert made.json["expert"] == "ZH-EXP-07" and made.json["assigned_at"] == "2026-09-14T00:00:00Z"
    assert twice.status_code == 409 and unavailable.status_code == 409
    assert [row["id"] for row in listed.json] == [made.json["id"]]

    release = f"/api/expert-assignments/{made.json['id']}/release"
    released = client.post(release, json={}, headers=bearer(commander))
    again = client.post(release, json={}, headers=bearer(commander))
    assert released.status_code == 200 and released.json["released_at"]
    assert again.status_code == 409


def test_the_api_refuses_bad_assignments(client, found, commander):
    url = f"/api/incidents/{found.id}/experts"

    def post(body, target=url):
        return client.post(target, json=body, headers=bearer(commander))

    unknown = post({"expert": "ZH-EXP-99", "role": "x"})
    stray = post({"expert": "ZH-EXP-05", "role": "x", "urgent": True})
    long_role = post({"expert": "ZH-EXP-05", "role": "长" * 201})
    blank = post({"expert": "ZH-EXP-05", "role": "  "})
    wrong_type = post({"expert": 5, "role": "x"})
    no_incident = post({"expert": "ZH-EXP-05", "role": "x"}, "/api/incidents/99999/experts")
    no_assignment = post({}, "/api/expert-assignments/99999/release")
    stray_release = post({"at": "now"}, "/api/expert-assignments/1/release")

    assert unknown.status_code == 422 and "expert" in unknown.json["errors"]
    assert stray.status_code == 422 and "urgent" in stray.json["errors"]["json"]
    assert long_role.status_code == 422 and "role" in long_role.json["errors"]["json"]
    assert blank.status_code == 422 and "role" in blank.json["errors"]["json"]
    assert wrong_type.status_code == 422 and "expert" in wrong_type.json["errors"]["json"]
    assert no_incident.status_code == 404 and no_assignment.status_code == 404
    assert stray_release.status_code == 422
    assert db.session.scalar(select(func.count(ExpertAssignment.id))) == 0


def test_only_the_commander_and_the_office_assign_experts(client, found):
    url = f"/api/incidents/{found.id}/experts"
    body = {"expert": "ZH-EXP-05", "role": "流调"}
    _, viewer = make_user("viewer")
    _, transport = make_user("liaison", department="transport")
    _, office = make_user("liaison", department="market_supervision")

    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers=bearer(viewer)).status_code == 403
    assert client.post(url, json=body, headers=bearer(transport)).status_code == 403
    assert client.post(url, json=body, headers=bearer(office)).status_code == 201
    assert client.get(url, headers=bearer(viewer)).status_code == 200


# The registry over the API -------------------------------------------------------------


def test_the_pool_is_listed_and_filtered(client, region):
    _, viewer = make_user("viewer")

    toxicology = client.get("/api/experts?expertise=toxicology", headers=bearer(viewer))
    unavailable = client.get("/api/experts?available=false", headers=bearer(viewer))
    bad = client.get("/api/experts?expertise=astrology", headers=bearer(viewer))
    stray = client.get("/api/experts?colour=red", headers=bearer(viewer))

    assert _codes(toxicology.json) == ["ZH-EXP-03", "ZH-EXP-04", "ZH-EXP-08"]
    assert _codes(unavailable.json) == ["ZH-EXP-10"]
    assert bad.status_code == 422 and stray.status_code == 422
    assert client.get("/api/experts").status_code == 401


def test_marking_an_expert_unavailable_takes_them_off_call(client, region, commander):
    expert = _expert("ZH-EXP-03")
    url = f"/api/experts/{expert.id}"

    off = client.patch(url, json={"available": False}, headers=bearer(commander))
    on_call = client.patch(url, json={"on_call": True}, headers=bearer(commander))

    assert off.status_code == 200 and off.json["on_call"] is False
    assert on_call.status_code == 422 and "on_call" in on_call.json["errors"]
    assert _codes(experts_for("toxicology", T0)) == ["ZH-EXP-04", "ZH-EXP-08"]


def test_changing_an_expert_refuses_bad_input_and_other_roles(client, region, commander):
    url = f"/api/experts/{_expert('ZH-EXP-03').id}"
    _, transport = make_user("liaison", department="transport")
    _, inspector = make_user("inspector", department="market_supervision")

    def patch(body, token=commander, target=url):
        return client.patch(target, json=body, headers=bearer(token))

    assert patch({}).status_code == 422
    assert "name" in patch({"name": "x"}).json["errors"]["json"]
    assert "available" in patch({"available": "yes"}).json["errors"]["json"]
    assert "available" in patch({"available": 1}).json["errors"]["json"]
    assert patch({"available": False}, target="/api/experts/99999").status_code == 404
    assert patch({"available": False}, transport).status_code == 403
    assert patch({"available": False}, inspector).status_code == 403
    assert _expert("ZH-EXP-03").available is True


def test_adding_an_expert_and_a_lab(client, region, commander):
    expert = {"code": "ZH-EXP-50", "name": HOSTILE, "expertise": ["toxicology", "nutrition"],
              "on_call": True}  # fmt: skip
    lab = {"code": "ZH-LAB-50", "name": "移动快检车", "analytes": ["亚硝酸盐"],
           "capacity_per_day": 80, "turnaround_hours": 0.5}  # fmt: skip

    made = client.post("/api/experts", json=expert, headers=bearer(commander))
    taken = client.post("/api/experts", json=expert, headers=bearer(commander))
    made_lab = client.post("/api/labs", json=lab, headers=bearer(commander))
    found_lab = client.get("/api/labs?analyte=亚硝酸盐", headers=bearer(commander))

    assert made.status_code == 201 and made.json["name"] == HOSTILE
    assert taken.status_code == 409
    assert made_lab.status_code == 201 and made_lab.json["turnaround_hours"] == 0.5
    # The rapid-test station and the new van answer fastest.
    assert _codes(found_lab.json)[:2] == ["ZH-LAB-50", "ZH-LAB-01"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"expertise": ["astrology"]}, "expertise"),
        ({"expertise": []}, "expertise"),
        ({"name": "名" * 101}, "name"),
        ({"code": "ZH EXP"}, "code"),
        ({"phone": 5741234}, "phone"),
        ({"rank": "professor"}, "rank"),
    ],
)
def test_a_bad_expert_is_refused_naming_the_field(client, region, commander, change, field):
    body = {"code": "ZH-EXP-51", "name": "测试", "expertise": ["toxicology"], **change}

    refused = client.post("/api/experts", json=body, headers=bearer(commander))

    assert refused.status_code == 422 and field in refused.json["errors"]["json"]
    assert _expert("ZH-EXP-51") is None


@pytest.mark.parametrize(
    "raw, field",
    [
        ('"capacity_per_day": -1, "turnaround_hours": 24', "capacity_per_day"),
        ('"capacity_per_day": 1.5, "turnaround_hours": 24', "capacity_per_day"),
        ('"capacity_per_day": 1000001, "turnaround_hours": 24', "capacity_per_day"),
        ('"capacity_per_day": 10, "turnaround_hours": NaN', "turnaround_hours"),
        ('"capacity_per_day": 10, "turnaround_hours": Infinity', "turnaround_hours"),
        ('"capacity_per_day": 10, "turnaround_hours": 0', "turnaround_hours"),
        ('"capacity_per_day": 10, "turnaround_hours": "24"', "turnaround_hours"),
        ('"capacity_per_day": true, "turnaround_hours": 24', "capacity_per_day"),
    ],
)
def test_a_bad_lab_is_refused_naming_the_field(client, region, commander, raw, field):
    body = '{"code": "ZH-LAB-51", "name": "测试", "analytes": ["甲醛"], %s}' % raw  # noqa: UP031

    refused = client.post(
        "/api/labs",
        data=body,
        headers={**bearer(commander), "Content-Type": "application/json"},
    )

    assert refused.status_code == 422 and field in refused.json["errors"]["json"], refused.json
    assert db.session.scalar(select(Lab).filter_by(code="ZH-LAB-51")) is None


def test_a_lab_is_changed_by_the_office_only(client, region):
    lab = db.session.scalar(select(Lab).filter_by(code="ZH-LAB-02"))
    _, office = make_user("liaison", department="market_supervision")
    _, health = make_user("liaison", department="health")
    url = f"/api/labs/{lab.id}"

    changed = client.patch(url, json={"available": False, "capacity_per_day": 10},
                           headers=bearer(office))  # fmt: skip
    refused = client.patch(url, json={"available": True}, headers=bearer(health))
    bad = client.patch(url, json={"turnaround_hours": -3}, headers=bearer(office))

    assert changed.status_code == 200 and changed.json["capacity_per_day"] == 10
    assert refused.status_code == 403
    assert bad.status_code == 422 and "turnaround_hours" in bad.json["errors"]["json"]
    assert client.patch("/api/labs/99999", json={"available": True},
                        headers=bearer(office)).status_code == 404  # fmt: skip


# Pages ---------------------------------------------------------------------------------


def test_the_pool_page_filters_in_chinese_and_english(client, region):
    user, _ = make_user("viewer", password="pw-viewer-1234")
    sign_in(client, user.username, "pw-viewer-1234")

    chinese = _get(client, "/experts")
    english = _get(client, "/experts?expertise=toxicology&lang=en")
    bad = _get(client, "/experts?expertise=astrology")

    assert chinese.status_code == 200 and 'lang="zh-CN"' in chinese.get_data(as_text=True)
    assert "黄志远" in chinese.get_data(as_text=True)
    text = english.get_data(as_text=True)
    assert "Expert pool" in text and "toxicology" in text and "黄志远" in text
    assert "陆建明" not in text  # an epidemiologist
    assert "宁波市食品检验检测研究院" in text  # the labs
    assert bad.status_code == 400


def test_the_commander_assigns_on_the_page_and_the_role_shows_literally(client, found):
    user, _ = make_user("commander", department="government", password="pw-commander-1234")
    sign_in(client, user.username, "pw-commander-1234")
    url = f"/incidents/{found.id}/experts"
    page = _get(client, url + "?lang=en").get_data(as_text=True)
    assert "Call an expert" in page

    made = client.post(url, data={"csrf_token": csrf_token(page), "expert": "ZH-EXP-05",
                                  "role": HOSTILE})  # fmt: skip
    twice = _post(client, url + "?lang=en", {"csrf_token": csrf_token(page),
                                             "expert": "ZH-EXP-05", "role": "x"})  # fmt: skip
    expired = client.post(url, data={"expert": "ZH-EXP-05", "role": "x"})

    assert made.status_code in (302, 303)
    assert twice.status_code == 409 and "already assigned" in twice.get_data(as_text=True)
    assert expired.status_code == 400
    for shown in (_get(client, url), _get(client, url + "?lang=en")):
        text = shown.get_data(as_text=True)
        assert shown.status_code == 200
        assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text

    assignment = db.session.scalar(select(ExpertAssignment))
    page = _get(client, url).get_data(as_text=True)
    released = client.post(f"/expert-assignments/{assignment.id}/release",
                           data={"csrf_token": csrf_token(page)})  # fmt: skip
    assert released.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(ExpertAssignment, assignment.id).released_at is not None


def test_a_viewer_sees_the_incident_experts_without_the_form_and_cannot_post(client, found):
    user, _ = make_user("viewer", password="pw-viewer-1234")
    sign_in(client, user.username, "pw-viewer-1234")
    url = f"/incidents/{found.id}/experts"

    page = _get(client, url + "?lang=en").get_data(as_text=True)
    refused = client.post(url, data={"expert": "ZH-EXP-05", "role": "x"})

    assert "Call an expert" not in page
    assert refused.status_code == 403


def test_two_assignments_of_one_expert_at_once_give_one_201_and_one_409(app, found, commander):
    """Each request in its own thread, session and connection: never both, never a 500."""
    import threading

    url = f"/api/incidents/{found.id}/experts"
    barrier = threading.Barrier(2)
    codes = []

    def post(role):
        own = app.test_client()
        barrier.wait(timeout=30)
        body = {"expert": "ZH-EXP-05", "role": role}
        codes.append(own.post(url, json=body, headers=bearer(commander)).status_code)

    # The test's own transaction ends first: on SQLite it would hold the write lock.
    db.session.commit()
    threads = [threading.Thread(target=post, args=(role,)) for role in ("流调", "会商")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(codes) == [201, 409]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(ExpertAssignment.id))) == 1
