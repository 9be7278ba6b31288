"""Plans as data: level suggestion from the rule tables, checks, phases, and versions."""

import copy
import datetime
import re

import pytest
from sqlalchemy import select

from app.errors import InvalidInput
from app.extensions import db
from app.fixtures import DEFAULT_PLAN, read_yaml
from app.incidents.models import Incident
from app.process.models import LEVELS, Plan
from app.process.schemas import PHASES, RULE_TABLES
from app.process.services import (
    checklist_for,
    duties_for,
    import_plan,
    latest_plan,
    level_suggestion,
    plan_count,
    suggest_level,
    validate_plan,
)
from tests.helpers import T0


@pytest.fixture
def plan(region):
    return latest_plan("zhenhai-catering-supply")


@pytest.mark.parametrize(
    ("figures", "level"),
    [
        ({"harmed": 100, "deaths": 1}, "II"),
        ({"deaths": 10}, "II"),
        ({"harmed": 50, "school": True}, "II"),
        ({"harmed": 50, "major_event": True}, "II"),
        ({"harmed": 50}, "IV"),
        ({"counties": 2}, "III"),
        ({"harmed": 100}, "III"),
        ({"deaths": 1}, "III"),
        ({"townships": 2}, "IV"),
        ({"harmed": 30}, "IV"),
        ({"harmed": 29}, None),
        ({"evacuees": 50000}, "II"),
        ({"evacuees": 12000}, "III"),
        ({"evacuees": 1500}, "IV"),
        ({"towns": 5, "severity": "Extreme"}, "II"),
        ({"towns": 5, "severity": "Moderate"}, "IV"),
        ({}, None),
    ],
)
def test_level_suggested_from_the_rule_tables(plan, figures, level):
    suggested, rule = suggest_level(plan, figures)

    assert suggested == level
    assert (rule is None) == (level is None)


def test_importing_the_same_plan_changes_nothing(plan):
    again, outcome = import_plan(read_yaml(DEFAULT_PLAN), T0)

    assert outcome == "unchanged"
    assert again.id == plan.id


def test_a_changed_plan_gets_a_new_version(plan):
    document = read_yaml(DEFAULT_PLAN)
    document["sitreps"]["every_hours"] = 6

    newer, outcome = import_plan(document, T0)

    assert outcome == "versioned"
    assert newer.version == plan.version + 1
    assert latest_plan(plan.name).id == newer.id


def test_a_plan_without_levels_is_refused_naming_the_key(plan):
    document = copy.deepcopy(read_yaml(DEFAULT_PLAN))
    del document["levels"]["I"]
    document["duties"][0]["levels"] = ["V"]

    with pytest.raises(InvalidInput) as refused:
        import_plan(document, T0)

    assert "levels.I" in refused.value.errors
    assert "duties[0].levels[0]" in refused.value.errors


# The Jiangsu food-safety thresholds of MISSION.md, at and around each one: II at 100
# harmed with a death, 10 deaths, or 50 harmed at a school or major event; III at two
# counties, 100 harmed or any death; IV at two townships or 30 to 99 harmed, no death.
@pytest.mark.parametrize(
    ("figures", "level"),
    [
        ({"harmed": 29}, None),
        ({"harmed": 30}, "IV"),
        ({"harmed": 99}, "IV"),
        ({"harmed": 100}, "III"),
        ({"harmed": 99, "deaths": 1}, "III"),
        ({"harmed": 100, "deaths": 1}, "II"),
        ({"harmed": 100, "deaths": 0}, "III"),
        ({"deaths": 1}, "III"),
        ({"harmed": 30, "deaths": 1}, "III"),
        ({"deaths": 9}, "III"),
        ({"deaths": 10}, "II"),
        ({"harmed": 49, "school": True}, "IV"),
        ({"harmed": 50, "school": True}, "II"),
        ({"harmed": 49, "major_event": True}, "IV"),
        ({"harmed": 50, "major_event": True}, "II"),
        ({"harmed": 50, "school": False, "major_event": False}, "IV"),
        ({"counties": 1}, None),
        ({"counties": 2}, "III"),
        ({"townships": 1}, None),
        ({"townships": 2}, "IV"),
        ({"townships": 2, "harmed": 5}, "IV"),
        ({"counties": 2, "harmed": 100, "deaths": 1}, "II"),
    ],
)
def test_the_shipped_food_safety_table_follows_the_jiangsu_thresholds(plan, figures, level):
    assert suggest_level(plan, figures)[0] == level


@pytest.mark.parametrize(
    ("figures", "level"),
    [
        ({"evacuees": 999}, None),
        ({"evacuees": 1000}, "IV"),
        ({"evacuees": 9999}, "IV"),
        ({"evacuees": 10000}, "III"),
        ({"evacuees": 29999}, "III"),
        ({"evacuees": 30000}, "II"),
        ({"towns": 1}, None),
        ({"towns": 2}, "IV"),
        ({"towns": 3, "severity": "Moderate"}, "IV"),
        ({"towns": 3, "severity": "Severe"}, "III"),
        ({"towns": 4, "severity": "Extreme"}, "III"),
        ({"towns": 5, "severity": "Extreme"}, "II"),
        ({"towns": 5, "severity": "Severe"}, "III"),
    ],
)
def test_the_shipped_supply_emergency_table_at_its_thresholds(plan, figures, level):
    assert suggest_level(plan, figures)[0] == level


def test_no_shipped_rule_suggests_level_one(plan):
    """Level I is declared by the national government; the district's tables stop at II."""
    for table in RULE_TABLES:
        assert "I" not in {rule["level"] for rule in plan.document["rules"][table]}


def test_a_suggestion_says_who_commands_the_level_and_whether_it_is_declared_above(plan):
    suggestion = level_suggestion(plan, {"harmed": 100, "deaths": 1})

    assert suggestion["level"] == "II" and suggestion["table"] == "food_safety"
    assert suggestion["declared_by_higher"] is True
    assert suggestion["commanded_by"] == "provincial"
    assert level_suggestion(plan, {"harmed": 30})["declared_by_higher"] is False
    assert set(level_suggestion(plan, {}).values()) == {None}


GONE = object()


def _set(document, path, value):
    """Set (or, given GONE, remove) the value at a key path such as `duties[2].levels`."""
    steps = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    parent = document
    for step in steps[:-1]:
        parent = parent[step]
    if value is GONE:
        del parent[steps[-1]]
    else:
        parent[steps[-1]] = value


RESPONSE_IV = "levels.IV.phases.response.checklist"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", GONE),
        ("jurisdiction", 330211),
        ("levels", [{"name": "x"}]),
        ("levels.V", {}),
        ("levels.II.declared_by_higher", "yes"),
        ("levels.II.commanded_by", "village"),
        ("levels.IV.phases.closure", GONE),
        ("levels.IV.phases.aftermath", {}),
        ("levels.IV.phases.warning.measures", ["meal_supply", "dancing"]),
        ("levels.IV.phases.recovery.checklist[0].measure", "dancing"),
        (f"{RESPONSE_IV}[0].code", GONE),
        (f"{RESPONSE_IV}[1].code", "r-county-activate"),
        ("levels.III.measures", ["meal_supply", "dancing"]),
        ("duties[2].confirm_within_minutes", 0),
        ("duties[2].confirm_within_minutes", -5),
        ("duties[2].confirm_within_minutes", 30.5),
        ("duties[2].confirm_within_minutes", "30"),
        ("duties[2].confirm_within_minutes", True),
        ("duties[3].code", "gov-report-higher"),
        ("duties[0].legal_basis", GONE),
        ("duties[0].levles", ["I"]),
        ("duties[0].levels[0]", "V"),
        ("rules.food_safety[0].level", "V"),
        ("rules.food_safety[0].when.harmed_min", -1),
        ("rules.food_safety[0].when.harmed_min", "100"),
        ("rules.food_safety[0].when.harmed_min", float("nan")),
        ("rules.food_safety[0].when.school_or_major_event", "yes"),
        ("rules.supply_emergency[1].when.severity[0]", "Extreem"),
        ("settings.when", datetime.date(2026, 1, 1)),
    ],
)
def test_a_bad_plan_is_refused_naming_the_key(plan, key, value):
    document = read_yaml(DEFAULT_PLAN)
    _set(document, key, value)

    with pytest.raises(InvalidInput) as refused:
        validate_plan(document)

    assert key in refused.value.errors, refused.value.errors


def test_a_refused_plan_stores_nothing(plan):
    document = read_yaml(DEFAULT_PLAN)
    document["duties"][0]["confirm_within_minutes"] = 0

    with pytest.raises(InvalidInput):
        import_plan(document, T0)

    assert plan_count() == 1


def test_every_shipped_level_has_four_phases_of_coded_items(plan):
    for level in LEVELS:
        for phase in PHASES:
            items = checklist_for(plan, level, phase)
            assert items, (level, phase)
            assert all(set(item) == {"code", "text", "text_en", "measure"} for item in items)
            assert len({item["code"] for item in items}) == len(items)


def test_items_of_the_same_code_carry_over_when_the_level_changes(plan):
    """Lowering II to III keeps duty confirmation and sample retention, drops cross-district."""
    two = {i["code"] for i in checklist_for(plan, "II", "response")}
    three = {i["code"] for i in checklist_for(plan, "III", "response")}

    assert {"r-confirm-duties", "r-samples", "r-holding-2h", "r-sitreps"} <= two & three
    assert "r-cross-district" in two - three


def test_a_checklist_item_names_its_measure(plan):
    samples = next(i for i in checklist_for(plan, "IV", "response") if i["code"] == "r-samples")

    assert samples["measure"] == "hazard_control"
    assert "125" in samples["text"]


def test_a_level_of_the_older_form_has_its_checklist_as_the_response(plan):
    """Plans stored before phases existed still read: their checklist is the response."""
    document = read_yaml(DEFAULT_PLAN)
    for level in document["levels"].values():
        level.pop("phases")
        level["checklist"] = ["各成员单位30分钟内确认职责", "每12小时报送一次情况报告"]
    older, outcome = import_plan(document, T0)

    response = checklist_for(older, "IV", "response")

    assert outcome == "versioned"
    assert [i["text"] for i in response] == older.level("IV")["checklist"]
    assert response[0]["code"] == checklist_for(older, "II", "response")[0]["code"]
    assert checklist_for(older, "IV", "warning") == []


def test_unknown_level_or_phase_is_refused(plan):
    with pytest.raises(InvalidInput):
        checklist_for(plan, "V", "response")
    with pytest.raises(InvalidInput):
        checklist_for(plan, "IV", "aftermath")


def test_duties_for_a_level_are_the_plan_duties_that_apply(plan):
    four = duties_for(plan, "IV")
    one = duties_for(plan, "I")

    assert "ms-onsite-inspectors" in {d["code"] for d in one}
    assert "ms-onsite-inspectors" not in {d["code"] for d in four}
    assert all(d["legal_basis"] and d["confirm_within_minutes"] > 0 for d in one)


def test_a_new_version_leaves_the_version_an_open_incident_runs_on(region):
    """An incident keeps the plan it was activated with, duties and all."""
    from app.duties.models import Duty
    from tests.helpers import incident

    found = incident(level="IV")
    first = found.plan
    document_before = copy.deepcopy(first.document)
    duties_before = db.session.execute(
        select(Duty.code, Duty.confirm_within_minutes).filter_by(plan_id=first.id)
    ).all()

    changed = read_yaml(DEFAULT_PLAN)
    changed["duties"][0]["confirm_within_minutes"] = 5
    changed["levels"]["IV"]["phases"]["response"]["checklist"].pop()
    newer, outcome = import_plan(changed, T0)
    db.session.commit()
    db.session.expire_all()

    assert outcome == "versioned" and newer.id != first.id
    assert db.session.get(Incident, found.id).plan_id == first.id
    assert db.session.get(Plan, first.id).document == document_before
    assert (
        db.session.execute(
            select(Duty.code, Duty.confirm_within_minutes).filter_by(plan_id=first.id)
        ).all()
        == duties_before
    )
    assert latest_plan(first.name).id == newer.id


def test_a_stored_version_refuses_to_be_changed_in_place(plan):
    plan.title = "changed"

    with pytest.raises(RuntimeError):
        db.session.flush()
    db.session.rollback()
