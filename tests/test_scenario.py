"""A drill scenario is checked before anything runs: a bad one is refused with the field,
exit code 2 and nothing recorded."""

import shutil

import pytest
import yaml
from sqlalchemy import func, select

from app.drills.models import DrillRun
from app.drills.scenario import load_scenario
from app.errors import InvalidInput
from app.extensions import db
from app.fixtures import FIXTURES

SCENARIO = f"{FIXTURES}/drills/typhoon.yaml"
ATTACK = "attack-external-entities.xml"


@pytest.fixture
def scenario_copy(tmp_path):
    """A writable copy of the typhoon scenario and its alert; returns (edit, path)."""
    shutil.copy(SCENARIO, tmp_path / "s.yaml")
    shutil.copy(f"{FIXTURES}/drills/typhoon-cap.xml", tmp_path / "typhoon-cap.xml")
    path = tmp_path / "s.yaml"

    def edit(change):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(document)
        path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        return str(path)

    return edit


def _errors(path):
    with pytest.raises(InvalidInput) as refused:
        load_scenario(path)
    return refused.value.errors


def test_the_shipped_scenario_loads():
    scenario = load_scenario(SCENARIO)

    assert scenario.duration_hours == 72
    opened = sum(p["headcount"] for i in scenario.injects for p in i.get("points", []))
    assert opened == 50000


def test_unknown_fields_are_refused(scenario_copy):
    path = scenario_copy(lambda d: d.update(colour="red"))

    assert "colour" in _errors(path)


def test_an_inject_time_must_be_an_offset(scenario_copy):
    path = scenario_copy(lambda d: d["injects"][0].update(at="06:00"))

    assert "at" in str(_errors(path)["injects"])


def test_a_start_without_offset_is_refused(scenario_copy):
    path = scenario_copy(lambda d: d.update(start="2026-09-14T06:00:00"))

    assert "start" in _errors(path)


def test_negative_headcounts_and_too_many_special_diets_are_refused(scenario_copy):
    def change(document):
        points = next(i for i in document["injects"] if i["do"] == "open_points")["points"]
        points[0]["headcount"] = -5
        points[1]["halal"] = points[1]["headcount"] + 1

    assert "points" in str(_errors(scenario_copy(change)))


def test_a_missing_file_is_refused(tmp_path):
    assert "file" in _errors(str(tmp_path / "nope.yaml"))


def _run(app, path, out):
    runner = app.test_cli_runner()
    return runner.invoke(args=["drill", "run", path, "--out", str(out)])


def test_an_unknown_supplier_is_refused_before_the_drill_starts(app, scenario_copy, tmp_path):
    def change(document):
        next(i for i in document["injects"] if i["do"] == "rapid_test")["supplier"] = "ZH-SUP-999"

    result = _run(app, scenario_copy(change), tmp_path / "out")

    assert result.exit_code == 2
    assert "ZH-SUP-999" in result.stderr
    assert db.session.scalar(select(func.count(DrillRun.id))) == 0


def test_a_hostile_alert_is_refused(app, scenario_copy, tmp_path):
    from tests.test_cap import SHARED_CAP as CAP_DIR

    if not (CAP_DIR / ATTACK).exists():
        pytest.skip("shared CAP samples not present")
    shutil.copy(CAP_DIR / ATTACK, tmp_path / ATTACK)

    result = _run(app, scenario_copy(lambda d: d.update(alert=ATTACK)), tmp_path / "out")

    assert result.exit_code == 2
    assert "alert" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_actual_alert_is_refused_for_a_drill(app, scenario_copy, tmp_path):
    cap = (tmp_path / "typhoon-cap.xml").read_text(encoding="utf-8")
    (tmp_path / "typhoon-cap.xml").write_text(
        cap.replace("<status>Exercise</status>", "<status>Actual</status>"), encoding="utf-8"
    )

    result = _run(app, scenario_copy(lambda d: None), tmp_path / "out")

    assert result.exit_code == 2
    assert "Exercise" in result.stderr


def test_an_output_path_that_cannot_be_a_folder_is_refused(app, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")

    result = _run(app, SCENARIO, blocker / "out")

    assert result.exit_code == 2
    assert "out" in result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda d: d["injects"].append({"at": "+90:00", "do": "end_response", "reason": "x"}),
            "injects",
        ),
        (lambda d: d["injects"].append({"at": "+00:05", "do": "receive_alert"}), "injects"),
        (
            lambda d: d["injects"].insert(0, {"at": "+00:00", "do": "open_points", "points": []}),
            "injects",
        ),
        (
            lambda d: d["injects"].__setitem__(
                slice(None), [i for i in d["injects"] if i["do"] != "receive_alert"]
            ),
            "injects",
        ),
        (lambda d: d.update(figures={"evacuees": "many"}), "figures"),
        (lambda d: d.update(figures={"evacuees": float("nan")}), "figures"),
        (lambda d: d.update(figures={"people": 5}), "figures"),
        (lambda d: d.update(plan_meals_ahead_minutes=-600), "plan_meals_ahead_minutes"),
        (lambda d: d["suppliers"].update(cook_before_serving_minutes=-100), "suppliers"),
        (lambda d: d["suppliers"].update(cooked_before_serving_minutes=200), "suppliers"),
        (lambda d: d.update(alert="/etc/passwd"), "alert"),
        (lambda d: d.update(alert="../../etc/hostname"), "alert"),
    ],
)
def test_scenarios_that_cannot_be_played_are_refused(scenario_copy, change, field):
    assert field in _errors(scenario_copy(change))


def _alert_variant(tmp_path, old, new):
    path = tmp_path / "typhoon-cap.xml"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("330211000000", "110101000000", "outside region"),
        ("330211000000", "999999999999", "cannot be resolved"),
        ("2026-09-17T06:00:00+08:00", "2026-09-13T06:00:00+08:00", "expired"),
    ],
)
def test_an_alert_that_cannot_open_the_drill_is_refused(
    app, scenario_copy, tmp_path, old, new, says
):
    _alert_variant(tmp_path, old, new)

    result = _run(app, scenario_copy(lambda d: None), tmp_path / "out")

    assert result.exit_code == 2
    assert says in result.stderr


def test_a_headcount_beyond_the_shelter_is_refused(app, scenario_copy, tmp_path):
    def change(document):
        next(i for i in document["injects"] if i["do"] == "open_points")["points"][0][
            "headcount"
        ] = 10**9

    result = _run(app, scenario_copy(change), tmp_path / "out")

    assert result.exit_code == 2
    assert "exceeds its capacity" in result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(start="9999-12-31T23:00:00+08:00"), "start"),
        (lambda d: d["dishes"].pop("lunch"), "dishes"),
        (
            lambda d: next(i for i in d["injects"] if i["do"] == "rapid_test").update(value=-62.0),
            "injects",
        ),
    ],
)
def test_impossible_values_are_refused(scenario_copy, change, field):
    assert field in _errors(scenario_copy(change))


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("<msgType>Alert</msgType>", "<msgType>Cancel</msgType>", "Cancel"),
        (
            "<effective>2026-09-14T06:00:00+08:00</effective>",
            "<effective>2026-09-18T06:00:00+08:00</effective>",
            "effective is after expires",
        ),
        ("<severity>Extreme</severity>", "<severity>Minor</severity>", "disagree on severity"),
    ],
)
def test_a_self_contradictory_alert_is_refused(app, scenario_copy, tmp_path, old, new, says):
    path = tmp_path / "typhoon-cap.xml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")

    result = _run(app, scenario_copy(lambda d: None), tmp_path / "out")

    assert result.exit_code == 2
    assert says in result.stderr


def test_unknown_departments_in_except_are_refused(app, scenario_copy, tmp_path):
    def change(document):
        next(i for i in document["injects"] if i["do"] == "confirm_duties")["except"] = ["nosuch"]

    result = _run(app, scenario_copy(change), tmp_path / "out")

    assert result.exit_code == 2
    assert "nosuch" in result.stderr


def test_a_sample_under_125_grams_is_refused_before_anything_runs(app, scenario_copy, tmp_path):
    path = scenario_copy(lambda d: d.setdefault("suppliers", {}).update(sample_grams=50))

    result = _run(app, path, tmp_path / "out")

    assert result.exit_code == 2
    assert "sample_grams" in result.stderr and "125" in result.stderr
    assert db.session.scalar(select(func.count(DrillRun.id))) == 0


@pytest.mark.parametrize("name", ["map.html", "report.json", "report.html"])
def test_an_output_file_that_cannot_be_written_is_refused_before_the_drill(app, tmp_path, name):
    (tmp_path / "out" / name).mkdir(parents=True)

    result = _run(app, SCENARIO, tmp_path / "out")

    assert result.exit_code == 2
    assert name in result.stderr
    assert db.session.scalar(select(func.count(DrillRun.id))) == 0


def test_a_key_given_twice_is_refused(tmp_path):
    from pathlib import Path

    text = Path(SCENARIO).read_text(encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text("name: first\n" + text, encoding="utf-8")

    assert "given twice" in str(_errors(str(path)))


def test_a_point_opened_twice_in_one_inject_is_refused(scenario_copy):
    def change(document):
        points = next(i for i in document["injects"] if i["do"] == "open_points")["points"]
        points.append(dict(points[0]))

    assert "each point once" in str(_errors(scenario_copy(change)))


def test_an_inject_is_named_by_its_place_in_the_file(app, scenario_copy, tmp_path):
    from pathlib import Path

    def change(document):
        document["injects"].reverse()  # file order no longer time order
        next(i for i in document["injects"] if i["do"] == "rapid_test")["supplier"] = "ZH-SUP-999"

    path = scenario_copy(change)
    number = next(
        n
        for n, i in enumerate(yaml.safe_load(Path(path).read_text(encoding="utf-8"))["injects"])
        if i["do"] == "rapid_test"
    )

    result = _run(app, path, tmp_path / "out")

    assert f"injects[{number}]" in result.stderr


@pytest.mark.parametrize(
    "endpoints, field",
    [
        ({"dingtalk": {"receiver": "remote"}}, "dingtalk"),
        ({"dingtalk": {}}, "dingtalk"),
        ({"dingtalk": {"receiver": "local", "url": "http://127.0.0.1:9/x"}}, "dingtalk"),
        ({"dingtalk": {"url": "ftp://example.org/robot"}}, "dingtalk"),
        ({"dingtalk": {"url": "https://example.org/robot", "fail_first": 2}}, "dingtalk"),
        ({"dingtalk": {"url": "https://example.org/r", "secret_env": "no spaces"}}, "dingtalk"),
        ({"email": {"url": "http://127.0.0.1:25"}}, "email"),
        ({"sms": {"host": "127.0.0.1", "port": 25}}, "sms"),
        ({"email": {"receiver": "local", "fail_first": 11}}, "email"),
        ({"pager": {"receiver": "local"}}, "pager"),
        ({"email": {"host": "127.0.0.1", "port": 2525}}, "email"),  # no drill mailbox
        ({"email": {"host": "bad host", "port": 25, "to": "d@example.org"}}, "email"),
        ({"sms": {"url": "http://127.0.0.1:99999/sms"}}, "sms"),
        ({"dingtalk": {"receiver": "local", "secret_env": "HOME"}}, "dingtalk"),
        ({"dingtalk": {"url": "https://example.org/r", "token_env": "HOME"}}, "dingtalk"),
        ({"email": {"host": "h", "port": 25, "to": "d@example.org", "secret_env": "H"}}, "email"),
    ],
)
def test_drill_endpoints_are_checked(scenario_copy, endpoints, field):
    path = scenario_copy(lambda d: d.update(notifications=endpoints))

    assert field in _errors(path)["notifications"]


def test_a_drill_names_where_each_channel_goes(scenario_copy):
    endpoints = {
        "dingtalk": {"receiver": "local", "lose_reply_first": 1},
        "email": {"host": "127.0.0.1", "port": 2525, "to": "drill@example.org"},
    }
    scenario = load_scenario(scenario_copy(lambda d: d.update(notifications=endpoints)))

    assert scenario.notifications["dingtalk"]["lose_reply_first"] == 1
    assert scenario.notifications["email"]["port"] == 2525
    assert "sms" not in scenario.notifications


def test_the_simulated_commander_approves_reports_within_a_day(scenario_copy):
    path = scenario_copy(lambda d: d.update(sitreps={"approve_after_minutes": 24 * 60 + 1}))

    assert "approve_after_minutes" in _errors(path)["sitreps"]


def test_a_drill_retries_quickly_unless_the_scenario_says_otherwise(scenario_copy):
    shipped = load_scenario(SCENARIO)
    without = load_scenario(scenario_copy(lambda d: d.pop("notifications")))
    slower = load_scenario(
        scenario_copy(lambda d: d.update(notifications={"retry": {"backoff_seconds": 2}}))
    )

    assert shipped.notifications["retry"] == {"max_attempts": 4, "backoff_seconds": 0.2}
    assert without.notifications == {"retry": {"max_attempts": 4, "backoff_seconds": 0.2}}
    assert slower.notifications["retry"] == {"max_attempts": 4, "backoff_seconds": 2.0}


ROAD = "为送餐车辆办理台风期间道路通行保障"


def _task_injects(document, do=None):
    return [
        i for i in document["injects"] if i.get("task") == ROAD and (do is None or i["do"] == do)
    ]


def _add(document, **inject):
    document["injects"].append({"task": ROAD, **inject})


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda d: _add(
                d,
                at="+05:00",
                do="assign_task",
                priority="low",
                departments=["commerce"],
                due="+06:00",
            ),
            "set twice",
        ),  # fmt: skip
        (lambda d: _task_injects(d, "assign_task")[0].update(at="+01:50"), "no earlier"),
        (
            lambda d: _task_injects(d, "assign_task")[0].update(departments=["transport", "cdc"]),
            "one department",
        ),  # fmt: skip
        (
            lambda d: _task_injects(d, "assign_task")[0].update(kind="joint_inspection"),
            "two or more",
        ),  # fmt: skip
        (lambda d: _task_injects(d, "assign_task")[0].update(due="+01:00"), "due after"),
        (lambda d: _task_injects(d, "assign_task")[0].update(due="+999:00"), "drill window"),
        (
            lambda d: _add(d, at="+02:00", do="accept_task", departments=["transport"]),
            "already accepted",
        ),  # fmt: skip
        (
            lambda d: _add(d, at="+03:40", do="finish_task", departments=["transport"]),
            "already finished",
        ),  # fmt: skip
        (
            lambda d: _add(d, at="+03:40", do="accept_task", departments=["transport"]),
            "already finished",
        ),  # fmt: skip
        (lambda d: _task_injects(d, "accept_task")[0].update(departments=[]), "one or more"),
        (
            lambda d: _task_injects(d, "accept_task")[0].update(priority="urgent"),
            "only for assign_task",
        ),  # fmt: skip
        (
            lambda d: _task_injects(d, "accept_task")[0].update(departments=["cdc"]),
            "not set for cdc",
        ),  # fmt: skip
    ],
)
def test_task_injects_that_cannot_be_played_are_refused(scenario_copy, change, says):
    errors = _errors(scenario_copy(change))

    assert says in str(errors), errors


def _inject(document, kind):
    return next(i for i in document["injects"] if i["do"] == kind)


@pytest.mark.parametrize(
    ("kind", "change", "says"),
    [
        ("lab_request", lambda i: i.update(lab="ZH-LAB-99"), "unknown lab ZH-LAB-99"),
        ("inspect", lambda i: i.update(inspector="ms-head"), "no inspector ms-head"),
        ("inspect", lambda i: i.update(failed_items=["nosuch"]), "no checklist item nosuch"),
        (
            "post_inspectors",
            lambda i: i["postings"][0].update(supplier="ZH-SUP-999"),
            "unknown supplier ZH-SUP-999",
        ),
        ("report_poisoning", lambda i: i.update(point="ZH-SH-999"), "unknown demand point"),
    ],
)
def test_technical_support_injects_naming_what_is_not_there_are_refused(
    app, scenario_copy, tmp_path, kind, change, says
):
    path = scenario_copy(lambda d: change(_inject(d, kind)))

    result = _run(app, path, tmp_path / "out")

    assert result.exit_code == 2
    assert says in result.stderr
    assert db.session.scalar(select(func.count(DrillRun.id))) == 0


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("lab_request", lambda i: i.pop("analytes"), "analytes"),
        ("lab_request", lambda i: i.update(analytes=[]), "analytes"),
        ("lab_result", lambda i: i["results"][0].update(value=float("nan")), "results"),
        ("lab_result", lambda i: i["results"][0].update(limit=0), "results"),
        ("lab_result", lambda i: i["results"][0].update(colour="red"), "results"),
        ("inspect", lambda i: i.update(purpose="curiosity"), "purpose"),
        ("reinstate", lambda i: i.pop("reason"), "reason"),
        ("discard_samples", lambda i: i.update(retained_before="yesterday"), "retained_before"),
        ("report_poisoning", lambda i: i["harm"].update(harmed=-1), "harm"),
        ("report_poisoning", lambda i: i.pop("harm"), "harm"),
        ("post_inspectors", lambda i: i.update(postings=[]), "postings"),
    ],
)
def test_technical_support_injects_that_cannot_be_played_are_refused(
    scenario_copy, kind, change, field
):
    errors = _errors(scenario_copy(lambda d: change(_inject(d, kind))))

    assert any(field in str(key) or field in str(value) for key, value in errors.items()), errors


def test_routine_tests_of_the_scenario_are_checked(scenario_copy):
    def change(document):
        document["food_safety"]["routine_tests"][0]["value"] = "high"

    assert "food_safety" in _errors(scenario_copy(change))
