"""The trace of what reached a demand point: its batches, suppliers, samples and tests in
a constant number of queries, over the CLI, the API and a page; and the trace a suspected
poisoning at the point attaches, holding its samples once."""

import json
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from app.extensions import db
from app.incidents.models import Incident, TimelineEntry
from app.process.response import report_suspected_poisoning
from app.process.services import latest_plan
from app.supply.allocation import Rules
from app.supply.models import AllocationRun, Batch, DemandPoint, Supplier, SupplyTask
from app.supply.services import (
    accept_task,
    allocate_meal,
    deliver_batch,
    demand_point_by_code,
    dispatch_batch,
    finish_cooking,
    start_batch,
)
from app.techsupport.models import RapidTest, RetainedSample, SampleHold
from app.techsupport.services import record_rapid_test, retain_samples
from app.techsupport.trace import trace_demand_point
from app.types import utcnow
from tests.helpers import T0, bearer, incident, make_user, open_shelters, sign_in

NASTY = 'Wang "Ji" <script>alert(1)</script> 王记'
POINT = "ZH-SH-01"


def _supplier(code="T-SUP-1", name="测试厨房", risk_colour="yellow"):
    supplier = Supplier(code=code, name=name, type="restaurant", lat=29.95, lon=121.71,
                        rating="A", risk_colour=risk_colour)  # fmt: skip
    db.session.add(supplier)
    db.session.flush()
    return supplier


def _run(found, at):
    run = AllocationRun(incident_id=found.id, meal="lunch", serve_at=at, trigger="test",
                        method="test", cost=0, demand_meals=0, allocated_meals=0, shortfall=[],
                        solved_at=at)  # fmt: skip
    db.session.add(run)
    db.session.flush()
    return run


def _batch(run, supplier, point, delivered_at, *, status="delivered", flag=None, samples=()):
    """A batch delivered at `delivered_at`, with one retained sample per dish named."""
    task = SupplyTask(key=uuid.uuid4().hex, incident_id=run.incident_id, allocation_run_id=run.id,
                      supplier_id=supplier.id, demand_point_id=point.id, meal="lunch",
                      serve_at=delivered_at, meals=100, by_diet={"regular": 100},
                      travel_minutes=20, status="delivered",
                      created_at=delivered_at - timedelta(hours=3))  # fmt: skip
    db.session.add(task)
    db.session.flush()
    batch = Batch(supply_task_id=task.id, supplier_id=supplier.id, demand_point_id=point.id,
                  meal="lunch", meals=100, dishes=list(samples) or ["米饭"],
                  cooked_at=delivered_at - timedelta(hours=1),
                  left_at=delivered_at - timedelta(minutes=40), delivered_at=delivered_at,
                  dispatch_temp_c=70.0, arrival_temp_c=65.5, status=status,
                  flag=flag)  # fmt: skip
    db.session.add(batch)
    db.session.flush()
    for dish in samples:
        db.session.add(
            RetainedSample(
                batch_id=batch.id,
                dish=dish,
                grams=150,
                kept_at="留样柜1",
                retained_at=batch.cooked_at,
                keep_until=batch.cooked_at + timedelta(hours=48),
            )  # fmt: skip
        )
    db.session.flush()
    return batch


def _test(batch, *, sample=None, passed=True, at=None):
    test = RapidTest(incident_id=batch.supply_task.incident_id, supplier_id=batch.supplier_id,
                     batch_id=batch.id if sample is None else None,
                     sample_id=sample.id if sample is not None else None, analyte="亚硝酸盐",
                     method="快检", value=3.0 if passed else 45.0, limit=30.0, unit="mg/kg",
                     passed=passed, tested_by="inspector",
                     tested_at=at or batch.delivered_at)  # fmt: skip
    db.session.add(test)
    db.session.flush()
    return test


def _samples(batch):
    return db.session.scalars(
        select(RetainedSample).filter_by(batch_id=batch.id).order_by(RetainedSample.id)
    ).all()


def _point(code=POINT):
    return demand_point_by_code(code)


@contextmanager
def _counted():
    """Count the statements the database is sent inside the block."""
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_trace_lists_batches_oldest_first_with_supplier_samples_and_tests(region):
    found = incident(drill=False)
    run = _run(found, T0)
    supplier = _supplier(risk_colour="orange")
    point = _point()
    later = _batch(run, supplier, point, T0 + timedelta(hours=6), samples=["米饭", "红烧肉"])
    earlier = _batch(run, supplier, point, T0 + timedelta(hours=1), samples=["青菜"])
    rice, pork = _samples(later)
    on_sample = _test(later, sample=pork, passed=False)
    on_batch = _test(later)
    db.session.commit()

    trace = trace_demand_point(point)

    assert trace["demand_point"] == {"id": point.id, "code": POINT, "name": point.name}
    assert trace["from"] is None and trace["to"] is None
    assert [b["id"] for b in trace["batches"]] == [earlier.id, later.id]
    last = trace["batches"][1]
    assert last["supplier"] == {"id": supplier.id, "code": "T-SUP-1", "name": "测试厨房",
                                "risk_colour": "orange"}  # fmt: skip
    assert last["delivered_at"] == "2026-09-14T06:00:00Z"
    assert last["cooked_at"] == "2026-09-14T05:00:00Z" and last["left_at"] == "2026-09-14T05:20:00Z"
    assert last["dispatch_temp_c"] == 70.0 and last["arrival_temp_c"] == 65.5
    assert last["incident"] == found.id and last["drill"] is False
    assert [s["dish"] for s in last["samples"]] == ["米饭", "红烧肉"]
    assert last["samples"][0]["tests"] == []
    assert last["samples"][0]["keep_until"] == "2026-09-16T05:00:00Z"
    assert last["samples"][0]["held"] is False and last["samples"][0]["discarded_at"] is None
    [failed] = last["samples"][1]["tests"]
    assert failed["id"] == on_sample.id and failed["passed"] is False and failed["value"] == 45.0
    assert failed["kind"] == "rapid" and failed["tested_at"] == "2026-09-14T06:00:00Z"
    assert [t["id"] for t in last["tests"]] == [on_batch.id]
    assert rice.id == last["samples"][0]["id"]
    json.dumps(trace)  # JSON-ready as it is


def test_a_batch_through_the_services_is_traced(region):
    """Cooked, sampled, dispatched and delivered as a kitchen reports it."""
    found = incident(drill=True)
    open_shelters(found, {POINT: 800})
    _, tasks = allocate_meal(found, "lunch", T0 + timedelta(hours=4), T0)
    task = next(t for t in tasks if t.demand_point.code == POINT)
    accept_task(task, T0)
    batch = start_batch(task, dishes=["米饭", "番茄炒蛋"], at=T0)
    finish_cooking(batch, T0 + timedelta(minutes=50))
    samples = retain_samples(batch, at=T0 + timedelta(minutes=55), kept_at="冷藏", grams=150)
    dispatch_batch(batch, at=T0 + timedelta(minutes=60), temp_c=72.0)
    rules = Rules.from_settings(found.plan.settings)
    deliver_batch(batch, at=T0 + timedelta(minutes=90), temp_c=66.0, rules=rules)
    record_rapid_test(supplier=task.supplier, incident=found, analyte="农药残留", method="酶抑制",
                      value=10.0, limit=50.0, unit="%", tested_by="inspector",
                      at=T0 + timedelta(minutes=95), sample=samples[1])  # fmt: skip
    db.session.commit()

    [traced] = trace_demand_point(task.demand_point)["batches"]

    assert traced["id"] == batch.id and traced["drill"] is True
    assert traced["status"] == "delivered" and traced["arrival_temp_c"] == 66.0
    assert [len(s["tests"]) for s in traced["samples"]] == [0, 1]


def test_the_window_is_inclusive_at_both_ends_and_open_without_one(region):
    found = incident(drill=False)
    run = _run(found, T0)
    supplier, point = _supplier(), _point()
    ids = [_batch(run, supplier, point, T0 + timedelta(hours=h)).id for h in (0, 1, 2, 3)]
    db.session.commit()

    def traced(start=None, end=None):
        return [b["id"] for b in trace_demand_point(point, start, end)["batches"]]

    assert traced() == ids
    assert traced(T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == ids[1:3]
    assert traced(T0 + timedelta(hours=1), T0 + timedelta(hours=1)) == [ids[1]]
    assert traced(T0 + timedelta(hours=2)) == ids[2:]
    assert traced(None, T0 + timedelta(minutes=59)) == ids[:1]
    window = trace_demand_point(point, T0, T0 + timedelta(hours=1))
    assert window["from"] == "2026-09-14T00:00:00Z" and window["to"] == "2026-09-14T01:00:00Z"


def test_drill_records_are_included_and_marked(region):
    real, drill = incident(drill=False), incident(drill=True)
    supplier, point = _supplier(), _point()
    _batch(_run(drill, T0), supplier, point, T0 + timedelta(hours=2))
    _batch(_run(real, T0), supplier, point, T0 + timedelta(hours=1))
    db.session.commit()

    batches = trace_demand_point(point)["batches"]

    assert [(b["incident"], b["drill"]) for b in batches] == [(real.id, False), (drill.id, True)]


def test_flagged_batches_are_included_and_batches_not_delivered_are_not(region):
    found = incident(drill=False)
    run = _run(found, T0)
    supplier, point = _supplier(), _point()
    flagged = _batch(run, supplier, point, T0, status="flagged", flag="holding rule broken")
    on_the_road = _batch(run, supplier, point, T0)
    on_the_road.delivered_at, on_the_road.status = None, "in_transit"
    elsewhere = _batch(run, supplier, _point("ZH-SH-02"), T0)
    db.session.commit()

    batches = trace_demand_point(point)["batches"]

    assert [(b["id"], b["status"], b["flag"]) for b in batches] == [
        (flagged.id, "flagged", "holding rule broken")
    ]
    assert elsewhere.id not in {b["id"] for b in batches}


def test_held_and_discarded_samples_are_shown_as_such(region):
    found = incident(drill=False)
    batch = _batch(_run(found, T0), _supplier(), _point(), T0, samples=["米饭", "青菜", "汤"])
    held, released, discarded = _samples(batch)
    db.session.add(SampleHold(sample_id=held.id, incident_id=found.id, reason="r", held_at=T0))
    db.session.add(SampleHold(sample_id=released.id, incident_id=found.id, reason="r",
                              held_at=T0, released_at=T0 + timedelta(hours=1)))  # fmt: skip
    discarded.discarded_at = T0 + timedelta(hours=50)
    db.session.commit()

    [traced] = trace_demand_point(_point())["batches"]

    assert [s["held"] for s in traced["samples"]] == [True, False, False]
    assert traced["samples"][2]["discarded_at"] == "2026-09-16T02:00:00Z"


def test_a_naive_or_backwards_window_is_refused(region):
    from app.errors import InvalidInput

    point = _point()
    with pytest.raises(InvalidInput) as naive:
        trace_demand_point(point, T0.replace(tzinfo=None))
    with pytest.raises(InvalidInput) as backwards:
        trace_demand_point(point, T0 + timedelta(hours=1), T0)

    assert "from" in naive.value.errors and "from" in backwards.value.errors


def test_the_trace_takes_the_same_few_queries_for_three_or_three_hundred_batches(region):
    """No query per batch, sample or test: a busy shelter traces as fast as a quiet one."""
    found = incident(drill=False)
    run = _run(found, T0)
    supplier, other = _supplier(), _supplier("T-SUP-2", "另一家")
    quiet, busy = _point("ZH-SH-02"), _point()
    for n in range(3):
        _test(_batch(run, supplier, quiet, T0 + timedelta(minutes=n), samples=["米饭"]))
    for n in range(300):
        batch = _batch(run, (supplier, other)[n % 2], busy, T0 + timedelta(minutes=n),
                       samples=["米饭", "青菜"])  # fmt: skip
        _test(batch, sample=_samples(batch)[0])
        _test(batch)
    db.session.commit()

    def traced(point):
        db.session.expire_all()
        db.session.refresh(point)  # the point itself is the caller's, loaded before
        with _counted() as statements:
            trace = trace_demand_point(point)
        return trace, [s for s in statements if s.lstrip().upper().startswith("SELECT")]

    small, few = traced(quiet)
    large, many = traced(busy)

    assert len(small["batches"]) == 3 and len(large["batches"]) == 300
    assert sum(len(s["tests"]) for b in large["batches"] for s in b["samples"]) == 300
    assert sum(len(b["tests"]) for b in large["batches"]) == 300
    assert len(many) == len(few) <= 3, many


# The command line ---------------------------------------------------------------------


def _invoke(app, *args):
    return app.test_cli_runner().invoke(args=["trace", *args])


def test_the_command_prints_the_trace_as_one_json_line(app, region):
    found = incident(drill=False)
    point = _point()
    batch = _batch(_run(found, T0), _supplier(), point, T0 + timedelta(hours=1), samples=["米饭"])
    _batch(_run(found, T0), _supplier("T-SUP-2"), point, T0 + timedelta(hours=5))
    db.session.commit()

    whole = _invoke(app, "--demand-point", str(point.id))
    window = _invoke(app, "--demand-point", str(point.id), "--from", "2026-09-14T08:00:00+08:00",
                     "--to", "2026-09-14T01:00:00Z")  # fmt: skip

    assert whole.exit_code == 0, whole.stderr
    assert len(json.loads(whole.stdout.splitlines()[-1])["batches"]) == 2
    assert window.exit_code == 0, window.stderr
    answer = json.loads(window.stdout.splitlines()[-1])
    assert [b["id"] for b in answer["batches"]] == [batch.id]
    assert answer["from"] == "2026-09-14T00:00:00Z" and answer["to"] == "2026-09-14T01:00:00Z"


@pytest.mark.parametrize(
    "args, option",
    [
        (["--demand-point", "0"], "--demand-point"),
        (["--demand-point", "-3"], "--demand-point"),
        (["--demand-point", "abc"], "--demand-point"),
        (["--demand-point", "１"], "--demand-point"),
        (["--demand-point", "99999999999"], "--demand-point"),
        (["--demand-point", "999999"], "--demand-point"),
        (["--demand-point", "{point}", "--from", "2026-09-14T08:00:00"], "--from"),
        (["--demand-point", "{point}", "--to", "yesterday"], "--to"),
        (
            [
                "--demand-point",
                "{point}",
                "--from",
                "2026-09-14T02:00:00Z",
                "--to",
                "2026-09-14T01:00:00Z",
            ],
            "--from",
        ),  # fmt: skip
    ],
)
def test_the_command_refuses_bad_input_naming_the_option(app, region, args, option):
    point = _point()
    result = _invoke(app, *[a.replace("{point}", str(point.id)) for a in args])

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert option in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_command_needs_a_demand_point(app, region):
    result = _invoke(app)

    assert result.exit_code == 2 and "--demand-point" in result.stderr


def test_the_command_as_a_process_prints_one_json_line_and_logs_to_stderr(app, region,
                                                                          database_url,
                                                                          redis_url):  # fmt: skip
    """As an operator runs it: a separate process on the same database."""
    found = incident(drill=False)
    point = _point()
    batch = _batch(_run(found, T0), _supplier(name=NASTY), point, T0, samples=["米饭"])
    point_id, batch_id = point.id, batch.id
    db.session.commit()  # on SQLite a transaction left open would hold the write lock
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "BAOGONG_LOG_LEVEL": "INFO"}  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "trace", "--demand-point", str(point_id)],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    answer = json.loads(line)
    assert [b["id"] for b in answer["batches"]] == [batch_id]
    assert answer["batches"][0]["supplier"]["name"] == NASTY
    assert f"demand point {POINT}: traced 1 batches" in result.stderr


# The API ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["commander", "liaison", "inspector", "drill_controller",
                                  "viewer"])  # fmt: skip
def test_signed_in_staff_read_the_trace_over_the_api(client, region, role):
    found = incident(drill=False)
    point = _point()
    batch = _batch(_run(found, T0), _supplier(), point, T0, samples=["米饭"])
    db.session.commit()
    department = {"liaison": "commerce", "commander": "government"}.get(role)
    _, token = make_user(role, department=department)

    answer = client.get(f"/api/demand-points/{point.id}/trace", headers=bearer(token))

    assert answer.status_code == 200, answer.json
    assert [b["id"] for b in answer.json["batches"]] == [batch.id]
    assert answer.json["batches"][0]["samples"][0]["dish"] == "米饭"


def test_a_supplier_user_or_nobody_may_not_read_the_trace(client, region):
    supplier = _supplier()
    db.session.commit()
    _, token = make_user("supplier", supplier=supplier.code)
    point = _point()

    assert client.get(f"/api/demand-points/{point.id}/trace", headers=bearer(token)).status_code \
        == 403  # fmt: skip
    assert client.get(f"/api/demand-points/{point.id}/trace").status_code == 401


def test_the_api_filters_by_window_and_refuses_bad_query_fields(client, region):
    found = incident(drill=False)
    point = _point()
    run, supplier = _run(found, T0), _supplier()
    first = _batch(run, supplier, point, T0)
    _batch(run, supplier, point, T0 + timedelta(hours=2))
    db.session.commit()
    _, token = make_user("viewer")
    url = f"/api/demand-points/{point.id}/trace"

    window = client.get(url, query_string={"from": "2026-09-14T08:00:00+08:00",
                                           "to": "2026-09-14T09:00:00+08:00"},
                        headers=bearer(token))  # fmt: skip
    assert window.status_code == 200 and [b["id"] for b in window.json["batches"]] == [first.id]
    assert window.json["from"] == "2026-09-14T00:00:00Z"

    for query, field in (
        ("from=2026-09-14T08:00:00", "from"),
        ("to=soon", "to"),
        ("from=2026-09-14T03:00:00Z&to=2026-09-14T01:00:00Z", "from"),
        ("from=2026-09-14T01:00:00Z&from=2026-09-14T02:00:00Z", "from"),
        ("since=2026-09-14T01:00:00Z", "since"),
        ("from=3026-09-14T01:00:00Z", "from"),
    ):
        refused = client.get(f"{url}?{query}", headers=bearer(token))
        assert refused.status_code == 422, query
        assert field in str(refused.json["errors"]), (query, refused.json)
    assert client.get("/api/demand-points/999999/trace", headers=bearer(token)).status_code == 404
    assert client.get("/api/demand-points/0/trace", headers=bearer(token)).status_code == 404


# The page -----------------------------------------------------------------------------


def _signed_in(client, role="viewer", **kwargs):
    user, _ = make_user(role, password="pw-trace-page-1234", **kwargs)
    sign_in(client, user.username, "pw-trace-page-1234")
    from flask_babel import refresh

    refresh()  # the language of the sign-in page is not kept for the next request
    return user


def _traced_point():
    found = incident(drill=True)
    run = _run(found, T0)
    point = _point()
    nasty = _supplier(name=NASTY, risk_colour="red")
    batch = _batch(run, nasty, point, T0 + timedelta(hours=1), samples=["米饭", "青菜"])
    _test(batch, sample=_samples(batch)[0], passed=False)
    _batch(run, _supplier("T-SUP-2"), point, T0 + timedelta(hours=3), status="flagged",
           flag="holding rule broken")  # fmt: skip
    db.session.commit()
    return point


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_trace_page_shows_batches_with_user_text_literally(client, region, lang):
    point = _traced_point()
    _signed_in(client)

    page = client.get(f"/demand-points/{point.id}/trace" + ("?lang=en" if lang == "en" else ""))
    text = page.get_data(as_text=True)

    assert page.status_code == 200
    assert ('lang="en"' if lang == "en" else 'lang="zh-CN"') in text
    assert "<script>alert(1)</script>" not in text
    assert "Wang &#34;Ji&#34; &lt;script&gt;alert(1)&lt;/script&gt; 王记" in text
    assert 'class="risk risk-red"' in text
    assert 'class="failed"' in text and 'class="flagged"' in text
    assert "2026-09-14 09:00" in text  # delivered 01:00 UTC, shown in Asia/Shanghai
    assert 'class="drill"' in text
    if lang == "en":
        assert "Retained samples" in text and "flagged, not served" in text
    else:
        assert "状态" in text and "演练" in text


def test_the_trace_page_filters_by_local_time_and_refuses_a_backwards_window(client, region):
    point = _traced_point()
    _signed_in(client)
    url = f"/demand-points/{point.id}/trace?lang=en"

    window = client.get(url + "&start=2026-09-14T10:00&end=2026-09-14T12:00")
    backwards = client.get(url + "&start=2026-09-14T12:00&end=2026-09-14T10:00")
    garbage = client.get(url + "&start=soon")

    assert window.status_code == 200
    assert "Wang" not in window.get_data(as_text=True)
    assert "holding rule broken" in window.get_data(as_text=True)
    assert backwards.status_code == 422 and garbage.status_code == 422
    assert "holding rule broken" not in backwards.get_data(as_text=True)


def test_a_supplier_user_may_not_open_the_trace_page(client, region):
    point = _traced_point()
    _signed_in(client, "supplier", supplier="T-SUP-2")

    assert client.get(f"/demand-points/{point.id}/trace").status_code == 403


def test_the_supply_page_links_each_demand_point_to_its_trace(client, region):
    point = _point()

    page = client.get("/supply").get_data(as_text=True)

    assert f'href="/demand-points/{point.id}/trace"' in page


# A suspected poisoning attaches the trace ---------------------------------------------


def _delivered_before_now(point):
    """Real and drill batches at the point, in and out of the 72 hours before now; returns
    (real batch in the window, its samples)."""
    now = utcnow()
    real, drill = incident(drill=False), incident(drill=True)
    supplier = _supplier(name=NASTY, risk_colour="red")
    run = _run(real, now)
    recent = _batch(run, supplier, point, now - timedelta(hours=5), samples=["米饭", "青菜"])
    thrown = _batch(run, supplier, point, now - timedelta(hours=60), samples=["汤"])
    _samples(thrown)[0].discarded_at = now - timedelta(hours=6)
    _batch(run, supplier, point, now - timedelta(hours=100), samples=["面条"])
    _batch(_run(drill, now), supplier, point, now - timedelta(hours=4), samples=["包子"])
    db.session.commit()
    return recent, thrown


def _holds():
    return db.session.scalars(select(SampleHold).order_by(SampleHold.id)).all()


def test_a_report_at_a_point_attaches_its_trace_and_holds_samples_once(client, region):
    point = _point()
    recent, thrown = _delivered_before_now(point)
    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "安置点疑似食物中毒", "harmed": 12, "demand_point": POINT}

    first = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))
    again = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))

    assert first.status_code == 201, first.json
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    trace = first.json["trace"]
    assert trace["hours"] == 72
    assert [b["id"] for b in trace["batches"]] == [thrown.id, recent.id]  # real ones, 72 h
    assert all(not b["drill"] for b in trace["batches"])
    holds = _holds()
    assert sorted(h.sample_id for h in holds) == [s.id for s in _samples(recent)]
    assert {h.incident_id for h in holds} == {first.json["id"]}
    assert all(s["held"] for s in trace["batches"][1]["samples"])
    assert trace["batches"][0]["samples"][0]["held"] is False  # discarded before the report
    entries = db.session.scalars(
        select(TimelineEntry).filter_by(incident_id=first.json["id"], event="trace_attached")
    ).all()
    assert len(entries) == 1 and "2 samples held" in entries[0].detail

    _, viewer = make_user("viewer")
    attached = client.get(f"/api/incidents/{first.json['id']}/trace", headers=bearer(viewer))
    assert attached.status_code == 200
    assert attached.json["trace"]["batches"][1]["supplier"]["name"] == NASTY
    assert [h["sample_id"] for h in attached.json["holds"]] == [h.sample_id for h in holds]


def test_a_report_without_a_demand_point_attaches_nothing(client, region):
    _delivered_before_now(_point())
    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "某小区疑似食物中毒", "harmed": 5, "place": "某小区"}

    answer = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))

    assert answer.status_code == 201 and answer.json["trace"] is None
    assert _holds() == []
    assert db.session.get(Incident, answer.json["id"]).trace is None


def test_a_drill_poisoning_traces_its_own_run_and_holds_for_the_drill_incident(region):
    drill, real = incident(drill=True), incident(drill=False)
    point = _point()
    supplier = _supplier()
    drilled = _batch(_run(drill, T0), supplier, point, T0 - timedelta(hours=2), samples=["米饭"])
    _batch(_run(real, T0), supplier, point, T0 - timedelta(hours=1), samples=["青菜"])
    other_run = incident(drill=True)
    _batch(_run(other_run, T0), supplier, point, T0 - timedelta(hours=1), samples=["汤"])
    db.session.commit()
    from app.drills.models import DrillRun

    run = db.session.get(DrillRun, drill.drill_run_id)
    plan = latest_plan("zhenhai-catering-supply")

    reported = report_suspected_poisoning(plan, at=T0, title="演练：疑似中毒",
                                          figures={"harmed": 8}, demand_point=point,
                                          drill_run=run)  # fmt: skip
    db.session.commit()

    assert reported.drill
    assert [b["id"] for b in reported.trace["batches"]] == [drilled.id]
    [hold] = _holds()
    assert hold.incident_id == reported.id and hold.sample_id == _samples(drilled)[0].id


def test_a_sample_held_for_one_incident_is_held_for_the_next_too(region):
    point = _point()
    found = incident(drill=False)
    batch = _batch(_run(found, T0), _supplier(), point, utcnow() - timedelta(hours=1),
                   samples=["米饭"])  # fmt: skip
    db.session.commit()
    plan = latest_plan("zhenhai-catering-supply")

    one = report_suspected_poisoning(plan, at=utcnow(), title="第一起", figures={"harmed": 3},
                                     demand_point=point)  # fmt: skip
    two = report_suspected_poisoning(plan, at=utcnow(), title="第二起", figures={"harmed": 4},
                                     demand_point=point)  # fmt: skip
    db.session.commit()

    assert {(h.sample_id, h.incident_id) for h in _holds()} == {
        (_samples(batch)[0].id, one.id),
        (_samples(batch)[0].id, two.id),
    }
    assert db.session.scalar(select(func.count(SampleHold.id))) == 2


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_incident_page_shows_the_attached_trace(client, region, lang):
    point = _point()
    _delivered_before_now(point)
    plan = latest_plan("zhenhai-catering-supply")
    reported = report_suspected_poisoning(plan, at=utcnow(), title="疑似中毒",
                                          figures={"harmed": 3}, demand_point=point)  # fmt: skip
    db.session.commit()
    _signed_in(client)

    page = client.get(f"/incidents/{reported.id}" + ("?lang=en" if lang == "en" else ""))
    text = page.get_data(as_text=True)

    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in text
    assert "Wang &#34;Ji&#34; &lt;script&gt;alert(1)&lt;/script&gt; 王记" in text
    assert 'class="risk risk-red"' in text and 'class="held"' in text
    if lang == "en":
        assert "held for this incident" in text and "2 samples held for this incident" in text


def test_an_incident_without_a_trace_shows_none(client, region):
    found = incident(drill=False)
    _signed_in(client)

    page = client.get(f"/incidents/{found.id}?lang=en").get_data(as_text=True)

    assert "Trace of" not in page
    assert db.session.scalar(select(func.count(DemandPoint.id))) > 0


def test_a_delivery_stamped_minutes_ahead_of_the_report_is_traced_and_held(client, region):
    """Clocks differ by a few minutes: food that reached the point is traced all the same."""
    point = _point()
    real = incident(drill=False)
    batch = _batch(_run(real, utcnow()), _supplier(), point, utcnow() + timedelta(minutes=4),
                   samples=["米饭"])  # fmt: skip
    db.session.commit()
    _, inspector = make_user("inspector", department="market_supervision")
    body = {"title": "疑似食物中毒", "harmed": 3, "demand_point": POINT}

    answer = client.post("/api/food-safety-reports", json=body, headers=bearer(inspector))

    assert answer.status_code == 201, answer.json
    assert [b["id"] for b in answer.json["trace"]["batches"]] == [batch.id]
    assert [h.sample_id for h in _holds()] == [s.id for s in _samples(batch)]
