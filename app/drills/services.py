"""Running a drill end to end and writing its report and map."""

import logging
import os
from contextlib import ExitStack

from flask import current_app, render_template
from flask_babel import force_locale

from app.drills.endpoints import resolve as resolve_endpoints
from app.drills.endpoints import start_receivers
from app.drills.engine import DrillError, Engine, incident_of, start_run
from app.drills.report import build_report, map_data, report_json_text
from app.drills.scenario import load_scenario
from app.errors import InvalidInput
from app.extensions import db
from app.files import replace_file
from app.fixtures import FIXTURES, fixtures_present, load_all, load_region
from app.process.services import latest_plan
from app.schema import ensure_schema
from app.types import utcnow

log = logging.getLogger(__name__)


def run_drill(scenario_path, out_dir, *, workers=None):
    """Run a scenario through real workers; write report.json, report.html and map.html.

    Loads the region pack first when it is missing. Workers are started here and stopped
    on the way out, whatever happens.
    """
    from workers.pool import WorkerPool

    scenario = load_scenario(scenario_path)
    ensure_schema()
    region_dir = os.path.join(FIXTURES, scenario.region)
    if not os.path.isfile(os.path.join(region_dir, "region.yaml")):
        raise InvalidInput("scenario refused", {"region": [f"no region pack {scenario.region!r}"]})
    if not fixtures_present():
        log.info("drill: region pack missing, loading %s", scenario.region)
        load_all(region_dir)
    region = load_region(region_dir)
    plan = latest_plan(scenario.plan, required=False)
    if plan is None:
        raise InvalidInput("scenario refused", {"plan": [f"no plan named {scenario.plan!r}"]})
    check_against_data(scenario, region, plan)
    endpoints = resolve_endpoints(scenario)
    _prepare_out_dir(out_dir)
    _check_redis()

    run = start_run(scenario)
    run.out_dir = os.path.abspath(out_dir)
    db.session.commit()
    count = workers or current_app.config["BAOGONG_WORKERS"]
    try:
        with ExitStack() as receiving:
            run.notification_endpoints, receivers = start_receivers(scenario, endpoints, receiving)
            db.session.commit()
            with WorkerPool(current_app._get_current_object(), count) as pool:
                engine = Engine(scenario, run, plan, region, pool)
                engine.play()
            incident = incident_of(run)
            if incident is None:
                raise DrillError("the scenario never received its alert, so no incident opened")
            report = build_report(run, incident, scenario, receivers, engine.discards_refused)
        paths = write_outputs(report, run, incident, region, out_dir)
        keep_map(run, paths["map"])
        run.report = report
        run.status = "finished"
        run.finished_at = utcnow()
        db.session.commit()
    except BaseException as error:
        _mark_failed(run, error)
        raise
    log.info("drill %s: finished, report in %s", run.id, paths["report_json"])
    return report, paths


def _mark_failed(run, error):
    """Record a run that stopped early; its drill incident is closed, not left active."""
    try:
        db.session.rollback()
        run.status = "failed"
        run.error = str(error) or type(error).__name__
        run.finished_at = utcnow()
        incident = incident_of(run)
        if incident is not None and incident.status != "closed":
            incident.status = "closed"
            incident.closed_at = run.sim_now
        if incident is not None:
            # Its receivers are gone with the run: a later relay must not keep trying them.
            from app.coordination.delivery import give_up

            give_up(incident, "the drill stopped before it was sent")
        db.session.commit()
    except Exception:  # the database may be what failed; the original error matters more
        db.session.rollback()
        log.exception("drill %s: could not record the failure", run.id)


def check_against_data(scenario, region, plan=None):
    """Refuse, before anything runs, a scenario whose alert or codes cannot work."""
    from sqlalchemy import select

    from app.alerts.cap import CapError, parse_cap
    from app.organisation.models import Department, Person
    from app.supply.models import DemandPoint, Supplier
    from app.techsupport.models import Lab

    errors = {}
    try:
        alert = parse_cap(scenario.alert_bytes())
    except CapError as error:
        errors["alert"] = [f"refused: {error}"]
    except OSError as error:
        errors["alert"] = [str(error)]
    else:
        errors.update(_check_alert(alert, scenario, region))

    known = {
        "point": set(db.session.scalars(select(DemandPoint.code))),
        "supplier": set(db.session.scalars(select(Supplier.code))),
        "departments": set(db.session.scalars(select(Department.code))),
        "inspector": set(db.session.scalars(select(Person.code).filter_by(role="inspector"))),
        "lab": set(db.session.scalars(select(Lab.code))),
    }
    capacity = dict(db.session.execute(select(DemandPoint.code, DemandPoint.capacity)).all())
    items = (plan.settings or {}).get("inspection_checklist", []) if plan is not None else []
    checklist = {item["code"] for item in items}
    for inject in scenario.injects:
        where = f"injects[{inject['number']}] ({inject['at']} {inject['do']})"
        for entry in inject.get("points", []):
            if entry["point"] not in known["point"]:
                errors.setdefault(where, []).append(f"unknown demand point {entry['point']}")
            elif entry["headcount"] > capacity[entry["point"]]:
                errors.setdefault(where, []).append(
                    f"{entry['point']}: headcount {entry['headcount']} exceeds its capacity "
                    f"of {capacity[entry['point']]}"
                )
        if "supplier" in inject and inject["supplier"] not in known["supplier"]:
            errors.setdefault(where, []).append(f"unknown supplier {inject['supplier']}")
        if "point" in inject and inject["point"] not in known["point"]:
            errors.setdefault(where, []).append(f"unknown demand point {inject['point']}")
        if "lab" in inject and inject["lab"] not in known["lab"]:
            errors.setdefault(where, []).append(f"unknown lab {inject['lab']}")
        for entry in inject.get("postings", []):
            if entry["supplier"] not in known["supplier"]:
                errors.setdefault(where, []).append(f"unknown supplier {entry['supplier']}")
        inspectors = [e["inspector"] for e in inject.get("postings", [])]
        for code in inspectors + ([inject["inspector"]] if "inspector" in inject else []):
            if code not in known["inspector"]:
                errors.setdefault(where, []).append(f"no inspector {code} in the region pack")
        for code in sorted(set(inject.get("failed_items", [])) - checklist):
            errors.setdefault(where, []).append(f"no checklist item {code} in the plan")
        for code in set(inject.get("except_", [])) - known["departments"]:
            errors.setdefault(where, []).append(f"unknown department {code} in except")
        departments = inject.get("departments")
        if isinstance(departments, list):
            for code in set(departments) - known["departments"]:
                errors.setdefault(where, []).append(f"unknown department {code}")
        elif departments not in (None, "all"):
            errors.setdefault(where, []).append("departments is 'all' or a list of codes")
    if errors:
        raise InvalidInput("scenario refused", errors)


def _check_alert(alert, scenario, region):
    """What makes an alert unfit to open this drill, as field errors."""
    from shapely.geometry import shape

    from app.alerts.services import alert_in_region, timing_problems

    if alert.status != "Exercise":
        return {"alert": [f"a drill alert has status Exercise, this one {alert.status}"]}
    if alert.msg_type not in ("Alert", "Update"):
        return {"alert": [f"a {alert.msg_type} message cannot open a drill; use Alert or Update"]}
    if not alert.infos:
        return {"alert": ["the alert has no info block, so no event or severity"]}
    expired, problems = timing_problems(alert, scenario.start)
    if expired:
        problems.append("it has expired before the drill starts")
    severities = {info.severity for info in alert.infos}
    if len(severities) > 1:
        problems.append(f"its info blocks disagree on severity: {', '.join(sorted(severities))}")
    boundary = shape(region["boundary_geometry"])
    in_region = alert_in_region(alert, region["code"], boundary)
    if in_region is False:
        problems.append(f"its area is outside region {region['code']}")
    elif in_region is None:
        problems.append(
            f"its area cannot be resolved, so it is not known to touch {region['code']}"
        )
    return {"alert": sorted(set(problems))} if problems else {}


def _check_redis():
    """Reach Redis before the run starts, so a wrong REDIS_URL leaves no failed run."""
    from redis.exceptions import RedisError

    from app.queue import get_redis

    try:
        get_redis().ping()
    except (RedisError, OSError) as error:
        where = current_app.config["REDIS_URL"] or "the bundled server"
        raise DrillError(f"Redis at {where} does not answer: {error}") from None


OUTPUT_FILES = ("report.json", "report.html", "map.html")


def _prepare_out_dir(out_dir):
    """Make sure the three outputs can be written before the drill runs, not after."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".write-test")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as error:
        raise InvalidInput("output folder refused", {"out": [str(error)]}) from None
    for name in OUTPUT_FILES:
        path = os.path.join(out_dir, name)
        if os.path.lexists(path) and not os.path.isfile(path):
            raise InvalidInput(
                "output folder refused", {"out": [f"{path} exists and is not a file"]}
            )


def kept_map_path(run):
    """Where the app keeps a copy of a run's map, safe from later runs' output."""
    return os.path.join(current_app.instance_path, "drills", str(run.id), "map.html")


def keep_map(run, map_path):
    import shutil

    target = kept_map_path(run)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(map_path, target)


def write_outputs(report, run, incident, region, out_dir):
    """The report as JSON and HTML, and the capacity map, into one folder: all three are
    built first, then each replaces its file whole."""
    from maps.capacity import build_capacity_map

    suppliers, points, allocations = map_data(incident)
    page = build_capacity_map(
        boundary=region["boundary_geometry"],
        suppliers=suppliers,
        demand_points=points,
        allocations=allocations,
        title=f"{incident.title}：供应能力图",
    )
    # The page is rendered outside any request, as the drill runs from the command line.
    with current_app.test_request_context("/"), force_locale("zh_CN"):
        html = render_template("drills/report.html", report=report, map_href="map.html")

    texts = {"report_json": report_json_text(report), "report_html": html, "map": page}
    paths = dict(zip(texts, OUTPUT_FILES, strict=True))
    for key, text in texts.items():
        paths[key] = os.path.abspath(os.path.join(out_dir, paths[key]))
        replace_file(paths[key], text)
    return paths
