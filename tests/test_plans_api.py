"""The plans API: anyone reads plans and versions; a new version needs the right to change
plans, and a refused plan is 422 naming the key, with nothing stored."""

from pathlib import Path

import pytest

from app.fixtures import DEFAULT_PLAN, read_yaml
from app.process.services import latest_plan, plan_count

NAME = "zhenhai-catering-supply"
# Filled by the `writer` fixture with a commander's token.
AUTH = {}
SHIPPED = Path(DEFAULT_PLAN).read_text(encoding="utf-8")


@pytest.fixture
def writer(app, region):
    from tests.helpers import bearer, make_user

    _, token = make_user("commander", department="government")
    AUTH.clear()
    AUTH.update(bearer(token))
    yield app
    AUTH.clear()


def test_the_list_gives_each_plan_at_its_current_version(client, region):
    plans = client.get("/api/plans").get_json()

    assert [(p["name"], p["version"]) for p in plans] == [(NAME, 1)]
    assert plans[0]["title_en"].startswith("Zhenhai")


def test_a_plan_comes_with_its_version_and_whole_document(client, region):
    plan = client.get(f"/api/plans/{NAME}").get_json()

    assert plan["version"] == 1
    assert plan["document"] == read_yaml(DEFAULT_PLAN)


def test_missing_plans_and_versions_are_404(client, region):
    assert client.get("/api/plans/nowhere").status_code == 404
    assert client.get(f"/api/plans/{NAME}/versions/2").status_code == 404
    assert client.get(f"/api/plans/{NAME}/versions/0").status_code == 404


def test_unknown_query_fields_are_422(client, region):
    response = client.get(f"/api/plans/{NAME}?version=1")

    assert response.status_code == 422 and "version" in str(response.get_json()["errors"])


def test_putting_a_changed_document_creates_a_version_and_the_old_one_stays(client, writer):
    document = read_yaml(DEFAULT_PLAN)
    document["sitreps"]["every_hours"] = 6

    put = client.put(f"/api/plans/{NAME}", json={"document": document}, headers=AUTH)
    again = client.put(f"/api/plans/{NAME}", json={"document": document}, headers=AUTH)
    first = client.get(f"/api/plans/{NAME}/versions/1").get_json()

    assert put.status_code == 201
    assert put.get_json() == {"plan": NAME, "version": 2, "outcome": "versioned"}
    assert again.status_code == 200 and again.get_json()["outcome"] == "unchanged"
    assert first["document"]["sitreps"]["every_hours"] == 12
    assert client.get(f"/api/plans/{NAME}").get_json()["version"] == 2


def test_a_yaml_body_is_read_as_the_file(client, writer):
    text = SHIPPED.replace(f"name: {NAME}", "name: yaml-plan")

    put = client.put("/api/plans/yaml-plan", data=text.encode(), headers=AUTH,
                     content_type="application/yaml")  # fmt: skip

    assert put.status_code == 201 and put.get_json()["outcome"] == "created"
    assert latest_plan("yaml-plan").document["note"] == read_yaml(DEFAULT_PLAN)["note"]


def test_the_name_in_the_url_must_be_the_documents(client, writer):
    response = client.put("/api/plans/another", json={"document": read_yaml(DEFAULT_PLAN)},
                          headers=AUTH)  # fmt: skip

    assert response.status_code == 422 and "name" in response.get_json()["errors"]
    assert plan_count() == 1


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d["duties"][0].update(confirm_within_minutes=0), "duties[0].confirm_within_minutes"),  # noqa: E501
        (lambda d: d["duties"][0].update(department="nowhere"), "duties[0].department"),
        (lambda d: d["levels"]["II"]["phases"].pop("warning"), "levels.II.phases.warning"),
        (lambda d: d.update(levels=["I", "II"]), "levels"),
        (lambda d: d["settings"]["meal_times"].update(lunch=690), "settings.meal_times.lunch"),
        (lambda d: d["settings"].update(speed_kmh=0), "settings.speed_kmh"),
        (lambda d: d["settings"].update(sample_min_grams=1), "settings.sample_min_grams"),
        (lambda d: d["settings"].update(holding_band_c=[60, 8]), "settings.holding_band_c"),
        (lambda d: d["settings"].update(rating_floor={"hospital": "Z"}), "settings.rating_floor.hospital.value"),  # noqa: E501
        (lambda d: d["settings"].update(priority_types=["spaceship"]), "settings.priority_types[0]"),  # noqa: E501
        (lambda d: d["settings"].update(speeed_kmh=30), "settings.speeed_kmh"),
        (lambda d: d.update(title="a\x00b"), "title"),
        (lambda d: d.update(title="a\u202eb"), "title"),
        (lambda d: d["duties"][0].update(title="bell\x07"), "duties[0].title"),
        (lambda d: d["rules"]["food_safety"][0]["when"].update(harmed_min=1.5), "rules.food_safety[0].when.harmed_min"),  # noqa: E501
        (lambda d: d.update(jurisdiction="99"), "jurisdiction"),
    ],
)  # fmt: skip
def test_a_refused_document_is_422_naming_the_key(client, writer, change, key):
    document = read_yaml(DEFAULT_PLAN)
    change(document)

    response = client.put(f"/api/plans/{NAME}", json={"document": document}, headers=AUTH)

    assert response.status_code == 422
    assert key in response.get_json()["errors"]
    assert latest_plan(NAME).version == 1


def test_a_deeply_nested_body_is_refused_not_a_crash(client, writer):
    deep = ("a: " + "[" * 3000).encode()
    as_yaml = client.put(f"/api/plans/{NAME}", data=deep, headers=AUTH,
                         content_type="application/yaml")  # fmt: skip
    as_json = client.put(f"/api/plans/{NAME}", data="[" * 5000 + "]" * 5000, headers=AUTH,
                         content_type="application/json")  # fmt: skip
    shallow_but_deep = {"document": {"name": NAME, "x": [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}}

    assert as_yaml.status_code == 422 and as_json.status_code in (400, 422)
    nested = client.put(f"/api/plans/{NAME}", json=shallow_but_deep, headers=AUTH)
    assert nested.status_code == 422 and "nested" in str(nested.get_json()["errors"])
    assert plan_count() == 1


def test_a_json_key_given_twice_is_refused(client, writer):
    body = '{"document": {"name": "a", "name": "b"}}'
    response = client.put(f"/api/plans/{NAME}", data=body, headers=AUTH,
                          content_type="application/json")  # fmt: skip

    assert response.status_code == 422 and "twice" in str(response.get_json()["errors"])


def test_a_change_made_from_an_old_version_is_409(client, writer):
    document = read_yaml(DEFAULT_PLAN)
    document["sitreps"]["every_hours"] = 6
    first = client.put(f"/api/plans/{NAME}?base_version=1", json={"document": document},
                       headers=AUTH)  # fmt: skip
    document["sitreps"]["every_hours"] = 8
    stale = client.put(f"/api/plans/{NAME}?base_version=1", json={"document": document},
                       headers=AUTH)  # fmt: skip

    assert first.status_code == 201 and stale.status_code == 409
    assert "version 2" in stale.get_json()["message"]
    assert latest_plan(NAME).version == 2


def test_a_yaml_body_refused_names_the_line(client, writer):
    text = SHIPPED.replace("every_hours: 12", "every_hours: x")
    line = text.splitlines().index("  every_hours: x") + 1

    response = client.put(f"/api/plans/{NAME}", data=text.encode(), headers=AUTH,
                          content_type="application/yaml")  # fmt: skip

    assert response.status_code == 422
    assert response.get_json()["errors"]["sitreps.every_hours"][0].startswith(f"line {line}:")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"document": {}, "extra": 1}, "extra"),
        ({}, "document"),
        ({"document": "name: x"}, "document"),
    ],
)
def test_a_bad_json_body_is_422_naming_the_field(client, writer, body, key):
    response = client.put(f"/api/plans/{NAME}", json=body, headers=AUTH)

    assert response.status_code == 422 and key in response.get_json()["errors"]


def test_nan_in_a_document_is_refused(client, writer):
    body = '{"document": {"name": "%s", "settings": {"speed_kmh": NaN}}}' % NAME  # noqa: UP031

    response = client.put(f"/api/plans/{NAME}", data=body, headers=AUTH,
                          content_type="application/json")  # fmt: skip

    assert response.status_code == 422
    assert "settings.speed_kmh" in response.get_json()["errors"]


def test_other_bodies_are_415_and_a_huge_one_413(client, writer):
    text = client.put(f"/api/plans/{NAME}", data="x", headers=AUTH, content_type="text/plain")
    huge = client.put(f"/api/plans/{NAME}", data=b"#" * (1024 * 1024 + 1), headers=AUTH,
                      content_type="application/yaml")  # fmt: skip

    assert text.status_code == 415 and huge.status_code == 413


def test_putting_a_plan_needs_a_commander(client, writer):
    from tests.helpers import bearer, make_user

    document = read_yaml(DEFAULT_PLAN)
    _, viewer = make_user("viewer", department="government")

    missing = client.put(f"/api/plans/{NAME}", json={"document": document})
    wrong = client.put(f"/api/plans/{NAME}", json={"document": document},
                       headers={"Authorization": "Bearer nope"})  # fmt: skip
    reader = client.put(f"/api/plans/{NAME}", json={"document": document},
                        headers=bearer(viewer))  # fmt: skip

    assert missing.status_code == 401 and wrong.status_code == 401
    assert reader.status_code == 403 and "commander" in reader.get_json()["message"]
    assert plan_count() == 1


def test_the_openapi_document_lists_the_plan_paths(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]

    assert {"/api/plans", "/api/plans/{name}", "/api/plans/{name}/versions/{version}"} <= set(paths)


def test_concurrent_changes_from_one_version_save_once(app, writer):
    """Each request in its own thread, session and connection, as on a real server."""
    import threading

    db_codes = []
    barrier = threading.Barrier(4)
    headers = dict(AUTH)

    def put(hours):
        document = read_yaml(DEFAULT_PLAN)
        document["sitreps"]["every_hours"] = hours
        client = app.test_client()
        barrier.wait(timeout=30)
        answer = client.put(f"/api/plans/{NAME}?base_version=1", json={"document": document},
                            headers=headers)  # fmt: skip
        db_codes.append(answer.status_code)

    from app.extensions import db

    db.session.commit()
    threads = [threading.Thread(target=put, args=(hours,)) for hours in (2, 3, 4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(db_codes) == [201, 409, 409, 409]
    db.session.expire_all()
    assert latest_plan(NAME).version == 2
