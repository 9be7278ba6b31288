"""Pages speak zh-CN by default and English on request; the API refuses bad queries with
422 field messages; user text shows literally."""

from app.drills.models import DrillRun
from app.extensions import db
from app.supply.models import Supplier
from tests.helpers import T0


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
            scenario="<script>alert(1)</script>", scenario_digest="0", sim_start=T0, sim_end=T0,
            sim_now=T0, started_at=T0,
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


def test_a_finished_drill_serves_its_report_and_map(client, app, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text(
        '{"drill": {"title": "t", "sim_start": "", "sim_end": ""}, "incident": {"id": 1,'
        ' "title": "t", "level_changes": []}, "duties": {"assigned": 0, "confirmed": 0,'
        ' "overdue": 0, "escalated": 0}, "shortfall": [], "timeline": []}',
        encoding="utf-8",
    )
    (out / "map.html").write_text("<html>map</html>", encoding="utf-8")
    run = DrillRun(
        scenario="s", scenario_digest="0", sim_start=T0, sim_end=T0, sim_now=T0, started_at=T0,
        status="finished", out_dir=str(out),
    )
    db.session.add(run)
    db.session.commit()

    assert client.get(f"/drills/{run.id}/report").status_code == 200
    assert client.get(f"/drills/{run.id}/map").get_data(as_text=True) == "<html>map</html>"
    assert db.session.get(Supplier, 1) is None
