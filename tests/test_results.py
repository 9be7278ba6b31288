"""Test results and lab requests: what a result may be taken from, the lab's analytes,
capacity and turnaround, late results, and the API and page that record them."""

import math
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.coordination.models import Notification
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.supply.models import Supplier, SupplierSuspension
from app.supply.services import accept_task, allocate_meal, start_batch, supplier_by_code
from app.techsupport.models import Lab, RapidTest
from app.techsupport.results import is_late, record_lab_result, record_result, request_lab_test
from app.techsupport.services import retain_samples
from app.types import utcnow
from tests.helpers import T0, bearer, csrf_token, incident, make_user, open_shelters, sign_in

LUNCH = T0 + timedelta(hours=4)
NITRITE = {"analyte": "亚硝酸盐", "method": "分光光度法", "unit": "mg/kg", "limit": 30.0}


def _result(supplier, found=None, value=3.0, at=T0, **more):
    return record_result(
        supplier=supplier,
        incident=found,
        value=value,
        tested_by="inspector",
        at=at,
        **{**NITRITE, **more},
    )


def _lab(code="LAB-1", analytes=("亚硝酸盐", "农药残留"), capacity=5, hours=24, available=True):
    lab = Lab(code=code, name=f"{code} 检测中心", analytes=list(analytes),
              capacity_per_day=capacity, turnaround_hours=hours, available=available)  # fmt: skip
    db.session.add(lab)
    db.session.commit()
    return lab


def _sampled_tasks(found):
    """Two batches of two suppliers, each with retained samples."""
    open_shelters(found, {"ZH-SH-01": 3960, "ZH-SH-02": 2370, "ZH-SH-05": 3960})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    first = tasks[0]
    second = next(t for t in tasks if t.supplier_id != first.supplier_id)
    samples = []
    for task in (first, second):
        accept_task(task, T0)
        batch = start_batch(task, dishes=["米饭"], at=T0)
        samples.append(retain_samples(batch, at=T0, kept_at="fridge", grams=150)[0])
    db.session.commit()
    return samples


# Results


def test_a_result_at_its_limit_passes_and_above_it_fails(region):
    supplier = supplier_by_code("ZH-SUP-001")

    at_limit = _result(supplier, value=30.0)
    above = _result(supplier, value=30.5)

    assert at_limit.passed and not above.passed
    assert above.kind == "rapid" and above.purpose == "routine"


def test_a_sample_of_another_supplier_is_refused(region):
    found = incident()
    sample, other = _sampled_tasks(found)
    supplier = sample.batch.supply_task.supplier

    with pytest.raises(InvalidInput) as refused:
        _result(supplier, found, sample=other)
    with pytest.raises(InvalidInput) as wrong_batch:
        _result(supplier, found, batch=other.batch)
    test = _result(supplier, found, sample=sample)

    assert "sample" in refused.value.errors and "batch" in wrong_batch.value.errors
    assert test.batch_id == sample.batch_id  # the sample's batch is recorded with it


def test_a_sample_of_another_incident_is_refused(region):
    sample, _ = _sampled_tasks(incident())

    with pytest.raises(InvalidInput) as refused:
        _result(sample.batch.supply_task.supplier, incident(), sample=sample)

    assert "belongs to incident" in refused.value.errors["sample"][0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": math.nan}, "value"),
        ({"value": math.inf}, "value"),
        ({"value": -1.0}, "value"),
        ({"limit": 0.0}, "limit"),
        ({"limit": -math.inf}, "limit"),
        ({"analyte": "  "}, "analyte"),
        ({"unit": "x" * 21}, "unit"),
        ({"purpose": "curiosity"}, "purpose"),
        ({"kind": "lab"}, "kind"),
    ],
)
def test_a_result_that_cannot_stand_is_refused(region, change, field):
    supplier = supplier_by_code("ZH-SUP-001")
    args = {"value": 3.0, **change}

    with pytest.raises(InvalidInput) as refused:
        _result(supplier, **args)

    assert field in refused.value.errors
    assert db.session.scalar(select(func.count(RapidTest.id))) == 0


def test_a_live_failure_outside_any_incident_suspends_and_tells_the_command(region):
    supplier = supplier_by_code("ZH-SUP-001")

    _result(supplier, value=45.0)
    db.session.commit()

    assert db.session.get(Supplier, supplier.id).status == "suspended"
    told = db.session.scalars(select(Notification).filter_by(kind="rapid_test_failed")).all()
    assert len(told) == 2 and all(n.incident_id is None for n in told)


# Lab requests


def test_a_lab_must_test_every_analyte_asked(region):
    lab = _lab(analytes=("亚硝酸盐",))
    supplier = supplier_by_code("ZH-SUP-001")

    with pytest.raises(InvalidInput) as refused:
        request_lab_test(lab=lab, supplier=supplier, incident=None, requested_by="i",
                         analytes=["亚硝酸盐", "沙门氏菌"], at=T0)  # fmt: skip

    assert refused.value.errors["analytes"] == ["lab LAB-1 does not test 沙门氏菌"]


def test_an_unavailable_lab_takes_no_request(region):
    lab = _lab(available=False)

    with pytest.raises(Conflict, match="LAB-1"):
        request_lab_test(lab=lab, supplier=supplier_by_code("ZH-SUP-001"), incident=None,
                         requested_by="i", analytes=["亚硝酸盐"], at=T0)  # fmt: skip


def test_a_lab_takes_its_capacity_per_local_day_and_no_more(region):
    lab = _lab(capacity=2)
    supplier = supplier_by_code("ZH-SUP-001")

    def ask(at):
        return request_lab_test(lab=lab, supplier=supplier, incident=None, requested_by="i",
                                analytes=["亚硝酸盐"], at=at)  # fmt: skip

    ask(T0)  # 08:00 in Shanghai
    ask(T0 + timedelta(hours=15, minutes=59))  # 23:59 the same local day
    with pytest.raises(Conflict) as full:
        ask(T0 + timedelta(hours=15))
    next_day = ask(T0 + timedelta(hours=16))  # midnight in Shanghai

    assert "LAB-1" in str(full.value) and "2 requests a day" in str(full.value)
    assert next_day.id is not None


def test_a_result_is_expected_after_the_labs_turnaround_and_late_after_that(region):
    lab = _lab(hours=36)

    request = request_lab_test(lab=lab, supplier=supplier_by_code("ZH-SUP-001"), incident=None,
                               requested_by="i", analytes=["亚硝酸盐"], at=T0)  # fmt: skip

    assert request.expected_by == T0 + timedelta(hours=36)
    assert not is_late(request, T0 + timedelta(hours=36))
    assert is_late(request, T0 + timedelta(hours=36, minutes=1))


def test_a_failed_lab_result_suspends_the_supplier(region):
    found = incident(drill=False)
    sample, _ = _sampled_tasks(found)
    supplier = sample.batch.supply_task.supplier
    request = request_lab_test(lab=_lab(), supplier=supplier, incident=found, sample=sample,
                               requested_by="i", analytes=["亚硝酸盐", "农药残留"],
                               at=T0)  # fmt: skip

    tests = record_lab_result(
        request,
        results=[
            {**NITRITE, "value": 41.0},
            {"analyte": "农药残留", "method": "酶抑制率法", "value": 10, "limit": 50, "unit": "%"},
        ],
        tested_by="LAB-1 analyst",
        at=T0 + timedelta(hours=20),
    )
    db.session.commit()

    assert [t.passed for t in tests] == [False, True]
    assert all(t.kind == "lab" and t.lab_request_id == request.id for t in tests)
    assert all(t.sample_id == sample.id for t in tests)
    assert request.status == "reported" and not is_late(request, T0 + timedelta(days=9))
    suspension = db.session.scalar(select(SupplierSuspension))
    assert suspension.rapid_test_id == tests[0].id and not suspension.drill
    told = db.session.scalars(select(Notification.kind).filter_by(kind="lab_test_failed")).all()
    assert len(told) == 2


def test_a_lab_report_covers_exactly_the_analytes_asked_and_only_once(region):
    request = request_lab_test(lab=_lab(), supplier=supplier_by_code("ZH-SUP-001"),
                               incident=None, requested_by="i",
                               analytes=["亚硝酸盐", "农药残留"], at=T0)  # fmt: skip

    with pytest.raises(InvalidInput) as partial:
        record_lab_result(request, results=[{**NITRITE, "value": 1}], tested_by="lab", at=T0)
    bad = [{**NITRITE, "value": 1}, {**NITRITE, "analyte": "农药残留", "value": math.nan}]
    with pytest.raises(InvalidInput) as bad_value:
        record_lab_result(request, tested_by="lab", at=T0, results=bad)
    full = [{**NITRITE, "value": 1}, {**NITRITE, "analyte": "农药残留", "value": 2}]
    record_lab_result(request, results=full, tested_by="lab", at=T0)
    with pytest.raises(Conflict, match="reported"):
        record_lab_result(request, results=full, tested_by="lab", at=T0)

    assert "no result for 农药残留" in partial.value.errors["results"][0]
    assert "results.1.value" in bad_value.value.errors
    assert db.session.scalar(select(func.count(RapidTest.id))) == 2


# API


@pytest.fixture
def api(app, region):
    return app.test_client()


@pytest.fixture
def inspector(api):
    return bearer(make_user("inspector")[1])


BODY = {"supplier": "ZH-SUP-001", "analyte": "亚硝酸盐", "method": "快检", "value": 3.5,
        "limit": 30, "unit": "mg/kg"}  # fmt: skip


def test_inspectors_and_the_commander_record_results_and_others_may_not(api, inspector):
    liaison = bearer(make_user("liaison", department="market_supervision")[1])
    viewer = bearer(make_user("viewer")[1])
    commander = bearer(make_user("commander")[1])

    assert api.post("/api/rapid-tests", json=BODY).status_code == 401
    assert api.post("/api/rapid-tests", json=BODY, headers=liaison).status_code == 403
    assert api.post("/api/rapid-tests", json=BODY, headers=viewer).status_code == 403
    made = api.post("/api/rapid-tests", json=BODY, headers=inspector)
    assert made.status_code == 201 and made.get_json()["passed"] is True
    assert api.post("/api/rapid-tests", json=BODY, headers=commander).status_code == 201


def test_a_failed_result_over_the_api_suspends_at_once(api, inspector):
    made = api.post("/api/rapid-tests", json={**BODY, "value": 31}, headers=inspector)

    listed = api.get("/api/rapid-tests?failed=true&supplier=ZH-SUP-001", headers=inspector)
    assert made.status_code == 201 and made.get_json()["passed"] is False
    assert [row["id"] for row in listed.get_json()] == [made.get_json()["id"]]
    assert api.get("/api/rapid-tests?failed=false", headers=inspector).get_json() == []
    assert supplier_by_code("ZH-SUP-001").status == "suspended"
    current = api.get("/api/suspensions?current=true", headers=inspector).get_json()
    assert [row["supplier"] for row in current] == ["ZH-SUP-001"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"colour": "red"}', "colour"),
        ('{"value": NaN}', "value"),
        ('{"value": Infinity}', "value"),
        ('{"value": "3.5"}', "value"),
        ('{"value": true}', "value"),
        ('{"limit": 0}', "limit"),
        ('{"value": 1e300}', "value"),
        ('{"tested_at": "2026-09-14T08:00:00"}', "tested_at"),
        ('{"tested_at": "2099-01-01T00:00:00+08:00"}', "tested_at"),
        # A failure dated weeks back would start a suspension long past.
        ('{"tested_at": "2026-09-01T00:00:00Z"}', "tested_at"),
        ('{"analyte": "' + "x" * 201 + '"}', "analyte"),
        ('{"supplier": "ZH-SUP-999"}', "supplier"),
        ('{"sample_id": 999999}', "sample_id"),
        ('{"batch_id": 2147483648}', "batch_id"),
        ('{"incident_id": 999999}', "incident_id"),
        ('{"purpose": "fun"}', "purpose"),
    ],
)
def test_bad_results_get_422_naming_the_field(api, inspector, raw, field):
    import json

    body = {**BODY, **json.loads(raw.replace("NaN", '"__nan__"').replace("Infinity", '"__inf__"'))}
    text = json.dumps(body).replace('"__nan__"', "NaN").replace('"__inf__"', "Infinity")

    response = api.post("/api/rapid-tests", data=text, headers={
        **inspector, "Content-Type": "application/json"})  # fmt: skip

    assert response.status_code == 422, response.get_data(as_text=True)
    errors = response.get_json()["errors"]
    assert field in errors.get("json", errors)
    assert db.session.scalar(select(func.count(RapidTest.id))) == 0


def test_a_sample_of_another_supplier_gets_422_over_the_api(api, inspector):
    found = incident()
    sample, other = _sampled_tasks(found)
    supplier = sample.batch.supply_task.supplier.code

    response = api.post("/api/rapid-tests", headers=inspector, json={
        **BODY, "supplier": supplier, "incident_id": found.id, "sample_id": other.id})  # fmt: skip

    assert response.status_code == 422 and "another supplier" in response.get_json()["errors"][
        "sample"][0]  # fmt: skip


def test_lab_requests_over_the_api_name_the_analyte_the_lab_and_its_capacity(api, inspector):
    _lab(analytes=("亚硝酸盐",), capacity=1, hours=12)
    body = {"lab": "LAB-1", "supplier": "ZH-SUP-001", "analytes": ["亚硝酸盐"]}

    unknown = api.post("/api/lab-requests", headers=inspector,
                       json={**body, "analytes": ["亚硝酸盐", "瘦肉精"]})  # fmt: skip
    made = api.post("/api/lab-requests", json=body, headers=inspector)
    full = api.post("/api/lab-requests", json=body, headers=inspector)
    no_lab = api.post("/api/lab-requests", json={**body, "lab": "LAB-9"}, headers=inspector)
    stray = api.post("/api/lab-requests", json={**body, "urgent": True}, headers=inspector)

    assert unknown.status_code == 422
    assert unknown.get_json()["errors"]["analytes"] == ["lab LAB-1 does not test 瘦肉精"]
    assert made.status_code == 201
    row = made.get_json()
    assert row["late"] is False and row["status"] == "requested"
    assert row["expected_by"] > row["requested_at"]
    assert full.status_code == 409 and "LAB-1" in full.get_json()["message"]
    assert "1 requests a day" in full.get_json()["message"]
    assert no_lab.status_code == 422 and "lab" in no_lab.get_json()["errors"]
    assert stray.status_code == 422 and "urgent" in stray.get_json()["errors"]["json"]


def test_a_late_lab_request_is_flagged_and_its_results_report_it(api, inspector):
    lab = _lab(hours=24)
    late = request_lab_test(lab=lab, supplier=supplier_by_code("ZH-SUP-001"), incident=None,
                            requested_by="i", analytes=["亚硝酸盐"],
                            at=utcnow() - timedelta(hours=30))  # fmt: skip
    db.session.commit()

    flagged = api.get("/api/lab-requests?late=true", headers=inspector).get_json()
    report = api.post(f"/api/lab-requests/{late.id}/results", headers=inspector,
                      json={"results": [{**NITRITE, "value": 2.0}]})  # fmt: skip
    again = api.post(f"/api/lab-requests/{late.id}/results", headers=inspector,
                     json={"results": [{**NITRITE, "value": 2.0}]})  # fmt: skip
    missing = api.post("/api/lab-requests/999999/results", headers=inspector,
                       json={"results": [{**NITRITE, "value": 2.0}]})  # fmt: skip

    assert [row["id"] for row in flagged] == [late.id] and flagged[0]["late"] is True
    assert report.status_code == 201, report.get_data(as_text=True)
    answer = report.get_json()
    assert answer["request"]["status"] == "reported" and answer["request"]["late"] is False
    assert answer["results"][0]["kind"] == "lab"
    assert again.status_code == 409
    assert missing.status_code == 404
    assert api.get("/api/lab-requests?late=true", headers=inspector).get_json() == []


# The page


def test_an_inspector_records_a_rapid_test_on_the_page_and_a_failure_shows_red(client, region):
    make_user("inspector", username="insp", password="secret-pass-1")
    sign_in(client, "insp", "secret-pass-1")
    page = client.get("/food-safety?lang=en").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "supplier": "ZH-SUP-001", "incident": "",
            "analyte": "<b>亚硝酸盐</b>", "method": "快检", "value": "45", "limit": "30",
            "unit": "mg/kg", "purpose": "routine"}  # fmt: skip

    posted = client.post("/food-safety?lang=en", data=form)
    page = client.get("/food-safety?lang=en").get_data(as_text=True)

    assert posted.status_code == 302
    assert 'class="failed"' in page and "failed" in page
    assert "&lt;b&gt;亚硝酸盐&lt;/b&gt;" in page and "<b>亚硝酸盐</b>" not in page
    assert "Current suspensions (1)" in page
    assert "Record a rapid test" in page


def test_a_bad_form_is_refused_with_the_field_and_nothing_recorded(client, region):
    make_user("inspector", username="insp", password="secret-pass-1")
    sign_in(client, "insp", "secret-pass-1")
    page = client.get("/food-safety?lang=en").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "supplier": "ZH-SUP-001", "incident": "",
            "analyte": "亚硝酸盐", "method": "快检", "value": "45", "limit": "0",
            "unit": "mg/kg", "purpose": "routine"}  # fmt: skip

    refused = client.post("/food-safety?lang=en", data=form)

    assert refused.status_code == 422 and "Limit" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count(RapidTest.id))) == 0


def test_a_viewer_sees_the_page_without_forms_and_may_not_post(client, region):
    make_user("viewer", username="view", password="secret-pass-1")
    sign_in(client, "view", "secret-pass-1")

    page = client.get("/food-safety?lang=en")
    posted = client.post("/food-safety?lang=en", data={"csrf_token": csrf_token(
        page.get_data(as_text=True))})  # fmt: skip

    assert page.status_code == 200 and "Record a rapid test" not in page.get_data(as_text=True)
    assert posted.status_code == 403


def test_the_page_lists_late_lab_requests(client, region):
    request_lab_test(lab=_lab(hours=2), supplier=supplier_by_code("ZH-SUP-001"), incident=None,
                     requested_by="i", analytes=["亚硝酸盐"],
                     at=utcnow() - timedelta(hours=3))  # fmt: skip
    db.session.commit()
    make_user("viewer", username="view", password="secret-pass-1")
    sign_in(client, "view", "secret-pass-1")

    page = client.get("/food-safety?lang=en").get_data(as_text=True)

    assert "Open lab requests (1)" in page and ">late<" in page


def test_the_page_needs_a_signed_in_user(client, region):
    assert client.get("/food-safety").status_code == 302


def test_a_supplier_user_reads_its_own_supplier_only(api, inspector):
    """Results name inspectors and other suppliers: a supplier sees its own."""
    own = api.post("/api/rapid-tests", json={**BODY, "value": 31}, headers=inspector).get_json()
    other = api.post("/api/rapid-tests", json={**BODY, "supplier": "ZH-SUP-002"},
                     headers=inspector).get_json()  # fmt: skip
    supplier = bearer(make_user("supplier", supplier="ZH-SUP-001")[1])

    listed = api.get("/api/rapid-tests", headers=supplier).get_json()
    stopped = api.get("/api/suspensions", headers=supplier).get_json()

    assert [row["id"] for row in listed] == [own["id"]]
    assert [row["supplier"] for row in stopped] == ["ZH-SUP-001"]
    assert api.get(f"/api/rapid-tests/{other['id']}", headers=supplier).status_code == 403
    assert api.get("/api/rapid-tests?supplier=ZH-SUP-002", headers=supplier).status_code == 403
