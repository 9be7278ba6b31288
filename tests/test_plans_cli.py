"""`flask plans` and `flask process suggest-level`: one JSON line on stdout, exit 2 with the
reason on stderr for refused input, never a traceback, nothing half-written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.fixtures import DEFAULT_PLAN
from app.process.services import latest_plan, plan_count

NAME = "zhenhai-catering-supply"
SHIPPED = Path(DEFAULT_PLAN).read_text(encoding="utf-8")
MINUTES_60 = "    confirm_within_minutes: 60\n"


@pytest.fixture
def cli(app):
    """Run a command; returns (exit code, stdout, stderr)."""
    runner = app.test_cli_runner()

    def invoke(*args):
        result = runner.invoke(args=list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _answer(stdout):
    """The one JSON line a command printed."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def _write(tmp_path, text, name="plan.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def test_importing_the_shipped_plan_again_changes_nothing(cli, region):
    code, out, _ = cli("plans", "import", DEFAULT_PLAN)

    assert code == 0
    assert _answer(out) == {"plan": NAME, "version": 1, "outcome": "unchanged"}


def test_a_new_plan_is_created_and_a_changed_one_versioned(cli, region, tmp_path):
    other = SHIPPED.replace(f"name: {NAME}", "name: other-plan", 1)
    changed = other.replace("every_hours: 12", "every_hours: 6")

    created = cli("plans", "import", _write(tmp_path, other))
    versioned = cli("plans", "import", _write(tmp_path, changed))

    assert created[0] == 0 and _answer(created[1]) == {
        "plan": "other-plan",
        "version": 1,
        "outcome": "created",
    }
    assert versioned[0] == 0 and _answer(versioned[1])["outcome"] == "versioned"
    assert latest_plan("other-plan").document["sitreps"]["every_hours"] == 6


def test_export_then_import_is_unchanged_and_keeps_every_key(cli, region, tmp_path):
    code, exported, _ = cli("plans", "export", NAME)
    path = _write(tmp_path, exported)

    again = cli("plans", "import", path)

    assert code == 0
    assert _answer(again[1])["outcome"] == "unchanged"
    assert "food_safety_note:" in exported and "  note:" in exported
    assert "镇海区" in exported  # Chinese as written, not \u escapes
    keys = [line.split(":")[0] for line in exported.splitlines() if line[:1].isalpha()]
    assert keys[:5] == ["name", "title", "title_en", "jurisdiction", "note"]


def test_an_older_version_can_be_exported(cli, region, tmp_path):
    cli("plans", "import", _write(tmp_path, SHIPPED.replace("every_hours: 12", "every_hours: 6")))

    first = cli("plans", "export", NAME, "--version", "1")[1]
    current = cli("plans", "export", NAME)[1]

    assert "every_hours: 12" in first and "every_hours: 6" in current


def test_export_of_an_unknown_plan_or_version_exits_2(cli, region):
    assert cli("plans", "export", "nowhere")[0] == 2
    code, out, err = cli("plans", "export", NAME, "--version", "9")
    assert code == 2 and out == "" and "no version 9" in err


def test_list_prints_every_current_plan(cli, region):
    code, out, _ = cli("plans", "list")

    assert code == 0
    assert _answer(out) == {
        "plans": [{"name": NAME, "version": 1, "title": latest_plan(NAME).title}]
    }


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("name: [unclosed\ntitle: x\n", "plan.yaml line 2"),
        ("- a list\n- not a mapping\n", "one mapping"),
        ("name: x\nname: y\nlevels: {}\n", "given twice"),
        (SHIPPED.replace("sitreps:\n", "sitreps:\n  every_hours: 3\n", 1), "given twice"),
        (SHIPPED.replace(MINUTES_60, "    confirm_within_minutes: -1\n", 1), "minutes"),
        (SHIPPED.replace(MINUTES_60, "    confirm_within_minutes: 1.5\n", 1), "minutes"),
        (SHIPPED.replace("- code: gov-report-higher", "- code: gov-command", 1),
         "duties[1].code"),
        (SHIPPED.replace("    department: government\n", "    department: nowhere\n", 1),
         "no department nowhere"),
        (SHIPPED.replace("harmed_min: 30}", "harmed_min: -30}", 1), "harmed_min"),
        (SHIPPED.replace("severity: [Extreme]}", "severity: [Red]}", 1), "severity"),
        (SHIPPED.replace("declared_by_higher: false", "declared_by_higher: 'no'", 1),
         "declared_by_higher"),
        (SHIPPED.replace("      warning:\n", "      alarm:\n", 1), "levels.I.phases"),
        (SHIPPED.replace("name: zhenhai-catering-supply\n", ""), "name"),
        ("name: x\nlevels: &a [1]\nmore: *a\n", "aliases"),
    ],
)  # fmt: skip
def test_a_refused_file_exits_2_naming_the_key_and_writes_nothing(cli, region, tmp_path, text,
                                                                   named):  # fmt: skip
    code, out, err = cli("plans", "import", _write(tmp_path, text))

    assert code == 2
    assert out == ""
    assert named in err and "Traceback" not in err
    assert plan_count() == 1 and latest_plan(NAME).version == 1


def test_a_refusal_gives_the_line_of_the_bad_key(cli, region, tmp_path):
    spoilt = SHIPPED.replace(MINUTES_60, "    confirm_within_minutes: 0\n", 1)
    line = spoilt.splitlines().index("    confirm_within_minutes: 0") + 1

    _, _, err = cli("plans", "import", _write(tmp_path, spoilt))

    assert f"line {line}:" in err


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (SHIPPED.encode("gb18030"), "not UTF-8"),
        (b"\xff\xfe\x00n", "not UTF-8"),
    ],
)
def test_a_file_not_in_utf8_is_refused(cli, region, tmp_path, content, named):
    code, out, err = cli("plans", "import", _write(tmp_path, content))

    assert code == 2 and out == "" and named in err


def test_a_file_with_a_bom_is_read(cli, region, tmp_path):
    code, out, _ = cli("plans", "import", _write(tmp_path, "\ufeff" + SHIPPED))

    assert code == 0 and _answer(out)["outcome"] == "unchanged"


def test_a_directory_or_a_missing_file_is_refused(cli, region, tmp_path):
    directory = cli("plans", "import", str(tmp_path))
    missing = cli("plans", "import", str(tmp_path / "none.yaml"))

    assert directory[0] == 2 and "directory" in directory[2]
    assert missing[0] == 2 and "none.yaml" in missing[2]


@pytest.mark.parametrize(
    ("args", "level", "table"),
    [
        (["--harmed", "29"], None, None),
        (["--harmed", "30"], "IV", "food_safety"),
        (["--harmed", "100", "--deaths", "1"], "II", "food_safety"),
        (["--harmed", "50", "--school"], "II", "food_safety"),
        (["--harmed", "50", "--major-event"], "II", "food_safety"),
        (["--counties", "2"], "III", "food_safety"),
        (["--townships", "2"], "IV", "food_safety"),
        (["--evacuees", "50000"], "II", "supply_emergency"),
        (["--towns", "3", "--severity", "Severe"], "III", "supply_emergency"),
    ],
)
def test_suggest_level_prints_the_level_rule_and_table(cli, region, args, level, table):
    code, out, _ = cli("process", "suggest-level", "--plan", NAME, *args)
    answer = _answer(out)

    assert code == 0
    assert answer["level"] == level and answer["table"] == table
    assert set(answer) == {"level", "rule", "table", "declared_by_higher", "commanded_by"}
    assert (answer["rule"] is None) == (level is None)


def test_suggest_level_says_a_serious_level_is_declared_above(cli, region):
    answer = _answer(cli("process", "suggest-level", "--plan", NAME, "--deaths", "10")[1])
    general = _answer(cli("process", "suggest-level", "--plan", NAME, "--harmed", "40")[1])

    assert answer["declared_by_higher"] is True and answer["commanded_by"] == "provincial"
    assert general["declared_by_higher"] is False and general["commanded_by"] == "county"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--harmed", "-1"], "--harmed"),
        (["--deaths", "1.5"], "--deaths"),
        (["--evacuees", "many"], "--evacuees"),
        (["--severity", "Red"], "--severity"),
        (["--plan", "nowhere"], "--plan"),
    ],
)
def test_suggest_level_refuses_bad_options_naming_them(cli, region, args, option):
    plan = [] if "--plan" in args else ["--plan", NAME]

    code, out, err = cli("process", "suggest-level", *plan, *args)

    assert code == 2 and out == ""
    assert option in err and "Traceback" not in err


def test_the_command_line_prints_one_json_line_and_logs_to_stderr(app, region, database_url,
                                                                  redis_url, tmp_path):  # fmt: skip
    """As an operator runs it: a separate process on the same database."""
    from app.extensions import db

    db.session.commit()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    other = _write(tmp_path, SHIPPED.replace(f"name: {NAME}", "name: cli-plan", 1))

    taken = subprocess.run([*flask, "plans", "import", other], cwd=root, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    refused = subprocess.run([*flask, "plans", "import", str(tmp_path)], cwd=root, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip

    assert taken.returncode == 0, taken.stderr
    assert _answer(taken.stdout) == {"plan": "cli-plan", "version": 1, "outcome": "created"}
    assert refused.returncode == 2 and refused.stdout == ""
    assert "directory" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("value", ["1_000", "３０", "99999999999999999999999", "10000001", "-1"])
def test_suggest_level_takes_plain_counts_only(app, region, value):
    result = app.test_cli_runner().invoke(
        args=["process", "suggest-level", "--plan", "zhenhai-catering-supply", "--harmed", value]
    )

    assert result.exit_code == 2 and "--harmed" in result.stderr and result.stdout == ""
