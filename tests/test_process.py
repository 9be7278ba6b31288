"""Plans as data: level suggestion from the rule tables, and versioned import."""

import copy

import pytest

from app.errors import InvalidInput
from app.fixtures import DEFAULT_PLAN, read_yaml
from app.process.services import import_plan, latest_plan, suggest_level
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
