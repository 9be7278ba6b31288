"""The drill engine: runs a scenario on a simulated clock through the real services,
the real queue and real RQ workers.

The engine plays the people (the commander confirming, liaisons confirming, suppliers
cooking and delivering, an inspector testing) by calling the same services their pages
and the API call. Everything the system does by itself (notifying suppliers, reminding,
escalating, re-allocating, situation reports) is left to the workers, and the engine
waits for them to finish before it moves the clock on, so a run is repeatable.
"""

import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from app.alerts.services import receive
from app.clock.models import ScheduledAction
from app.clock.services import requeue_lost, tick
from app.coordination import delivery
from app.coordination import tasks as coordination
from app.coordination.models import SHARE_OPEN_STATES, SituationReport
from app.coordination.sitreps import approve_sitrep, send_sitrep
from app.drills.models import DrillRun
from app.drills.scenario import offset
from app.duties.models import OPEN_STATUSES, DutyAssignment
from app.duties.services import confirm
from app.errors import Conflict
from app.extensions import db
from app.incidents.models import Incident
from app.incidents.services import open_incident, record
from app.organisation.models import Person
from app.organisation.services import commander_of, commander_on_duty, department, liaison_of
from app.process.response import (
    activate,
    end_response,
    enter_phase,
    report_suspected_poisoning,
    set_level,
)
from app.process.services import suggest_level
from app.supply import dispatch
from app.supply import services as supply
from app.supply.allocation import Rules
from app.supply.models import MEALS, Batch, SupplyTask
from app.techsupport.gate import reinstate_supplier
from app.techsupport.inspections import checklist_for, post_inspector, record_inspection
from app.techsupport.models import InspectorPosting, Lab, LabRequest, RetainedSample
from app.techsupport.results import record_lab_result, request_lab_test
from app.techsupport.samples import discard_sample, open_holds, samples_of
from app.techsupport.services import record_rapid_test, retain_samples
from app.types import local_iso, utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
# While the workers are busy this long, look for lost jobs; a started job silent for
# STALE_SECONDS is taken for lost (drill jobs take well under a second).
RECONCILE_AFTER_SECONDS = 5
STALE_SECONDS = 30


class DrillError(RuntimeError):
    """The drill could not go on: the reason is for the drill controller."""


# Set from a signal handler; the engine stops at its next step rather than mid-write.
STOP = threading.Event()


def _check_stop():
    if STOP.is_set():
        raise DrillError("interrupted; workers stopped, the run is marked failed")


class Engine:
    """One run of one scenario."""

    def __init__(self, scenario, run, plan, region, pool, settle_timeout=300):
        self.scenario = scenario
        self.run = run
        self.plan = plan
        self.region = region
        self.pool = pool
        self.settle_timeout = settle_timeout
        self.incident = None
        self.zone = ZoneInfo(region.get("timezone", "Asia/Shanghai"))
        self.behaviour = scenario.suppliers
        self.tasks = {}
        # Food-safety incidents the drill's injects open (a suspected poisoning), which
        # run on the drill's clock beside the main incident.
        self.others = []
        # Discards the kitchens asked for and the rules refused, by why.
        self.discards_refused = {"early": 0, "held": 0}

    # The clock -----------------------------------------------------------------------

    @property
    def now(self):
        return self.run.sim_now

    def advance(self, at):
        self.run.sim_now = at
        db.session.commit()

    def incident_ids(self):
        """The drill's incidents: the main one and any food-safety incident it opened."""
        if self.incident is None:
            return []
        return [self.incident.id] + [other.id for other in self.others]

    def settle(self):
        """Fire what is due, relay what is pending, and wait until the workers are idle."""
        ids = self.incident_ids()
        while True:
            fired = tick(self.now, ids) if ids else 0
            relayed = dispatch.relay(ids) + delivery.relay(ids) if ids else 0
            self._wait_idle(ids)
            if not fired and not relayed and not self._due_now(ids):
                return

    def deliver_all(self):
        """Wait until every message of the drill is sent, failed or skipped, retries and
        their backoff included (wall-clock seconds, as the drill's retry settings say)."""
        ids = self.incident_ids()
        deadline = time.monotonic() + self.settle_timeout
        while ids and delivery.unfinished(ids):
            db.session.commit()
            self.settle()
            if time.monotonic() > deadline:
                raise DrillError(f"messages were not delivered within {self.settle_timeout} s")
            time.sleep(POLL_SECONDS)
        db.session.commit()

    def _due_now(self, ids):
        if not ids:
            return False
        found = db.session.scalar(
            select(func.count(ScheduledAction.id)).where(
                ScheduledAction.incident_id.in_(ids),
                ScheduledAction.due_at <= self.now,
                ScheduledAction.done_at.is_(None),
            )
        )
        db.session.commit()
        return bool(found)

    def _wait_idle(self, ids):
        deadline = time.monotonic() + self.settle_timeout
        reconciled_at = time.monotonic()
        while True:
            # A retry whose backoff is over goes back on the queue; those still waiting
            # do not hold the clock.
            delivery.relay(ids)
            busy = dispatch.unfinished(ids) + delivery.unfinished(ids, due_by=utcnow())
            busy += db.session.scalar(
                select(func.count(ScheduledAction.id)).where(
                    ScheduledAction.incident_id.in_(ids),
                    ScheduledAction.enqueued_at.is_not(None),
                    ScheduledAction.done_at.is_(None),
                )
            )
            db.session.commit()
            if busy == 0:
                return
            _check_stop()
            try:
                just_died = self.pool.revive()
            except RuntimeError as error:
                raise DrillError(str(error)) from None
            if just_died or time.monotonic() - reconciled_at > RECONCILE_AFTER_SECONDS:
                # A job lost with a dead worker or a Redis restart: put it back.
                self._recover(ids, self.pool.dead_names)
                reconciled_at = time.monotonic()
            if time.monotonic() > deadline:
                raise DrillError(f"workers did not finish within {self.settle_timeout} s")
            time.sleep(POLL_SECONDS)

    def _recover(self, ids, dead):
        dispatch.reconcile(STALE_SECONDS, ids, dead_workers=dead, min_age_seconds=0)
        dispatch.relay(ids)
        delivery.reconcile(STALE_SECONDS, ids, dead_workers=dead, min_age_seconds=0)
        delivery.relay(ids)
        requeue_lost(ids, STALE_SECONDS, dead_workers=dead, min_age_seconds=0)
        tick(self.now, ids)

    # The timetable ---------------------------------------------------------------------

    def meal_slots(self):
        """Every meal served inside the drill window that can still be planned in time."""
        times = self.plan.settings.get("meal_times", {})
        ahead = timedelta(minutes=self.scenario.plan_meals_ahead_minutes)
        day = self.scenario.start.astimezone(self.zone).date()
        last_day = self.scenario.end.astimezone(self.zone).date()
        slots = []
        while day <= last_day:
            for meal in MEALS:
                if meal not in times:
                    continue
                hour, minute = (int(x) for x in times[meal].split(":"))
                serve_at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
                if self.scenario.start <= serve_at - ahead and serve_at <= self.scenario.end:
                    slots.append((meal, serve_at))
            day += timedelta(days=1)
        return slots

    def timetable(self):
        """(instant, order, action) for every inject and every supplier step of every meal."""
        events = []
        for n, inject in enumerate(self.scenario.injects):
            events.append((inject["when"], 0, n, lambda inject=inject: self.inject(inject)))
        b = self.behaviour
        for meal, serve_at in self.meal_slots():
            ahead = timedelta(minutes=self.scenario.plan_meals_ahead_minutes)
            steps = (
                (serve_at - ahead, self.plan_meal),
                (serve_at - ahead + timedelta(minutes=b["accept_after_minutes"]), self.accept),
                (serve_at - timedelta(minutes=b["cook_before_serving_minutes"]), self.cook),
                (serve_at - timedelta(minutes=b["cooked_before_serving_minutes"]), self.sample),
                (serve_at - timedelta(minutes=b["leave_before_serving_minutes"]), self.leave),
                (serve_at - timedelta(minutes=5), self.deliver),
                (serve_at, self.receive),
            )
            for order, (at, step) in enumerate(steps, start=1):
                events.append(
                    (at, order, 0, lambda step=step, meal=meal, s=serve_at: step(meal, s))
                )
        return sorted(events, key=lambda e: (e[0], e[1], e[2]))

    def next_due_action(self):
        if self.incident is None:
            return None
        due = db.session.scalar(
            select(func.min(ScheduledAction.due_at)).where(
                ScheduledAction.incident_id.in_(self.incident_ids()),
                ScheduledAction.due_at > self.now,
                ScheduledAction.done_at.is_(None),
            )
        )
        db.session.commit()
        return due

    def drafts_waiting(self):
        """The situation reports drafted and not yet sent, with the instant the simulated
        commander approves and sends each."""
        if self.incident is None:
            return []
        delay = timedelta(minutes=self.scenario.sitreps.get("approve_after_minutes", 20))
        drafts = db.session.scalars(
            select(SituationReport).where(
                SituationReport.incident_id == self.incident.id,
                SituationReport.status.in_(("draft", "approved")),
            )
        ).all()
        return [(report.drafted_at + delay, report) for report in drafts]

    def send_due_reports(self):
        """The commander approves the latest version of each report due, and sends it."""
        for due, report in self.drafts_waiting():
            if due > self.now:
                continue
            if report.status == "draft":
                approve_sitrep(report, version=report.current_version, user=None, at=self.now)
            send_sitrep(report, user=None, at=self.now)
            db.session.commit()
            self.settle()

    def play(self):
        """Run the whole scenario, then end the response if no inject did."""
        events = self.timetable()
        i = 0
        while True:
            candidates = [events[i][0]] if i < len(events) else []
            due = self.next_due_action()
            if due is not None:
                candidates.append(due)
            candidates += [at for at, _ in self.drafts_waiting() if at > self.now]
            if not candidates:
                break
            at = min(candidates)
            if at > self.scenario.end:
                break
            _check_stop()
            self.advance(at)
            self.settle()
            while i < len(events) and events[i][0] == at:
                events[i][3]()
                db.session.commit()
                self.settle()
                i += 1
            self.send_due_reports()

        self.advance(self.scenario.end)
        self.settle()
        for incident in [self.incident, *self.others] if self.incident is not None else []:
            if incident.status != "closed":
                end_response(incident, reason="drill window ended", at=self.now)
                db.session.commit()
                self.settle()
        self.deliver_all()

    # Injects: what the people do ------------------------------------------------------

    def inject(self, inject):
        handler = getattr(self, f"do_{inject['do']}")
        log.info("drill %s: inject %s at %s", self.run.id, inject["do"], inject["when"])
        handler(inject)

    def do_receive_alert(self, inject):
        alert, parsed, in_region = receive(
            self.scenario.alert_bytes(),
            region_code=self.region["code"],
            at=self.now,
            drill_run=self.run,
        )
        if parsed.status != "Exercise":
            raise DrillError(f"the drill alert has status {parsed.status}, expected Exercise")
        if in_region is False:
            raise DrillError("the drill alert's area is outside the region")
        info = parsed.info_for("zh-CN")
        figures = dict(self.scenario.figures)
        figures.setdefault("severity", info.severity if info else None)
        headline = info.headline if info and info.headline else parsed.identifier
        self.incident = open_incident(
            kind="supply_emergency",
            title=headline if headline.startswith("[演练]") else f"[演练] {headline}",
            plan=self.plan,
            at=self.now,
            drill_run=self.run,
            evacuees=figures.get("evacuees"),
            towns=figures.get("towns"),
            severity=figures.get("severity"),
        )
        alert.incident_id = self.incident.id
        alert.action = "opened"
        record(self.incident, "alert_received", f"{parsed.sender}: {info.headline}", self.now)
        level, rule = suggest_level(self.plan, figures)
        self.incident.suggested_level = level
        self.incident.suggested_rule = rule
        record(self.incident, "level_suggested", f"{level}: {rule}", self.now)
        enter_phase(self.incident, "warning", at=self.now, reason="alert received")

    def do_confirm_level(self, inject):
        level = inject.get("level") or self.incident.suggested_level
        if level is None:
            raise DrillError("no level was suggested and the inject names none")
        reason = inject.get("reason") or "commander confirms the suggested level"
        activate(
            self.incident,
            level,
            at=self.now,
            reason=reason,
            by=commander_on_duty(self.plan, self.now),
        )

    def do_confirm_duties(self, inject):
        wanted = inject["departments"]
        skip = set(inject.get("except_", []))
        assignments = db.session.scalars(
            select(DutyAssignment).filter_by(incident_id=self.incident.id)
        ).all()
        for assignment in assignments:
            code = assignment.department.code
            if code in skip or (wanted != "all" and code not in wanted):
                continue
            if assignment.status not in OPEN_STATUSES:
                continue
            person = liaison_of(assignment.department_id, self.now)
            if person is None:
                raise DrillError(f"department {code} has nobody on duty to confirm")
            confirm(assignment, person, self.now)

    def do_open_points(self, inject):
        for entry in inject["points"]:
            point = supply.demand_point_by_code(entry["point"])
            diets = {d: entry[d] for d in ("halal", "vegetarian", "infant", "soft_diet")}
            supply.open_point(
                self.incident, point, headcount=entry["headcount"], at=self.now, diets=diets
            )

    def _latest_batch(self, supplier):
        return db.session.scalar(
            select(Batch)
            .join(SupplyTask)
            .where(SupplyTask.incident_id == self.incident.id, Batch.supplier_id == supplier.id)
            .order_by(Batch.id.desc())
            .limit(1)
        )

    def do_rapid_test(self, inject):
        supplier = supply.supplier_by_code(inject["supplier"])
        record_rapid_test(
            supplier=supplier,
            incident=self.incident,
            analyte=inject["analyte"],
            method=inject["method"],
            value=inject["value"],
            limit=inject["limit"],
            unit=inject["unit"],
            tested_by=inject["tested_by"],
            at=self.now,
            batch=self._latest_batch(supplier),
            purpose=inject["purpose"],
        )

    def do_post_inspectors(self, inject):
        """Market supervision posts inspectors on site at suppliers (驻点监管)."""
        for entry in inject["postings"]:
            post_inspector(
                self.incident,
                supply.supplier_by_code(entry["supplier"]),
                _person(entry["inspector"]),
                self.now,
                by="drill controller",
            )

    def do_lab_request(self, inject):
        """A retained sample of the supplier's latest batch goes to a lab."""
        supplier = supply.supplier_by_code(inject["supplier"])
        batch = self._latest_batch(supplier)
        samples = samples_of(batch) if batch is not None else []
        sample = samples[0] if samples else None
        request_lab_test(
            lab=_lab(inject["lab"]),
            supplier=supplier,
            incident=self.incident,
            analytes=inject["analytes"],
            requested_by=inject.get("tested_by", "drill controller"),
            at=self.now,
            sample=sample,
            purpose=inject["purpose"],
        )

    def do_lab_result(self, inject):
        """The lab reports on the supplier's oldest request still waiting."""
        supplier = supply.supplier_by_code(inject["supplier"])
        request = db.session.scalar(
            select(LabRequest)
            .filter_by(incident_id=self.incident.id, supplier_id=supplier.id, status="requested")
            .order_by(LabRequest.id)
            .limit(1)
        )
        if request is None:
            raise DrillError(f"no lab request of {supplier.code} waits for a result")
        record_lab_result(
            request,
            results=[dict(result) for result in inject["results"]],
            tested_by=request.lab.name,
            at=self.now,
        )

    def do_inspect(self, inject):
        """An inspector goes through the plan's checklist at a supplier; the items named
        in `failed_items` fail, the rest pass."""
        supplier = supply.supplier_by_code(inject["supplier"])
        items = checklist_for(self.incident.plan, self.incident.kind)
        unknown = set(inject["failed_items"]) - {item["code"] for item in items}
        if unknown:
            raise DrillError(f"no checklist items {', '.join(sorted(unknown))} in the plan")
        failed = set(inject["failed_items"])
        record_inspection(
            supplier,
            incident=self.incident,
            inspector=_person(inject["inspector"]),
            answers={
                item["code"]: {"result": "fail" if item["code"] in failed else "pass"}
                for item in items
            },
            at=self.now,
            purpose=inject["purpose"],
            summary=inject.get("note"),
        )

    def do_reinstate(self, inject):
        supplier = supply.supplier_by_code(inject["supplier"])
        suspension = supply.open_suspension(supplier, self.incident)
        if suspension is None:
            raise DrillError(f"{supplier.code} is not suspended in the drill")
        commander = commander_of(self.incident, self.now)
        reinstate_supplier(
            suspension,
            by=commander.name if commander else "commander",
            reason=inject["reason"],
            at=self.now,
        )

    def do_discard_samples(self, inject):
        """Kitchens ask to throw away the samples they retained before an instant; the
        rules refuse those still in their countdown or held for an incident."""
        before = self.scenario.start + offset(inject["retained_before"])
        samples = db.session.scalars(
            select(RetainedSample)
            .join(Batch, RetainedSample.batch_id == Batch.id)
            .join(SupplyTask, Batch.supply_task_id == SupplyTask.id)
            .where(
                SupplyTask.incident_id == self.incident.id,
                RetainedSample.retained_at < before,
                RetainedSample.discarded_at.is_(None),
            )
            .order_by(RetainedSample.id)
        ).all()
        by = self.scenario.food_safety["sample_discarded_by"]
        discarded, refused = 0, {"early": 0, "held": 0}
        for sample in samples:
            try:
                discard_sample(sample, by, self.now)
            except Conflict:
                refused["held" if open_holds(sample) else "early"] += 1
                continue
            discarded += 1
        for why, count in refused.items():
            self.discards_refused[why] += count
        record(
            self.incident,
            "samples_discarded",
            f"{discarded} samples discarded; refused: {refused['early']} still in their "
            f"countdown, {refused['held']} held for a food-safety incident",
            self.now,
        )

    def do_report_poisoning(self, inject):
        """People fall ill at a demand point: a food-safety incident opens beside the
        drill's own, with the trace of what reached the point, its samples held."""
        point = supply.demand_point_by_code(inject["point"])
        incident = report_suspected_poisoning(
            self.plan,
            at=self.now,
            title=inject["title"],
            figures=dict(inject["harm"]),
            demand_point=point,
            drill_run=self.run,
        )
        if not incident.duplicate:
            self.others.append(incident)

    def do_change_level(self, inject):
        set_level(
            self.incident,
            inject["level"],
            reason=inject["reason"],
            at=self.now,
            by=commander_of(self.incident, self.now),
        )

    def do_assign_task(self, inject):
        """The command centre sets a task (a joint inspection, say) for departments."""
        supplier = inject.get("supplier")
        self.tasks[inject["task"]] = coordination.create_task(
            self.incident,
            title=inject["task"],
            details=inject.get("details", ""),
            priority=inject["priority"],
            kind=inject["kind"],
            due_at=self.scenario.start + offset(inject["due"]),
            departments=[department(code) for code in inject["departments"]],
            supplier=supply.supplier_by_code(supplier) if supplier else None,
            at=self.now,
        )

    def _task_shares(self, inject):
        """The named departments' shares still open; one already done is left alone."""
        task = self.tasks[inject["task"]]
        db.session.refresh(task)
        wanted = set(inject["departments"])
        return [
            share
            for share in task.shares
            if share.department.code in wanted and share.state in SHARE_OPEN_STATES
        ]

    def do_accept_task(self, inject):
        for share in self._task_shares(inject):
            coordination.accept(share, self.now)

    def do_finish_task(self, inject):
        for share in self._task_shares(inject):
            coordination.finish(share, self.now, note=inject.get("note", ""))

    def do_end_response(self, inject):
        end_response(
            self.incident,
            reason=inject["reason"],
            at=self.now,
            by=commander_of(self.incident, self.now),
        )

    # Meals: what the command centre and the suppliers do ------------------------------

    def plan_meal(self, meal, serve_at):
        if self.incident is None or self.incident.status != "active":
            return
        supply.allocate_meal(self.incident, meal, serve_at, self.now)

    def _tasks(self, serve_at, statuses):
        return db.session.scalars(
            select(SupplyTask)
            .where(
                SupplyTask.incident_id == self.incident.id,
                SupplyTask.serve_at == serve_at,
                SupplyTask.status.in_(statuses),
            )
            .order_by(SupplyTask.id)
        ).all()

    def accept(self, meal, serve_at):
        """Suppliers accept the tasks they were notified of."""
        if self.incident is None:
            return
        for task in self._tasks(serve_at, ("notified",)):
            supply.accept_task(task, self.now)

    def cook(self, meal, serve_at):
        """Kitchens start cooking every accepted task, accepting late arrivals first."""
        if self.incident is None:
            return
        self.accept(meal, serve_at)
        dishes = self.scenario.dishes.get(meal, [])
        for task in self._tasks(serve_at, ("accepted",)):
            supply.start_batch(task, dishes=dishes, at=self.now)

    def sample(self, meal, serve_at):
        """Batches come off the stove; one sample per dish is sealed and kept."""
        if self.incident is None:
            return
        self.cook(meal, serve_at)
        settings = self.plan.settings
        # Inspectors posted at a supplier rapid-test each of its batches as it is sealed.
        posted = {
            posting.supplier_id: posting.person
            for posting in db.session.scalars(
                select(InspectorPosting).filter_by(incident_id=self.incident.id, ends_at=None)
            )
        }
        for task in self._tasks(serve_at, ("cooking",)):
            batch = _batch_of(task)
            supply.finish_cooking(batch, self.now)
            samples = retain_samples(
                batch,
                at=self.now,
                kept_at=self.behaviour["sample_kept_at"],
                grams=self.behaviour["sample_grams"],
                min_grams=settings.get("sample_min_grams", 125),
                keep_hours=settings.get("sample_keep_hours", 48),
            )
            inspector = posted.get(task.supplier_id)
            for test in self.scenario.food_safety["routine_tests"] if inspector else ():
                record_rapid_test(
                    supplier=task.supplier,
                    incident=self.incident,
                    tested_by=inspector.name,
                    at=self.now,
                    batch=batch,
                    sample=samples[0],
                    **test,
                )

    def leave(self, meal, serve_at):
        if self.incident is None:
            return
        self.sample(meal, serve_at)
        for task in self._tasks(serve_at, ("sampled",)):
            temp = (
                self.behaviour["hot_temp_c"]
                if task.supplier.hot_holding
                else self.behaviour["ambient_temp_c"]
            )
            supply.dispatch_batch(_batch_of(task), at=self.now, temp_c=temp)

    def deliver(self, meal, serve_at):
        if self.incident is None:
            return
        self.leave(meal, serve_at)
        rules = Rules.from_settings(self.plan.settings or {})
        delivered = defaultdict(int)
        for task in self._tasks(serve_at, ("in_transit",)):
            batch = _batch_of(task)
            arrival = batch.left_at + timedelta(minutes=task.travel_minutes)
            temp = batch.dispatch_temp_c - 3.0
            supply.deliver_batch(batch, at=arrival, temp_c=temp, rules=rules)
            if batch.status == "delivered":
                delivered["meals"] += task.meals
                delivered["tasks"] += 1
        if delivered:
            record(
                self.incident,
                "meals_delivered",
                f"{meal} {local_iso(serve_at)}: {delivered['meals']} meals in "
                f"{delivered['tasks']} tasks",
                self.now,
            )

    def receive(self, meal, serve_at):
        if self.incident is None:
            return
        for task in self._tasks(serve_at, ("delivered",)):
            supply.receive_batch(_batch_of(task), self.now)


def _person(code):
    person = db.session.scalar(select(Person).filter_by(code=code))
    if person is None:
        raise DrillError(f"no person {code!r} in the region pack")
    return person


def _lab(code):
    lab = db.session.scalar(select(Lab).filter_by(code=code))
    if lab is None:
        raise DrillError(f"no lab {code!r} in the region pack")
    return lab


def _batch_of(task):
    return db.session.scalar(
        select(Batch).filter_by(supply_task_id=task.id).order_by(Batch.id.desc()).limit(1)
    )


def start_run(scenario):
    """Record a new drill run with its clock at the scenario's start."""
    run = DrillRun(
        scenario=scenario.name,
        scenario_digest=scenario.digest,
        sim_start=scenario.start,
        sim_end=scenario.end,
        sim_now=scenario.start,
        started_at=utcnow(),
    )
    db.session.add(run)
    db.session.commit()
    return run


def incident_of(run):
    """The drill's main incident: the first it opened (a suspected poisoning in the drill
    opens another)."""
    return db.session.scalar(
        select(Incident).filter_by(drill_run_id=run.id).order_by(Incident.id).limit(1)
    )
