"""The risk colour: our rule from rating, results and inspections, its scoping to drills,
the stored live colour, and where it shows."""

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from app.extensions import db
from app.supply.models import AllocationRun, Supplier
from app.supply.services import allocate_meal, supplier_by_code
from app.techsupport.models import Inspection
from app.techsupport.risk import refresh_live_colours, risk_colour, risk_colours
from app.techsupport.services import record_rapid_test
from app.types import utcnow
from tests.helpers import T0, bearer, incident, make_user, open_shelters, set_clock

LUNCH = T0 + timedelta(hours=4)


def _supplier(rating):
    """A fixture supplier of the rating, with no results or inspections yet."""
    return db.session.scalar(select(Supplier).filter_by(rating=rating).order_by(Supplier.id))


def _test(supplier, at, found=None, value=45.0):
    return record_rapid_test(supplier=supplier, incident=found, analyte="亚硝酸盐", method="快检",
                             value=value, limit=30.0, unit="mg/kg", tested_by="i",
                             at=at)  # fmt: skip


def _inspect(supplier, at, serious=0, minor=0, found=None, purpose="routine"):
    row = Inspection(supplier_id=supplier.id, incident_id=found.id if found else None,
                     inspector="i", purpose=purpose, inspected_at=at, checklist=[],
                     serious_findings=serious, minor_findings=minor,
                     passed=serious == 0)  # fmt: skip
    db.session.add(row)
    db.session.flush()
    return row


def _colour(supplier, at=T0, found=None):
    return risk_colour(supplier, found, at=at).colour


def test_the_rating_gives_the_start(region):
    assert [_colour(_supplier(r)) for r in "ABC"] == ["green", "yellow", "orange"]


def test_a_supplier_suspended_now_is_red_whatever_its_rating(region):
    a, c = _supplier("A"), _supplier("C")
    _test(a, T0, value=31)
    _test(c, T0, value=31)

    assert _colour(a, T0 + timedelta(days=29)) == "red"  # suspended now
    assert _colour(c, T0 + timedelta(days=29)) == "red"


def test_a_passed_reinspection_does_not_erase_the_failure_but_30_days_do(region):
    from app.supply.models import SupplierSuspension

    a = _supplier("A")
    _test(a, T0)
    db.session.scalar(select(SupplierSuspension)).lifted_at = T0 + timedelta(days=1)
    _inspect(a, T0 + timedelta(hours=20), purpose="reinspection")

    assert _colour(a, T0 + timedelta(days=2)) == "orange"
    assert _colour(a, T0 + timedelta(days=30, minutes=1)) == "green"
    reasons = risk_colour(a, at=T0 + timedelta(days=2)).reasons
    assert any("failed rapid test" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("rating", "serious", "minor", "colour"),
    [
        ("A", 0, 2, "yellow"),
        ("B", 0, 1, "orange"),
        ("C", 0, 3, "orange"),  # one step, never beyond orange
        ("A", 1, 0, "orange"),
        ("C", 1, 5, "orange"),
        ("A", 0, 0, "green"),
    ],
)
def test_the_latest_inspection_raises_the_colour(region, rating, serious, minor, colour):
    supplier = _supplier(rating)
    _inspect(supplier, T0 - timedelta(days=10), serious, minor)

    assert _colour(supplier) == colour


def test_an_inspection_older_than_90_days_or_followed_by_a_clean_one_counts_no_more(region):
    old, cleaned = _supplier("A"), _supplier("B")
    _inspect(old, T0 - timedelta(days=91), serious=2)
    _inspect(cleaned, T0 - timedelta(days=20), serious=1)
    _inspect(cleaned, T0 - timedelta(days=5))

    assert _colour(old) == "green" and _colour(cleaned) == "yellow"


def test_a_drills_records_colour_the_supplier_in_that_drill_only(region):
    drill, other, live = incident(drill=True), incident(drill=True), incident(drill=False)
    supplier = _supplier("A")
    _inspect(supplier, T0, serious=1, found=drill)
    db.session.commit()

    assert _colour(supplier, found=drill) == "orange"
    assert _colour(supplier, found=other) == "green"
    assert _colour(supplier, found=live) == "green" and _colour(supplier) == "green"
    assert db.session.get(Supplier, supplier.id).risk_colour == "green"


def test_real_records_count_in_every_scope(region):
    drill, live = incident(drill=True), incident(drill=False)
    supplier = _supplier("A")
    _inspect(supplier, T0, minor=1, found=live)

    assert [_colour(supplier, found=f) for f in (drill, live, None)] == ["yellow"] * 3


def test_the_stored_live_colour_follows_real_records_and_not_drills(region):
    supplier, drilled = _supplier("A"), supplier_by_code("ZH-SUP-003")
    _test(drilled, T0, found=incident(drill=True))
    _test(supplier, T0)
    db.session.commit()
    db.session.expire_all()

    assert db.session.get(Supplier, supplier.id).risk_colour == "red"
    assert drilled.rating == "A" and db.session.get(Supplier, drilled.id).risk_colour == "green"


def test_the_colours_of_every_supplier_take_a_few_queries(region):
    """The allocation asks for thousands of suppliers at once: the count must not grow."""
    suppliers = db.session.scalars(select(Supplier)).all()
    _test(suppliers[0], T0)
    _inspect(suppliers[1], T0, minor=1)
    statements = []

    def count(*args):
        statements.append(args)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        colours = risk_colours(suppliers, at=T0)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)

    assert len(colours) == len(suppliers) >= 60
    assert len(statements) <= 3
    assert colours[suppliers[0].id].colour == "red"


def test_the_allocation_takes_the_incidents_own_colours(region):
    """The same meal costs more in a drill whose inspection found its busiest kitchen at fault."""

    def plan(found):
        open_shelters(found, {"ZH-SH-01": 3960, "ZH-SH-02": 2370, "ZH-SH-05": 3960})
        run, tasks = allocate_meal(found, "lunch", LUNCH, T0)
        return run, tasks

    clean, dirty = incident(drill=True), incident(drill=True)
    run, tasks = plan(clean)
    busiest = max(tasks, key=lambda t: t.meals).supplier
    _inspect(busiest, T0 - timedelta(hours=1), serious=1, found=dirty)
    dirty_run, dirty_tasks = plan(dirty)

    assert _colour(busiest, found=dirty) == "orange" and _colour(busiest, found=clean) == "green"
    assert db.session.get(AllocationRun, dirty_run.id).cost > run.cost
    meals = [sum(t.meals for t in ts if t.supplier_id == busiest.id) for ts in (tasks, dirty_tasks)]
    assert meals[1] < meals[0]


# Where it shows


def test_the_supplier_api_gives_the_colour_and_its_reasons(app, region):
    api = app.test_client()
    supplier = _supplier("B")
    found = incident(drill=True)
    set_clock(found, T0 + timedelta(hours=1))
    _inspect(supplier, T0, minor=1, found=found)
    db.session.commit()

    row = api.get(f"/api/suppliers/{supplier.id}").get_json()
    live = api.get(f"/api/suppliers/{supplier.id}/risk").get_json()
    drilled = api.get(f"/api/suppliers/{supplier.id}/risk?incident={found.id}").get_json()
    bad = api.get(f"/api/suppliers/{supplier.id}/risk?incident=abc")
    missing = api.get("/api/suppliers/999999/risk")

    assert row["risk_colour"] == "yellow" and row["risk_reasons"] == ["rating B: starts yellow"]
    assert live["risk_colour"] == "yellow"
    assert drilled["risk_colour"] == "orange" and len(drilled["risk_reasons"]) == 2
    assert "minor finding" in drilled["risk_reasons"][1]
    assert bad.status_code == 422 and missing.status_code == 404


def test_the_colour_cannot_be_set_and_follows_a_rating_change(app, region):
    api = app.test_client()
    commander = bearer(make_user("commander")[1])
    supplier = _supplier("A")

    refused = api.patch(f"/api/suppliers/{supplier.id}", json={"risk_colour": "red"},
                        headers=commander)  # fmt: skip
    changed = api.patch(f"/api/suppliers/{supplier.id}", json={"rating": "C"}, headers=commander)
    db.session.expire_all()

    assert refused.status_code == 422 and "computed" in str(refused.get_json()["errors"])
    assert changed.status_code == 200 and changed.get_json()["risk_colour"] == "orange"
    assert db.session.get(Supplier, supplier.id).risk_colour == "orange"


def test_an_imported_colour_is_checked_and_ignored(app, region, tmp_path):
    path = tmp_path / "s.csv"
    header = "code,name,type,lat,lon,breakfast,lunch,dinner,rating,risk_colour"
    path.write_text(f"{header}\nZH-SUP-900,新厨房,canteen,29.96,121.70,1,1,1,A,红\n")
    runner = app.test_cli_runner()

    created = runner.invoke(args=["supply", "import", str(path), "--kind", "suppliers"])
    path.write_text(f"{header}\nZH-SUP-900,新厨房,canteen,29.96,121.70,1,1,1,A,紫\n")
    refused = runner.invoke(args=["supply", "import", str(path), "--kind", "suppliers"])
    path.write_text(f"{header.rsplit(',', 1)[0]}\nZH-SUP-901,厨房,canteen,29.96,121.70,1,1,1,C\n")
    without = runner.invoke(args=["supply", "import", str(path), "--kind", "suppliers"])

    assert created.exit_code == 0 and refused.exit_code == 2 and without.exit_code == 0
    assert "risk_colour" in refused.stderr
    assert supplier_by_code("ZH-SUP-900").risk_colour == "green"
    assert supplier_by_code("ZH-SUP-901").risk_colour == "orange"


def test_a_rating_changed_by_import_keeps_the_evidence(app, region, tmp_path):
    supplier = _supplier("A")
    _test(supplier, utcnow() - timedelta(days=1), value=31)
    db.session.commit()
    path = tmp_path / "s.csv"
    app.test_cli_runner().invoke(args=["supply", "export", str(path), "--kind", "suppliers"])
    text = path.read_text(encoding="utf-8-sig")

    again = app.test_cli_runner().invoke(args=["supply", "import", str(path), "--kind",
                                               "suppliers"])  # fmt: skip

    assert f"{supplier.code}," in text and ",A,red," in text
    assert again.exit_code == 0 and '"updated": 0' in again.stdout
    assert db.session.get(Supplier, supplier.id).risk_colour == "red"


def test_badges_show_on_the_supply_page(client, region):
    page = client.get("/supply?lang=en").get_data(as_text=True)

    assert 'class="risk risk-green"' in page and 'class="risk risk-orange"' in page


def test_a_drill_report_page_lists_its_suspensions_with_the_drills_colour(app, region):
    from flask import render_template

    found = incident(drill=True)
    supplier = _supplier("A")
    _test(supplier, T0, found=found)
    db.session.commit()
    report = {"drill": {"title": "演练", "sim_start": None, "sim_end": None},
              "incident": {"id": found.id, "title": "t", "level_changes": []},
              "duties": {}, "timeline": [], "shortfall": []}  # fmt: skip

    with app.test_request_context("/?lang=en"):
        page = render_template("drills/report.html", report=report, map_href="map.html")

    assert "Suppliers suspended" in page and 'class="risk risk-red"' in page
    assert supplier.code in page
    assert db.session.get(Supplier, supplier.id).risk_colour == "green"


def test_refreshing_every_live_colour_writes_only_what_changed(region):
    supplier = _supplier("A")
    supplier.risk_colour = "red"  # stale

    changed = refresh_live_colours(at=T0)

    assert changed == [supplier] and supplier.risk_colour == "green"


def test_a_backdated_result_leaves_the_stored_colour_as_it_stands_now(region):
    """The stored colour is the colour now, even when a record is dated days back."""
    supplier = _supplier("A")
    _test(supplier, utcnow())
    assert supplier.risk_colour == "red"

    _test(supplier, utcnow() - timedelta(days=2), value=1.0)

    assert supplier.risk_colour == "red" == _colour(supplier, utcnow())
