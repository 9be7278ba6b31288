"""The typhoon drill end to end through real workers, run twice: same figures, only
drill records, and a report that explains every unmet meal."""

import json
import os

from sqlalchemy import func, select

from app.drills.services import run_drill
from app.extensions import db
from app.fixtures import FIXTURES
from app.supply.models import Supplier, SupplierSuspension

SCENARIO = os.path.join(FIXTURES, "drills", "typhoon.yaml")
FIGURES = (
    "duties",
    "notifications",
    "sitreps",
    "coordination_tasks",
    "departments",
    "demand_meals",
    "allocated_meals",
    "delivered_meals",
    "unmet_meals",
    "shortfall",
    "suppliers_suspended",
    "tasks_reallocated",
    "samples",
    "tests",
    "suspensions",
)


def _supplier_rows():
    return {s.code: (s.status, s.lunch_capacity) for s in db.session.scalars(select(Supplier))}


def test_typhoon_drill_runs_end_to_end_twice(app, tmp_path):
    """One test on purpose: each run takes half a minute of real workers."""
    first, paths = run_drill(SCENARIO, str(tmp_path / "run1"))
    after_first = _supplier_rows()
    second, _ = run_drill(SCENARIO, str(tmp_path / "run2"))

    assert first["incident"]["drill"] is True
    assert first["incident"]["level"] in ("I", "II", "III", "IV")
    assert first["demand_meals"] == 50000 * 8
    assert first["delivered_meals"] > 0
    assert first["unmet_meals"] == first["demand_meals"] - first["delivered_meals"]
    assert first["unmet_meals"] == sum(row["meals"] for row in first["shortfall"])
    assert first["duties"]["escalated"] >= 1
    assert first["duties"]["overdue"] >= first["duties"]["escalated"]
    assert first["duties"]["confirmed"] == first["duties"]["assigned"]
    departments = {row["department"]: row for row in first["departments"]}
    start = "2026-09-13T22:00:00Z"
    assert set(departments) >= {"government", "market_supervision", "education", "cdc"}
    assert all(row["assigned_at"] == "2026-09-13T22:10:00Z" for row in departments.values())
    education = departments.pop("education")
    assert education["reminded_at"] and education["escalated_at"]
    assert education["reminded_at"] < education["escalated_at"] < education["confirmed_at"]
    assert education["confirmed_at"] == "2026-09-14T00:00:00Z"  # the +02:00 inject
    for row in departments.values():
        assert row["confirmed_at"] == "2026-09-13T22:25:00Z" > start, row
        assert row["reminded_at"] is None and row["escalated_at"] is None, row
    assert first["suppliers_suspended"] == 1
    assert first["tasks_reallocated"] >= 1
    # Technical support: inspectors posted at two kitchens test every batch of theirs; the
    # rapid test at +27:00 and the lab's confirmation fail, one suspension follows, and a
    # re-inspection with re-tests of both analytes reinstates the kitchen.
    tests = first["tests"]
    assert tests["failed"] == 2 and tests["lab"] == 1 and tests["run"] > 10
    assert tests["lab_requests"] == {"made": 1, "reported": 1, "late": 0}
    [suspension] = first["suspensions"]
    assert suspension["supplier"] == "ZH-SUP-001"
    assert suspension["started_at"] == "2026-09-15T01:00:00Z"  # +27:00
    assert suspension["lifted_at"] == "2026-09-15T15:00:00Z"  # +41:00
    # A sample per dish per batch; none thrown away inside its 48 hours: at +30:00 every
    # sample asked for was still counting down, at +62:00 those traced to the poisoning
    # reported at +50:00 stayed, held.
    samples = first["samples"]
    assert samples["retained"] > 0 and samples["discarded_early"] == 0
    assert samples["discard_refused"]["early"] > 0 and samples["discard_refused"]["held"] > 0
    assert samples["discarded"] > 0 and samples["held"] > 0
    [poisoning] = first["food_safety_reports"]
    assert poisoning["demand_point"] == "ZH-SH-05" and poisoning["trace_batches"] > 0
    assert poisoning["samples_held"] == samples["held"]
    events = [entry["event"] for entry in first["timeline"]]
    for event in (
        "alert_received",
        "level_suggested",
        "phase_entered",
        "plan_activated",
        "duties_reconciled",
        "duty_overdue",
        "duty_escalated",
        "point_opened",
        "allocation_solved",
        "inspector_posted",
        "rapid_test_failed",
        "supplier_suspended",
        "lab_test_failed",
        "inspection_recorded",
        "supplier_reinstated",
        "samples_discarded",
        "reallocation_solved",
        "meals_delivered",
        "sitrep_drafted",
        "sitrep_approved",
        "sitrep_issued",
        "task_created",
        "task_overdue",
        "task_escalated",
        "task_done",
        "response_ended",
    ):
        assert event in events, event
    # A report every 12 hours from activation at +00:10, each sent 20 minutes after drafting.
    assert first["sitreps"] == 5 == events.count("sitrep_issued")
    # The road-access task on time; the joint inspection late for one of its departments.
    assert first["coordination_tasks"] == {
        "created": 2,
        "done": 2,
        "overdue": 1,
        "escalated": 1,
        "open": 0,
    }
    notifications = first["notifications"]
    # SMS is not configured by the scenario: skipped, every one; the robot lost one answer,
    # so it saw one message twice; nothing failed.
    assert notifications["skipped"] > 0 and notifications["failed"] == 0
    assert notifications["duplicates"] == 1
    assert notifications["sent"] > first["tasks"]["created"]
    assert all(entry["at"].endswith("Z") for entry in first["timeline"])

    for name in ("report_json", "report_html", "map"):
        assert os.path.getsize(paths[name]) > 0
    with open(paths["report_json"], encoding="utf-8") as handle:
        assert json.load(handle)["incident"]["id"] == first["incident"]["id"]
    with open(paths["report_html"], encoding="utf-8") as handle:
        page = handle.read()
    assert "演练" in page and str(first["delivered_meals"]) in page and "map.html" in page

    # The second run starts from the same state and counts only itself.
    assert second["incident"]["id"] != first["incident"]["id"]
    assert {k: second[k] for k in FIGURES} == {k: first[k] for k in FIGURES}
    assert [dict(r, incident=None) for r in second["food_safety_reports"]] == [
        dict(r, incident=None) for r in first["food_safety_reports"]
    ]
    # Lines of one instant written by parallel workers keep one order, so reports diff.
    assert [(e["at"], e["event"]) for e in second["timeline"]] == [
        (e["at"], e["event"]) for e in first["timeline"]
    ]

    # Suspensions stayed in the drills: no supplier row changed, no live suspension.
    assert _supplier_rows() == after_first
    assert {status for status, _ in after_first.values()} == {"active"}
    live = db.session.scalar(
        select(func.count(SupplierSuspension.id)).where(SupplierSuspension.drill.is_(False))
    )
    assert live == 0
