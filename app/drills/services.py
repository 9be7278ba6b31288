"""Running a drill end to end and writing its report and map."""

import logging
import os

from flask import current_app, render_template
from flask_babel import force_locale

from app.drills.engine import DrillError, Engine, incident_of, start_run
from app.drills.report import build_report, map_data, write_report_json
from app.drills.scenario import load_scenario
from app.extensions import db
from app.fixtures import FIXTURES, fixtures_present, load_all, load_region
from app.process.services import latest_plan
from app.types import utcnow

log = logging.getLogger(__name__)


def run_drill(scenario_path, out_dir, *, workers=None):
    """Run a scenario through real workers; write report.json, report.html and map.html.

    Loads the region pack first when it is missing. Workers are started here and stopped
    on the way out, whatever happens.
    """
    from workers.pool import WorkerPool

    scenario = load_scenario(scenario_path)
    region_dir = os.path.join(FIXTURES, scenario.region)
    if not fixtures_present():
        log.info("drill: region pack missing, loading it")
        load_all()
    plan = latest_plan(scenario.plan)
    region = load_region(region_dir)
    os.makedirs(out_dir, exist_ok=True)

    run = start_run(scenario)
    run.out_dir = os.path.abspath(out_dir)
    db.session.commit()
    count = workers or current_app.config["BAOGONG_WORKERS"]
    try:
        with WorkerPool(current_app._get_current_object(), count) as pool:
            engine = Engine(scenario, run, plan, region, pool)
            engine.play()
        incident = incident_of(run)
        if incident is None:
            raise DrillError("the scenario never received its alert, so no incident opened")
        report = build_report(run, incident, scenario)
        paths = write_outputs(report, run, incident, region, out_dir)
        run.status = "finished"
        run.finished_at = utcnow()
        db.session.commit()
    except BaseException as error:
        db.session.rollback()
        run.status = "failed"
        run.error = str(error) or type(error).__name__
        run.finished_at = utcnow()
        db.session.commit()
        raise
    log.info("drill %s: finished, report in %s", run.id, paths["report_json"])
    return report, paths


def write_outputs(report, run, incident, region, out_dir):
    """The report as JSON and HTML, and the capacity map, into one folder."""
    from maps.capacity import write_capacity_map

    paths = {"report_json": write_report_json(report, out_dir)}
    suppliers, points, allocations = map_data(incident)
    paths["map"] = str(
        write_capacity_map(
            os.path.join(out_dir, "map.html"),
            boundary=region["boundary_geometry"],
            suppliers=suppliers,
            demand_points=points,
            allocations=allocations,
            title=f"{incident.title}：供应能力图",
        )
    )
    # The page is rendered outside any request, as the drill runs from the command line.
    with current_app.test_request_context("/"), force_locale("zh_CN"):
        html = render_template("drills/report.html", report=report, map_href="map.html")
    paths["report_html"] = os.path.join(out_dir, "report.html")
    with open(paths["report_html"], "w", encoding="utf-8") as handle:
        handle.write(html)
    return {k: os.path.abspath(v) for k, v in paths.items()}
