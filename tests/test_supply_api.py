"""The supply API: changes need a commander's token, bad values get 422 naming the field,
and two requests that would together over-book a supplier end in one 201 and one 409."""

import io
import threading
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.supply.models import Supplier, SupplyTask
from tests.helpers import T0, bearer, incident, make_user

LUNCH = (T0 + timedelta(hours=4)).isoformat()
NEW_SUPPLIER = {
    "code": "ZH-SUP-900",
    "name": '新"<鲜>"厨房',
    "type": "central_kitchen",
    "lat": 29.97,
    "lon": 121.70,
    "breakfast_capacity": 100,
    "lunch_capacity": 120,
    "dinner_capacity": 110,
    "rating": "A",
}


@pytest.fixture
def api(app, region):
    return app.test_client()


@pytest.fixture
def auth(api):
    """The headers of a commander's requests."""
    _user, token = make_user("commander")
    return bearer(token)


def _errors(response):
    assert response.status_code == 422, response.get_data(as_text=True)
    return response.get_json()["errors"]


def test_changes_need_a_commanders_token(api, auth):
    _viewer, token = make_user("viewer")

    nobody = api.post("/api/suppliers", json=NEW_SUPPLIER)
    wrong = api.post("/api/suppliers", json=NEW_SUPPLIER, headers=bearer("wrong"))
    viewer = api.post("/api/suppliers", json=NEW_SUPPLIER, headers=bearer(token))
    commander = api.post("/api/suppliers", json=NEW_SUPPLIER, headers=auth)

    assert nobody.status_code == 401 and nobody.get_json()["code"] == 401
    assert nobody.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert viewer.status_code == 403 and "commander" in viewer.get_json()["message"]
    assert commander.status_code == 201
    assert api.get("/api/suppliers").status_code == 200


def test_a_refused_caller_learns_nothing_of_the_body(api):
    """The role is checked before the body is parsed: a stranger gets 401, not 422."""
    _viewer, token = make_user("viewer")

    assert api.post("/api/suppliers", json={"colour": "red"}).status_code == 401
    assert api.post("/api/suppliers", json={"colour": "red"},
                    headers=bearer(token)).status_code == 403  # fmt: skip


def test_every_change_needs_a_commander(api):
    found = incident()
    _viewer, token = make_user("viewer")
    changes = [
        ("post", "/api/suppliers"),
        ("patch", "/api/suppliers/1"),
        ("post", "/api/demand-points"),
        ("patch", "/api/demand-points/1"),
        ("post", "/api/suppliers/import"),
        ("post", "/api/demand-points/import"),
        ("post", f"/api/incidents/{found.id}/hazard-areas"),
        ("post", f"/api/incidents/{found.id}/allocations"),
        ("post", f"/api/incidents/{found.id}/supply-tasks"),
        ("post", f"/api/incidents/{found.id}/capacity-reports"),
    ]

    for method, url in changes:
        assert getattr(api, method)(url, json={}).status_code == 401, url
        assert getattr(api, method)(url, json={}, headers=bearer(token)).status_code == 403, url


def test_a_supplier_is_created_and_shown_literally(api, auth):
    response = api.post("/api/suppliers", json=NEW_SUPPLIER, headers=auth)

    assert response.status_code == 201
    assert response.get_json()["name"] == '新"<鲜>"厨房'
    assert api.post("/api/suppliers", json=NEW_SUPPLIER, headers=auth).status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"lat": float("nan")}, "lat"),
        ({"lunch_capacity": float("inf")}, "lunch_capacity"),
        ({"lunch_capacity": -5}, "lunch_capacity"),
        ({"lunch_capacity": 10**9}, "lunch_capacity"),
        ({"lunch_capacity": "1,200"}, "lunch_capacity"),
        ({"lat": 121.70, "lon": 29.97}, "lat"),
        ({"lat": 39.9, "lon": 116.4}, "lat"),
        ({"rating": "D"}, "rating"),
        ({"street_code": "330211999"}, "street_code"),
    ],
)
def test_bad_supplier_values_are_refused_naming_the_field(api, change, field, auth):
    response = api.post("/api/suppliers", json={**NEW_SUPPLIER, **change}, headers=auth)

    errors = _errors(response)
    assert field in str(errors)
    assert db.session.scalar(select(func.count(Supplier.id)).filter_by(code="ZH-SUP-900")) == 0


def test_swapped_coordinates_say_so(api, auth):
    errors = _errors(api.post("/api/suppliers", json={**NEW_SUPPLIER, "lat": 121.7, "lon": 29.97},
                              headers=auth))  # fmt: skip

    assert "swapped" in str(errors)


def test_a_supplier_is_changed_but_not_its_code(api, auth):
    supplier_id = api.post("/api/suppliers", json=NEW_SUPPLIER, headers=auth).get_json()["id"]

    changed = api.patch(f"/api/suppliers/{supplier_id}", json={"lunch_capacity": 90}, headers=auth)
    recoded = api.patch(f"/api/suppliers/{supplier_id}", json={"code": "X"}, headers=auth)

    assert changed.status_code == 200 and changed.get_json()["lunch_capacity"] == 90
    assert "code" in _errors(recoded)


def test_a_csv_upload_imports_all_or_nothing(api, auth):
    good = '编码,名称,类型,纬度,经度,容纳人数\nZH-SH-90,新安置点,安置点,29.96,121.70,"1,200"\n'
    bad = good + "ZH-SH-91,坏行,安置点,29.96,121.70,lots\n"

    url = "/api/demand-points/import"
    refused = api.post(
        url, headers=auth, data={"file": (io.BytesIO(bad.encode("gb18030")), "p.csv")}
    )
    taken = api.post(
        url, headers=auth, data={"file": (io.BytesIO(good.encode("gb18030")), "p.csv")}
    )

    assert "p.csv line 3" in _errors(refused)
    assert taken.status_code == 200 and taken.get_json()["created"] == 1
    points = api.get("/api/demand-points?limit=1000").get_json()
    assert {p["code"]: p["capacity"] for p in points}["ZH-SH-90"] == 1200
    assert "ZH-SH-91" not in {p["code"] for p in points}


def test_export_gives_a_workbook_with_chinese_headers(api):
    response = api.get("/api/suppliers/export?format=xlsx")

    sheet = load_workbook(io.BytesIO(response.data)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("编码", "名称", "类型")
    assert len(rows) == 1 + db.session.scalar(select(func.count(Supplier.id)))


def _task(supplier="ZH-SUP-001", meals=100, **change):
    return {"supplier": supplier, "demand_point": "ZH-SH-01", "meal": "lunch",
            "serve_at": LUNCH, "meals": meals, **change}  # fmt: skip


def test_a_task_set_by_hand_is_booked_and_over_capacity_is_409(api, auth):
    found = incident()
    whole = db.session.scalar(select(Supplier).filter_by(code="ZH-SUP-001")).lunch_capacity
    url = f"/api/incidents/{found.id}/supply-tasks"

    first = api.post(url, json=_task(meals=whole - 10), headers=auth)
    second = api.post(url, json=_task(meals=11), headers=auth)
    third = api.post(url, json=_task(meals=10), headers=auth)

    assert first.status_code == 201
    assert second.status_code == 409 and "can take 10 more" in second.get_json()["message"]
    assert third.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"serve_at": "2026-09-14T04:00:00"}, "serve_at"),
        ({"meals": 0}, "meals"),
        ({"meals": 1.5}, "meals"),
        ({"meal": "supper"}, "meal"),
        ({"by_diet": {"halal": 50}}, "by_diet"),
        ({"by_diet": {"kosher": 100}}, "by_diet"),
        ({"supplier": "ZH-SUP-999"}, "supplier"),
    ],
)
def test_bad_tasks_are_refused_naming_the_field(api, change, field, auth):
    found = incident()

    response = api.post(f"/api/incidents/{found.id}/supply-tasks", json=_task(**change),
                        headers=auth)  # fmt: skip

    assert field in str(_errors(response))
    assert db.session.scalar(select(func.count(SupplyTask.id))) == 0


def test_two_requests_that_together_overbook_get_one_201_and_one_409(app, api, auth):
    """Each request runs in its own thread, app context, session and database connection."""
    found = incident()
    whole = db.session.scalar(select(Supplier).filter_by(code="ZH-SUP-001")).lunch_capacity
    url = f"/api/incidents/{found.id}/supply-tasks"
    db.session.commit()
    barrier = threading.Barrier(2)
    codes = []

    def post():
        client = app.test_client()
        barrier.wait(timeout=30)
        response = client.post(url, json=_task(meals=whole * 2 // 3), headers=auth)
        codes.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(codes) == [201, 409]
    db.session.expire_all()
    booked = db.session.scalar(select(func.sum(SupplyTask.meals)).filter_by(incident_id=found.id))
    assert booked == whole * 2 // 3


def test_a_capacity_report_and_an_allocation_through_the_api(api, run_worker, auth):
    found = incident()
    from app.supply.services import demand_point_by_code, open_point

    open_point(found, demand_point_by_code("ZH-SH-01"), headcount=2000, at=T0)
    db.session.commit()

    solved = api.post(f"/api/incidents/{found.id}/allocations",
                      json={"meal": "lunch", "serve_at": LUNCH}, headers=auth)  # fmt: skip
    tasks = api.get(f"/api/incidents/{found.id}/supply-tasks").get_json()
    kitchen = tasks[0]["supplier"]
    report = api.post(f"/api/incidents/{found.id}/capacity-reports", headers=auth,
                      json={"supplier": kitchen, "meal": "lunch", "meals": 0,
                            "valid_from": T0.isoformat()})  # fmt: skip

    assert solved.status_code == 201 and solved.get_json()["allocated_meals"] == 2000
    assert report.status_code == 201
    from app.clock.services import tick

    tick(T0)
    run_worker()
    runs = api.get(f"/api/incidents/{found.id}/allocations").get_json()
    assert runs[-1]["trigger"] == "replan" and runs[-1]["moves"]
    open_now = [t for t in api.get(f"/api/incidents/{found.id}/supply-tasks").get_json()
                if t["status"] != "cancelled"]  # fmt: skip
    assert kitchen not in {t["supplier"] for t in open_now}
    assert sum(t["meals"] for t in open_now) == 2000


def test_a_hazard_area_must_be_a_polygon(api, auth):
    found = incident()

    point = {"type": "Point", "coordinates": [121.7, 29.9]}

    response = api.post(f"/api/incidents/{found.id}/hazard-areas", headers=auth,
                        json={"name": "x", "geometry": point})  # fmt: skip

    assert "geometry" in _errors(response)


@pytest.mark.parametrize(
    ("serve_at", "says"),
    [
        ("2026-09-14T19:00:00+00:00", "lunch is served about 11:30"),  # 03:00 the next day
        ("2026-09-13T04:00:00+00:00", "already past"),
        ("2026-12-14T04:00:00+00:00", "days ahead"),
        ("9999-12-31T23:59:59-23:59", "outside the calendar"),
        ("2150-01-01T04:00:00+00:00", "between 2000 and 2100"),
        ("0001-01-01T00:00:00+01:00", "outside the calendar"),
    ],
)
def test_a_serving_time_that_is_no_such_meal_is_refused(api, serve_at, says, auth):
    found = incident()

    for url, body in [
        (f"/api/incidents/{found.id}/supply-tasks", _task(serve_at=serve_at)),
        (f"/api/incidents/{found.id}/allocations", {"meal": "lunch", "serve_at": serve_at}),
    ]:
        response = api.post(url, json=body, headers=auth)

        errors = _errors(response)
        assert says in str(errors.get("json", errors)["serve_at"])
    assert db.session.scalar(select(func.count(SupplyTask.id))) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": "API-\u0000X"}, "code"),
        ({"code": "ZH SUP 901"}, "code"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "   "}, "name"),
        ({"hot_holding": True, "chilled": True}, "chilled"),
    ],
)
def test_text_the_imports_refuse_the_api_refuses_too(api, change, field, auth):
    response = api.post("/api/suppliers", json={**NEW_SUPPLIER, **change}, headers=auth)

    assert field in _errors(response)["json"]
    assert db.session.scalar(select(func.count(Supplier.id)).filter_by(code="ZH-SUP-900")) == 0


def test_a_change_cannot_make_a_kitchen_both_hot_and_chilled(api, auth):
    supplier_id = api.post("/api/suppliers", json={**NEW_SUPPLIER, "hot_holding": True},
                           headers=auth).get_json()["id"]  # fmt: skip

    response = api.patch(f"/api/suppliers/{supplier_id}", json={"chilled": True}, headers=auth)

    assert "chilled" in _errors(response)


def test_a_closed_incident_takes_no_capacity_reports_or_hazard_areas(api, auth):
    found = incident()
    found.status = "closed"
    db.session.commit()
    report = {"supplier": "ZH-SUP-001", "meal": "lunch", "meals": 5, "valid_from": LUNCH}
    area = {"name": "x", "geometry": {"type": "Polygon", "coordinates": [
        [[121.6, 29.9], [121.7, 29.9], [121.7, 30.0], [121.6, 29.9]]]}}  # fmt: skip

    assert api.post(f"/api/incidents/{found.id}/capacity-reports", json=report,
                    headers=auth).status_code == 409  # fmt: skip
    assert api.post(f"/api/incidents/{found.id}/hazard-areas", json=area,
                    headers=auth).status_code == 409  # fmt: skip


def test_every_method_is_in_the_openapi_document(api):
    paths = api.get("/api/openapi.json").get_json()["paths"]

    assert {"get", "post"} <= set(paths["/api/suppliers"])
    assert "patch" in paths["/api/demand-points/{row_id}"]


def test_a_code_is_trimmed_so_a_padded_one_is_the_same_code(api, auth):
    first = api.post("/api/suppliers", json={**NEW_SUPPLIER, "code": " ZH-SUP-901 "}, headers=auth)
    again = api.post("/api/suppliers", json={**NEW_SUPPLIER, "code": "ZH-SUP-901"}, headers=auth)

    assert first.get_json()["code"] == "ZH-SUP-901"
    assert again.status_code == 409


def test_a_supplier_user_reports_capacity_for_its_own_supplier_only(api):
    found = incident()
    _user, token = make_user("supplier", supplier="ZH-SUP-001")
    url = f"/api/incidents/{found.id}/capacity-reports"

    def report(code):
        body = {"supplier": code, "meal": "lunch", "meals": 5, "valid_from": LUNCH}
        return api.post(url, json=body, headers=bearer(token))

    own, other = report("ZH-SUP-001"), report("ZH-SUP-002")
    task = api.post(f"/api/incidents/{found.id}/supply-tasks", json=_task(), headers=bearer(token))

    assert own.status_code == 201
    assert other.status_code == 403 and "own supplier" in other.get_json()["message"]
    assert task.status_code == 403


def test_the_commander_opens_a_demand_point_and_the_meal_is_planned_for_it(api, auth):
    found = incident()
    url = f"/api/incidents/{found.id}/demand-points"

    opened = api.post(url, json={"demand_point": "ZH-SH-01", "headcount": 800, "halal": 10},
                      headers=auth)  # fmt: skip
    solved = api.post(f"/api/incidents/{found.id}/allocations",
                      json={"meal": "lunch", "serve_at": LUNCH}, headers=auth)  # fmt: skip
    listed = api.get(url, headers=auth).get_json()

    assert opened.status_code == 201 and opened.get_json()["halal"] == 10
    assert solved.status_code == 201 and solved.get_json()["allocated_meals"] == 800
    assert [(row["demand_point"], row["headcount"]) for row in listed] == [("ZH-SH-01", 800)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"headcount": -1}, "headcount"),
        ({"headcount": 10**7}, "headcount"),
        ({"headcount": "many"}, "headcount"),
        ({"halal": 900}, "diets"),
        ({"demand_point": "ZH-SH-999"}, "demand_point"),
        ({"kosher": 3}, "kosher"),
    ],
)
def test_bad_openings_are_refused_naming_the_field(api, auth, change, field):
    found = incident()
    body = {"demand_point": "ZH-SH-01", "headcount": 800, **change}

    response = api.post(f"/api/incidents/{found.id}/demand-points", json=body, headers=auth)

    errors = _errors(response)
    assert field in {**errors, **errors.get("json", {})}
    assert api.get(f"/api/incidents/{found.id}/demand-points", headers=auth).get_json() == []


def test_only_the_commander_opens_demand_points(api):
    found = incident()
    _user, token = make_user("viewer")

    response = api.post(f"/api/incidents/{found.id}/demand-points",
                        json={"demand_point": "ZH-SH-01", "headcount": 5},
                        headers=bearer(token))  # fmt: skip

    assert response.status_code == 403
