"""Pages speak zh-CN by default and English on request; the API refuses bad queries with
422 field messages; user text shows literally."""

import os

import pytest

from app.drills.models import DrillRun
from app.extensions import db
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
