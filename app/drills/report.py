"""The report of a drill run: figures from the database for that run's incident only."""

import json
from collections import defaultdict

from sqlalchemy import exists, func, or_, select

from app.clock.services import now as clock_now
from app.coordination.sitreps import sitreps_issued
from app.coordination.tasks import task_figures
from app.duties.matrix import department_summary
from app.duties.models import DutyAssignment
from app.extensions import db
from app.incidents.models import Incident, LevelChange, TimelineEntry
from app.supply.models import (
    DELIVERED_TASK_STATUSES,
    AllocationRun,
    Batch,
    DemandPoint,
    MealDemand,
    Supplier,
    SupplierSuspension,
    SupplyTask,
)
from app.supply.services import incident_figures
from app.techsupport.models import LabRequest, RapidTest, RetainedSample, SampleHold
from app.types import isoformat_utc


def _count(query):
    return int(db.session.scalar(query) or 0)


def duty_figures(incident):
    base = select(func.count(DutyAssignment.id)).filter_by(incident_id=incident.id)
    return {
        "assigned": _count(base),
        "confirmed": _count(base.where(DutyAssignment.confirmed_at.is_not(None))),
        "overdue": _count(base.where(DutyAssignment.overdue_at.is_not(None))),
        "escalated": _count(base.where(DutyAssignment.escalated_at.is_not(None))),
    }


def shortfall(incident):
    """Every point and meal where fewer meals were delivered than needed, by diet, with
    the reason the allocation gave (or why a task fell through)."""
    delivered = defaultdict(lambda: defaultdict(int))
    cancelled = {}
    for task in db.session.scalars(select(SupplyTask).filter_by(incident_id=incident.id)):
        key = (task.demand_point_id, task.serve_at)
        if task.status in DELIVERED_TASK_STATUSES:
            for diet, meals in task.by_diet.items():
                delivered[key][diet] += meals
        elif task.status == "cancelled" and task.cancel_reason:
            cancelled[key] = task.cancel_reason
    reasons = {}
    for run in db.session.scalars(
        select(AllocationRun).filter_by(incident_id=incident.id).order_by(AllocationRun.id)
    ):
        for entry in run.shortfall:
            reasons[(entry["point"], entry["serve_at"], entry["diet"])] = entry["reason"]

    rows = []
    demands = db.session.scalars(
        select(MealDemand)
        .filter_by(incident_id=incident.id)
        .order_by(MealDemand.serve_at, MealDemand.demand_point_id)
    )
    for demand in demands:
        key = (demand.demand_point_id, demand.serve_at)
        missing = {
            diet: meals - delivered[key][diet]
            for diet, meals in demand.by_diet.items()
            if meals > delivered[key][diet]
        }
        if not missing:
            continue
        point, serve_at = demand.demand_point, isoformat_utc(demand.serve_at)
        why = {
            diet: reasons.get((point.code, serve_at, diet))
            or cancelled.get(key)
            or "not delivered by the end of the drill"
            for diet in missing
        }
        rows.append(
            {
                "point": point.code,
                "point_name": point.name,
                "meal": demand.meal,
                "serve_at": serve_at,
                "meals": sum(missing.values()),
                "by_diet": missing,
                "reason": "; ".join(f"{diet}: {text}" for diet, text in sorted(why.items())),
            }
        )
    return rows


def build_report(run, incident, scenario, receivers=(), refused=None):
    """Everything the drill controller scores, as plain JSON-ready data; `receivers` are
    the local receivers the run sent to, which count the repeats they saw; `refused` the
    sample discards the rules refused, by why."""
    from app.coordination.delivery import notification_figures

    figures = incident_figures(incident)
    activation = db.session.scalar(
        select(LevelChange)
        .filter_by(incident_id=incident.id, from_level=None)
        .order_by(LevelChange.id)
        .limit(1)
    )
    tasks = select(func.count(SupplyTask.id)).filter_by(incident_id=incident.id)
    reallocated = _count(
        tasks.where(
            SupplyTask.status == "cancelled", SupplyTask.cancel_reason.like("supplier suspended%")
        )
    )
    return {
        "drill": {
            "run_id": run.id,
            "scenario": scenario.name,
            "title": scenario.title,
            "title_en": scenario.data.get("title_en"),
            "sim_start": isoformat_utc(run.sim_start),
            "sim_end": isoformat_utc(run.sim_end),
        },
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "level": activation.to_level if activation else None,
            "suggested_level": incident.suggested_level,
            "suggested_rule": incident.suggested_rule,
            "drill": incident.drill,
            "status": incident.status,
            "level_changes": [
                {
                    "at": isoformat_utc(c.at),
                    "from": c.from_level,
                    "to": c.to_level,
                    "reason": c.reason,
                }
                for c in incident.level_changes
            ],
        },
        "duties": duty_figures(incident),
        "departments": department_summary(incident),
        **{k: figures[k] for k in ("demand_meals", "allocated_meals", "delivered_meals")},
        "unmet_meals": figures["unmet_meals"],
        "shortfall": shortfall(incident),
        "suppliers_suspended": figures["suppliers_suspended"],
        "tasks_reallocated": reallocated,
        "tasks": {
            "created": _count(tasks),
            "delivered": _count(tasks.where(SupplyTask.status.in_(DELIVERED_TASK_STATUSES))),
            "cancelled": _count(tasks.where(SupplyTask.status == "cancelled")),
        },
        "samples": sample_figures(incident, refused),
        "tests": test_figures(incident),
        "suspensions": suspension_figures(incident),
        "food_safety_reports": food_safety_reports(run, incident),
        "notifications": notification_figures(incident, receivers),
        "sitreps": sitreps_issued(incident),
        "coordination_tasks": task_figures(incident),
        "timeline": [
            {"at": isoformat_utc(e.at), "event": e.event, "detail": e.detail}
            for e in db.session.scalars(
                select(TimelineEntry)
                .filter_by(incident_id=incident.id)
                .order_by(TimelineEntry.at, TimelineEntry.origin, TimelineEntry.id)
            )
        ],
    }


def sample_figures(incident, refused=None):
    """Samples retained for the incident's batches, and those discarded; `discarded_early`
    counts any discarded before its countdown ended, which the rules refuse; `held` those
    kept for a food-safety incident now; `discard_refused` the kitchens' requests the
    rules turned down, by why."""
    samples = (
        select(func.count(RetainedSample.id))
        .join(Batch, RetainedSample.batch_id == Batch.id)
        .join(SupplyTask, Batch.supply_task_id == SupplyTask.id)
        .where(SupplyTask.incident_id == incident.id)
    )
    discarded = samples.where(RetainedSample.discarded_at.is_not(None))
    held = samples.where(
        exists().where(SampleHold.sample_id == RetainedSample.id, SampleHold.released_at.is_(None))
    )
    return {
        "retained": _count(samples),
        "discarded": _count(discarded),
        "discarded_early": _count(
            discarded.where(RetainedSample.discarded_at < RetainedSample.keep_until)
        ),
        "held": _count(held),
        "discard_refused": dict(refused or {"early": 0, "held": 0}),
    }


def test_figures(incident):
    """Rapid tests and lab results recorded in the incident and how many failed; lab
    requests made, reported, and reported after their expected time."""
    tests = select(func.count(RapidTest.id)).filter_by(incident_id=incident.id)
    requests = select(func.count(LabRequest.id)).filter_by(incident_id=incident.id)
    return {
        "run": _count(tests),
        "failed": _count(tests.filter_by(passed=False)),
        "lab": _count(tests.filter_by(kind="lab")),
        "lab_requests": {
            "made": _count(requests),
            "reported": _count(requests.filter_by(status="reported")),
            "late": _count(
                requests.where(
                    or_(
                        LabRequest.reported_at > LabRequest.expected_by,
                        (LabRequest.status == "requested")
                        & (LabRequest.expected_by < (incident.closed_at or clock_now(incident))),
                    )
                )
            ),
        },
    }


def suspension_figures(incident):
    """Suppliers stopped in the incident, and those reinstated after a re-inspection."""
    rows = db.session.scalars(
        select(SupplierSuspension)
        .filter_by(incident_id=incident.id)
        .order_by(SupplierSuspension.id)
    ).all()
    return [
        {
            "supplier": row.supplier.code,
            "reason": row.reason,
            "started_at": isoformat_utc(row.started_at),
            "lifted_at": isoformat_utc(row.lifted_at) if row.lifted_at else None,
        }
        for row in rows
    ]


def food_safety_reports(run, incident):
    """The suspected poisonings the drill reported, each with what its trace covered."""
    rows = db.session.scalars(
        select(Incident)
        .where(Incident.drill_run_id == run.id, Incident.id != incident.id)
        .order_by(Incident.id)
    ).all()
    reports = []
    for other in rows:
        trace = other.trace or {"batches": []}
        held = select(func.count(SampleHold.id)).filter_by(incident_id=other.id)
        reports.append(
            {
                "incident": other.id,
                "title": other.title,
                "demand_point": (trace.get("demand_point") or {}).get("code"),
                "suggested_level": other.suggested_level,
                "trace_batches": len(trace["batches"]),
                "trace_suppliers": sorted({b["supplier"]["code"] for b in trace["batches"]}),
                "samples_held": _count(held),
            }
        )
    return reports


def map_data(incident):
    """Plain data for the capacity map: suppliers, demand points, allocation lines."""
    suspended = set(
        db.session.scalars(
            select(SupplierSuspension.supplier_id).filter_by(incident_id=incident.id)
        )
    )
    peak = defaultdict(int)
    per_slot = defaultdict(int)
    lines = defaultdict(int)
    point_meals = defaultdict(int)
    for task in db.session.scalars(
        select(SupplyTask).where(
            SupplyTask.incident_id == incident.id, SupplyTask.status != "cancelled"
        )
    ):
        per_slot[(task.supplier_id, task.serve_at)] += task.meals
        lines[(task.supplier_id, task.demand_point_id)] += task.meals
        point_meals[task.demand_point_id] += task.meals
    for (supplier_id, _), meals in per_slot.items():
        peak[supplier_id] = max(peak[supplier_id], meals)

    demand = defaultdict(int)
    headcount = defaultdict(int)
    for row in db.session.scalars(select(MealDemand).filter_by(incident_id=incident.id)):
        demand[row.demand_point_id] += row.meals
        headcount[row.demand_point_id] = max(headcount[row.demand_point_id], row.meals)

    from app.clock.services import now
    from app.techsupport.risk import risk_colours

    rows = db.session.scalars(select(Supplier).order_by(Supplier.id)).all()
    # The drill's own colours: its results colour its suppliers here, never the live rows.
    colours = risk_colours(rows, incident, at=now(incident))
    suppliers = []
    for s in rows:
        capacity = s.lunch_capacity
        suppliers.append(
            {
                "id": s.id,
                "name": s.name,
                "lat": s.lat,
                "lon": s.lon,
                "capacity": capacity,
                "available": 0 if s.id in suspended else max(0, capacity - peak[s.id]),
                "risk_colour": colours[s.id].colour,
                "status": "suspended" if (s.id in suspended or s.status != "active") else "active",
                "rating": s.rating,
                "type": s.type,
            }
        )
    points = [
        {
            "id": p.id,
            "name": p.name,
            "lat": p.lat,
            "lon": p.lon,
            "type": p.type,
            "headcount": headcount[p.id],
            "meals_demand": demand[p.id],
            "meals_allocated": point_meals[p.id],
        }
        for p in db.session.scalars(select(DemandPoint).order_by(DemandPoint.id))
    ]
    allocations = [
        {"supplier_id": s, "demand_point_id": p, "meals": m} for (s, p), m in sorted(lines.items())
    ]
    return suppliers, points, allocations


def report_json_text(report):
    return json.dumps(report, ensure_ascii=False, indent=2)
