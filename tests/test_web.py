"""Pages speak zh-CN by default and English on request; the API refuses bad queries with
422 field messages; user text shows literally."""

import os

import pytest

from app.drills.models import DrillRun
from app.extensions import db
from tests.helpers import T0, make_user, sign_in


def test_home_page_is_chinese_by_default(client):
    page = client.get("/").get_data(as_text=True)

    assert "指挥中心" in page


def test_home_page_speaks_english_on_request(client):
    page = client.get("/?lang=en").get_data(as_text=True)
    assert "Command centre" in page

    page = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert "Command centre" in page


def test_unknown_query_fields_get_422_with_the_field(client):
    response = client.get("/api/suppliers?colour=red")

    assert response.status_code == 422
    assert "colour" in str(response.get_json()["errors"])


def test_out_of_range_paging_gets_422(client):
    assert client.get("/api/suppliers?limit=0").status_code == 422
    assert client.get("/api/suppliers?limit=abc").status_code == 422


def test_supplier_names_come_back_literally(client, region):
    suppliers = client.get("/api/suppliers?limit=1000").get_json()

    assert '"老街坊"<骆驼>快餐店' in {s["name"] for s in suppliers}


def test_drill_run_names_are_escaped_on_the_home_page(client, app):
    db.session.add(
        DrillRun(
            scenario="<script>alert(1)</script>",
            scenario_digest="0",
            sim_start=T0,
            sim_end=T0,
            sim_now=T0,
            started_at=T0,
        )
    )
    db.session.commit()

    page = client.get("/").get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_missing_incident_is_404_json(client):
    response = client.get("/api/incidents/12345")

    assert response.status_code == 404


def test_openapi_document_is_served(client):
    spec = client.get("/api/openapi.json").get_json()

    assert "/api/suppliers" in spec["paths"]


def test_a_finished_drill_serves_its_own_report_and_map(client, app):
    """Pages read the report kept with the run, not an output folder a later run reuses."""
    from app.drills.services import kept_map_path

    report = {
        "drill": {"title": "台风演练", "sim_start": "", "sim_end": ""},
        "incident": {"id": 7, "title": "t", "level_changes": []},
        "duties": {"assigned": 0, "confirmed": 0, "overdue": 0, "escalated": 0},
        "shortfall": [],
        "timeline": [],
    }
    run = DrillRun(
        scenario="s",
        scenario_digest="0",
        sim_start=T0,
        sim_end=T0,
        sim_now=T0,
        started_at=T0,
        status="finished",
        report=report,
    )
    db.session.add(run)
    db.session.commit()
    path = kept_map_path(run)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("<html>map</html>")

    page = client.get(f"/drills/{run.id}/report").get_data(as_text=True)
    assert "台风演练" in page and "#7" in page
    assert client.get(f"/drills/{run.id}/map").get_data(as_text=True) == "<html>map</html>"


@pytest.mark.parametrize("run_id", ["0", "2147483648", "99999999999999999999"])
def test_impossible_drill_ids_are_404(client, run_id):
    assert client.get(f"/drills/{run_id}/report").status_code == 404
    assert client.get(f"/drills/{run_id}/map").status_code == 404


def _csrf(page):
    import re

    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]


def test_the_supply_page_lists_suppliers_in_chinese_and_english(client, region):
    from flask_babel import refresh

    zh = client.get("/supply").get_data(as_text=True)
    refresh()  # the test's app context outlives each request, and Babel keeps its choice there
    en = client.get("/supply?lang=en").get_data(as_text=True)

    assert "保供单位与需求点" in zh and "导入文件" in zh
    assert "Suppliers and demand points" in en
    assert "&#34;老街坊&#34;&lt;骆驼&gt;快餐店" in zh  # shown literally, never as markup


def test_the_supply_page_imports_a_file_for_a_signed_in_commander_with_csrf(client, region):
    import io

    make_user("commander", password="page-password", username="page-commander")
    make_user("viewer", password="page-password", username="page-viewer")
    body = "编码,名称,类型,纬度,经度,容纳人数\nZH-SH-95,页面导入点,安置点,29.96,121.70,300\n"

    def post(token, **fields):
        data = {"csrf_token": token, "kind": "demand", "coords": "wgs84",
                "file": (io.BytesIO(body.encode("gbk")), "p.csv"), **fields}  # fmt: skip
        return client.post("/supply", data=data, content_type="multipart/form-data")

    assert post("none").status_code == 302
    sign_in(client, "page-viewer", "page-password")
    viewer_page = client.get("/supply").get_data(as_text=True)
    assert post(_csrf(viewer_page)).status_code == 403
    client.post("/logout", data={"csrf_token": _csrf(viewer_page)})
    sign_in(client, "page-commander", "page-password")
    token = _csrf(client.get("/supply").get_data(as_text=True))

    assert post(token, csrf_token="forged").status_code == 422
    taken = post(token)

    assert taken.status_code == 200
    assert "页面导入点" in taken.get_data(as_text=True)


def test_a_refused_file_on_the_page_names_its_rows(client, region):
    import io

    make_user("commander", password="page-password", username="page-commander")
    sign_in(client, "page-commander", "page-password")
    token = _csrf(client.get("/supply").get_data(as_text=True))
    body = "编码,名称,类型,纬度,经度,容纳人数\nZH-SH-95,坏,安置点,121.70,29.96,300\n"

    response = client.post("/supply", content_type="multipart/form-data", data={
        "csrf_token": token, "kind": "demand", "coords": "wgs84",
        "file": (io.BytesIO(body.encode()), "p.csv")})  # fmt: skip

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "p.csv line 2" in page and "未导入任何数据" in page


def test_a_missing_page_is_a_page_and_a_missing_api_record_is_json(client):
    page = client.get("/drills/999/report")
    api = client.get("/api/incidents/999")

    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "404" in page.get_data(as_text=True)
    assert api.status_code == 404 and api.get_json()["code"] == 404


def test_an_error_page_speaks_the_readers_language(client):
    from flask_babel import refresh

    chinese = client.get("/no-such-page").get_data(as_text=True)
    refresh()
    english = client.get("/no-such-page?lang=en").get_data(as_text=True)

    assert "页面不存在" in chinese and "The requested URL" not in chinese
    assert "There is no such page." in english
