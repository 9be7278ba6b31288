"""Batches of a supply task: split into several whose meals add up to at most the task's,
the task's status following them, and the holding rule checked at delivery and again at
serving; a flagged batch is not served, its meals are not delivered, the commander is
told once. Through the services, the API and the pages."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.coordination.models import Notification
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.models import TimelineEntry
from app.supply.models import Batch, Supplier, SupplyTask
from app.supply.services import (
    accept_task,
    allocate_meal,
    deliver_batch,
    dispatch_batch,
    finish_cooking,
    incident_figures,
    receive_batch,
    start_batch,
)
from app.techsupport.batches import follow_batches, meals_left
from app.techsupport.samples import retain_samples
from tests.helpers import T0, bearer, incident, make_user, open_shelters, set_clock

LUNCH = T0 + timedelta(hours=4)
COOKED = T0 + timedelta(hours=2)
DISHES = ["米饭", "红烧鸡块", "清炒青菜"]


def minutes(n):
    return COOKED + timedelta(minutes=n)


@pytest.fixture
def task(region):
    """An accepted supply task of a drill incident, its clock well ahead of the steps."""
    found = incident()
    open_shelters(found, {"ZH-SH-01": 600})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    chosen = max(tasks, key=lambda t: t.meals)
    accept_task(chosen, T0)
    db.session.commit()
    set_clock(found, T0 + timedelta(hours=20))
    return chosen


def _cooked(task, meals=None, at=COOKED):
    batch = start_batch(task, dishes=DISHES, meals=meals, at=at - timedelta(minutes=40))
    finish_cooking(batch, at)
    retain_samples(batch, at=at, kept_at="留样冰箱", grams=150)
    return batch


def _on_its_way(task, temp_c=40.0, meals=None):
    batch = _cooked(task, meals)
    dispatch_batch(batch, at=minutes(10), temp_c=temp_c)
    return batch


def _flag_messages(task):
    return db.session.scalars(
        select(Notification).filter_by(incident_id=task.incident_id, kind="batch_flagged")
    ).all()


# Splitting a task ----------------------------------------------------------------------


def test_a_task_splits_into_batches_up_to_its_meals(task):
    first = start_batch(task, dishes=DISHES, meals=task.meals - 10, at=COOKED)
    second = start_batch(task, dishes=DISHES, meals=10, at=COOKED)

    assert (first.meals, second.meals) == (task.meals - 10, 10)
    assert meals_left(task) == 0
    assert task.status == "cooking"


def test_a_batch_over_the_meals_left_is_refused_naming_them(task):
    start_batch(task, dishes=DISHES, meals=task.meals - 10, at=COOKED)

    with pytest.raises(Conflict, match=f"10 of its {task.meals} meals left"):
        start_batch(task, dishes=DISHES, meals=11, at=COOKED)
    assert db.session.scalar(select(func.count(Batch.id))) == 1


def test_a_batch_without_meals_takes_all_that_are_left(task):
    start_batch(task, dishes=DISHES, meals=25, at=COOKED)
    rest = start_batch(task, dishes=DISHES, at=COOKED)

    assert rest.meals == task.meals - 25
    with pytest.raises(Conflict, match="0 of its"):
        start_batch(task, dishes=DISHES, at=COOKED)


def test_a_batch_needs_an_accepted_task(region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 600})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)

    with pytest.raises(Conflict, match="once it is accepted"):
        start_batch(tasks[0], dishes=DISHES, at=COOKED)


@pytest.mark.parametrize(
    ("dishes", "meals", "field"),
    [
        ([], None, "dishes"),
        (["米饭", "米饭"], None, "dishes.1"),
        (["米饭", ""], None, "dishes.1"),
        (["x" * 201], None, "dishes.0"),
        ("米饭", None, "dishes"),
        (DISHES, 0, "meals"),
        (DISHES, 2.5, "meals"),
        (DISHES, True, "meals"),
    ],
)
def test_bad_batches_are_refused_naming_the_field(task, dishes, meals, field):
    with pytest.raises(InvalidInput) as refused:
        start_batch(task, dishes=dishes, meals=meals, at=COOKED)
    assert field in refused.value.errors


def test_the_task_follows_its_least_advanced_batch(task):
    first = _cooked(task, meals=task.meals - 10)
    dispatch_batch(first, at=minutes(10), temp_c=40)
    second = start_batch(task, dishes=DISHES, meals=10, at=minutes(5))
    assert task.status == "cooking"  # cooking while any batch is

    finish_cooking(second, minutes(8))
    retain_samples(second, at=minutes(8), kept_at="留样冰箱", grams=150)
    assert task.status == "sampled"
    dispatch_batch(second, at=minutes(12), temp_c=40)
    assert task.status == "in_transit"
    deliver_batch(first, at=minutes(40), temp_c=37)
    assert task.status == "in_transit"  # one batch is still on the road
    deliver_batch(second, at=minutes(45), temp_c=37)
    assert task.status == "delivered"
    receive_batch(first, minutes(50))
    assert task.status == "delivered"
    receive_batch(second, minutes(55))
    assert task.status == "received"


def test_a_flagged_batch_gives_its_meals_back_and_counts_as_not_delivered(task):
    good = _on_its_way(task, meals=task.meals - 10)
    late = _on_its_way(task, meals=10)

    deliver_batch(good, at=minutes(60), temp_c=37)
    deliver_batch(late, at=minutes(100), temp_c=37)

    assert late.status == "flagged" and good.status == "delivered"
    # The 10 meals given back are still to cook: the task takes another batch for them.
    assert task.status == "accepted"
    assert meals_left(task) == 10
    assert incident_figures(_incident(task))["delivered_meals"] == task.meals - 10
    again = start_batch(task, dishes=DISHES, at=minutes(101))
    assert again.meals == 10 and task.status == "cooking"


def test_a_task_is_received_only_once_every_meal_is_served(task):
    first = _on_its_way(task, meals=task.meals - 10)
    deliver_batch(first, at=minutes(60), temp_c=37)
    receive_batch(first, minutes(61))

    assert task.status == "accepted" and meals_left(task) == 10
    assert incident_figures(_incident(task))["delivered_meals"] == task.meals - 10


def _incident(task):
    from app.incidents.models import Incident

    return db.session.get(Incident, task.incident_id)


def test_a_task_whose_every_batch_is_flagged_is_cancelled(task):
    batch = _on_its_way(task)

    deliver_batch(batch, at=minutes(100), temp_c=37)

    assert task.status == "cancelled" and task.cancel_reason == batch.flag
    assert incident_figures(_incident(task))["delivered_meals"] == 0
    with pytest.raises(Conflict, match="cancelled"):
        start_batch(task, dishes=DISHES, at=minutes(101))


# The holding rule ---------------------------------------------------------------------


def test_a_band_batch_arriving_too_late_is_flagged_and_the_commander_told(task):
    """Between 8 and 60 °C, 2 h from cooking to the last meal: 100 min + 30 of serving."""
    batch = _on_its_way(task)

    deliver_batch(batch, at=minutes(100), temp_c=37)

    assert batch.status == "flagged"
    assert "130 min" in batch.flag and "between 8 and 60" in batch.flag
    [message] = _flag_messages(task)
    assert message.key == f"batch-flagged-{batch.id}" and message.person_id is not None
    assert "[演练]" in message.subject
    events = db.session.scalars(
        select(TimelineEntry.event).filter_by(incident_id=task.incident_id)
    ).all()
    assert "batch_flagged" in events


def test_a_band_batch_on_time_is_delivered(task):
    batch = _on_its_way(task)

    deliver_batch(batch, at=minutes(90), temp_c=37)

    assert batch.status == "delivered" and batch.flag is None
    assert _flag_messages(task) == []


def test_a_batch_served_too_late_is_flagged_at_serving_and_not_served(task):
    batch = _on_its_way(task)
    deliver_batch(batch, at=minutes(60), temp_c=37)

    receive_batch(batch, minutes(95))

    assert batch.status == "flagged" and batch.received_at is None
    assert "125 min" in batch.flag
    assert task.status == "cancelled"
    assert len(_flag_messages(task)) == 1


def test_a_flagged_batch_is_refused_at_serving_and_the_commander_told_once(task):
    batch = _on_its_way(task)
    deliver_batch(batch, at=minutes(100), temp_c=37)

    with pytest.raises(Conflict, match="flagged"):
        receive_batch(batch, minutes(101))
    with pytest.raises(Conflict, match="flagged"):
        receive_batch(batch, minutes(102))

    assert len(_flag_messages(task)) == 1


def test_each_flagged_batch_tells_the_commander_under_its_own_key(task):
    one = _on_its_way(task, meals=10)
    two = _on_its_way(task, meals=10)

    deliver_batch(one, at=minutes(100), temp_c=37)
    deliver_batch(two, at=minutes(100), temp_c=37)

    assert sorted(m.key for m in _flag_messages(task)) == sorted(
        [f"batch-flagged-{one.id}", f"batch-flagged-{two.id}"]
    )


def test_a_hot_batch_has_the_hot_window(task):
    """Above 60 °C all the way: 240 min. 150 min + 30 passes where the band would not."""
    batch = _on_its_way(task, temp_c=70.0)
    deliver_batch(batch, at=minutes(150), temp_c=65)
    assert batch.status == "delivered"

    receive_batch(batch, minutes(215))  # 215 + 30 > 240

    assert batch.status == "flagged" and "kept hot above 60" in batch.flag


def test_a_hot_batch_served_within_the_hot_window_is_served(task):
    batch = _on_its_way(task, temp_c=70.0)
    deliver_batch(batch, at=minutes(150), temp_c=65)

    receive_batch(batch, minutes(200))

    assert batch.status == "received" and batch.received_at == minutes(200)


def test_a_hot_batch_that_cooled_into_the_band_has_the_band_window(task):
    batch = _on_its_way(task, temp_c=70.0)

    deliver_batch(batch, at=minutes(100), temp_c=55)

    assert batch.status == "flagged" and "between 8 and 60" in batch.flag


def test_a_chilled_batch_has_the_chilled_window(task):
    batch = _on_its_way(task, temp_c=4.0)
    deliver_batch(batch, at=minutes(600), temp_c=5)
    assert batch.status == "delivered"

    receive_batch(batch, minutes(700))  # 700 + 30 > 720

    assert batch.status == "flagged" and "chilled below 8" in batch.flag


def test_the_window_follows_the_plan_settings(task):
    from app.supply.allocation import Rules

    batch = _on_its_way(task)
    strict = Rules(holding_window_minutes=60, serving_minutes=10)

    deliver_batch(batch, at=minutes(55), temp_c=37, rules=strict)

    assert batch.status == "flagged" and "at most 60 min" in batch.flag


# Steps, times and temperatures --------------------------------------------------------


def test_dispatch_before_cooking_is_done_is_refused(task):
    batch = start_batch(task, dishes=DISHES, at=COOKED)

    with pytest.raises(Conflict, match="still cooking"):
        dispatch_batch(batch, at=minutes(10), temp_c=40)


@pytest.mark.parametrize("temp", [float("nan"), float("inf"), -31, 100.5, "40", True, None])
def test_temperatures_must_be_finite_and_within_range(task, temp):
    batch = _cooked(task)

    with pytest.raises(InvalidInput) as refused:
        dispatch_batch(batch, at=minutes(10), temp_c=temp)
    assert "temp_c" in refused.value.errors
    assert batch.status == "sampled"


def test_times_run_forward_from_cooking_to_serving(task):
    batch = _cooked(task)
    with pytest.raises(InvalidInput) as refused:
        dispatch_batch(batch, at=COOKED - timedelta(minutes=1), temp_c=40)
    assert "was cooked" in refused.value.errors["at"][0]
    dispatch_batch(batch, at=minutes(10), temp_c=40)
    with pytest.raises(InvalidInput) as refused:
        deliver_batch(batch, at=minutes(9), temp_c=37)
    assert "left the kitchen" in refused.value.errors["at"][0]
    deliver_batch(batch, at=minutes(40), temp_c=37)
    with pytest.raises(InvalidInput) as refused:
        receive_batch(batch, minutes(39))
    assert "arrived" in refused.value.errors["at"][0]


def test_naive_times_are_refused(task):
    with pytest.raises(InvalidInput) as refused:
        start_batch(task, dishes=DISHES, at=COOKED.replace(tzinfo=None))
    assert "offset" in refused.value.errors["at"][0]


def test_times_far_ahead_of_the_incident_clock_are_refused(task):
    batch = _cooked(task)

    dispatch_batch(batch, at=minutes(14), temp_c=40, clock=minutes(10))  # clocks differ a bit
    with pytest.raises(InvalidInput) as refused:
        deliver_batch(batch, at=minutes(30), temp_c=37, clock=minutes(20))
    assert "10 min after the incident's clock" in refused.value.errors["at"][0]
    assert batch.status == "in_transit"


def test_follow_batches_leaves_a_task_without_batches_alone(task):
    assert follow_batches(task, COOKED) == "accepted"


# The API -------------------------------------------------------------------------------


def _supplier_user(task):
    return make_user("supplier", supplier=task.supplier.code)


def _other_supplier_user(task):
    other = db.session.scalar(
        select(Supplier).where(Supplier.id != task.supplier_id).order_by(Supplier.id).limit(1)
    )
    return make_user("supplier", supplier=other.code)


def _iso(instant):
    return instant.isoformat()


def _post(client, path, token, body=None, **kwargs):
    return client.post(f"/api{path}", json=body if body is not None else {},
                       headers=bearer(token), **kwargs)  # fmt: skip


def _started(client, task, token, meals=None, at=COOKED - timedelta(minutes=40)):
    answer = _post(
        client,
        f"/supply-tasks/{task.id}/batches",
        token,
        {"dishes": DISHES, "meals": meals or task.meals, "at": _iso(at)},
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def _through_samples(client, batch_id, token):
    answer = _post(client, f"/batches/{batch_id}/cooked", token, {"at": _iso(COOKED)})
    assert answer.status_code == 200, answer.json
    body = {
        "samples": [{"dish": d, "grams": 150, "kept_at": "留样冰箱 2 号"} for d in DISHES],
        "at": _iso(COOKED),
    }
    answer = _post(client, f"/batches/{batch_id}/samples", token, body)
    assert answer.status_code == 201, answer.json
    return answer.json


def test_a_supplier_reports_a_batch_from_start_to_serving(client, task):
    _, token = _supplier_user(task)

    batch = _started(client, task, token)
    assert batch["status"] == "cooking" and batch["samples_missing"] == DISHES
    sampled = _through_samples(client, batch["id"], token)
    assert sampled["status"] == "sampled" and sampled["samples_missing"] == []
    left = _post(client, f"/batches/{batch['id']}/dispatch", token,
                 {"temp_c": 45.5, "at": _iso(minutes(10))})  # fmt: skip
    assert left.status_code == 200 and left.json["status"] == "in_transit"
    arrived = _post(client, f"/batches/{batch['id']}/deliver", token,
                    {"temp_c": 41, "at": _iso(minutes(40))})  # fmt: skip
    assert arrived.json["status"] == "delivered" and arrived.json["arrival_temp_c"] == 41
    served = _post(client, f"/batches/{batch['id']}/receive", token, {"at": _iso(minutes(50))})

    assert served.status_code == 200, served.json
    assert served.json["status"] == "received"
    assert served.json["received_at"] == "2026-09-14T02:50:00Z"
    listing = client.get(f"/api/supply-tasks/{task.id}/batches", headers=bearer(token)).json
    assert listing["status"] == "received" and listing["meals_left"] == 0
    assert [b["id"] for b in listing["batches"]] == [batch["id"]]


def test_the_api_accepts_a_task_for_its_supplier(client, region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 600})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    db.session.commit()
    _, token = make_user("supplier", supplier=tasks[0].supplier.code)

    answer = _post(client, f"/supply-tasks/{tasks[0].id}/accept", token)

    assert answer.status_code == 200 and answer.json["status"] == "accepted"
    assert _post(client, f"/supply-tasks/{tasks[0].id}/accept", token).status_code == 409


def test_a_supplier_is_refused_another_suppliers_task(client, task):
    _, mine = _supplier_user(task)
    _, theirs = _other_supplier_user(task)
    batch = _started(client, task, mine)

    assert _post(client, f"/supply-tasks/{task.id}/batches", theirs,
                 {"dishes": DISHES, "meals": 1}).status_code == 403  # fmt: skip
    assert _post(client, f"/batches/{batch['id']}/cooked", theirs).status_code == 403
    assert client.get(f"/api/batches/{batch['id']}", headers=bearer(theirs)).status_code == 403
    assert _post(client, f"/supply-tasks/{task.id}/accept", theirs).status_code == 403
    assert db.session.get(Batch, batch["id"]).status == "cooking"


def test_the_commander_may_report_and_a_liaison_may_not(client, task):
    _, commander = make_user("commander", department="government")
    _, liaison = make_user("liaison", department="transport")

    assert _post(client, f"/supply-tasks/{task.id}/batches", liaison,
                 {"dishes": DISHES, "meals": 1}).status_code == 403  # fmt: skip
    batch = _started(client, task, commander, meals=5)
    assert client.get(f"/api/batches/{batch['id']}", headers=bearer(liaison)).status_code == 200


def test_a_batch_over_the_meals_left_gets_409_naming_them(client, task):
    _, token = _supplier_user(task)
    _started(client, task, token, meals=task.meals - 7)

    answer = _post(client, f"/supply-tasks/{task.id}/batches", token,
                   {"dishes": DISHES, "meals": 8})  # fmt: skip

    assert (
        answer.status_code == 409 and f"7 of its {task.meals} meals left" in answer.json["message"]
    )


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("batches", {"dishes": DISHES, "meals": 1, "colour": "red"}, "colour"),
        ("batches", {"dishes": DISHES, "meals": "1"}, "meals"),
        ("batches", {"dishes": DISHES, "meals": 0}, "meals"),
        ("batches", {"dishes": DISHES}, "meals"),
        ("batches", {"dishes": [], "meals": 1}, "dishes"),
        ("batches", {"dishes": ["x" * 201], "meals": 1}, "dishes"),
        ("batches", {"dishes": DISHES, "meals": 1, "at": "2026-09-14T10:00:00"}, "at"),
        ("batches", {"dishes": DISHES, "meals": 1, "at": "2026-09-15T10:00:00+08:00"}, "at"),
        ("batches", {"dishes": DISHES, "meals": 1, "at": "yesterday"}, "at"),
        ("batches", {"dishes": ["米饭", "米饭"], "meals": 1}, "dishes.1"),
    ],
)
def test_bad_batch_bodies_get_422_naming_the_field(client, task, path, body, field):
    _, token = _supplier_user(task)

    answer = _post(client, f"/supply-tasks/{task.id}/{path}", token, body)

    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"].get("json", answer.json["errors"])
    assert db.session.scalar(select(func.count(Batch.id))) == 0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"temp_c": NaN}', "temp_c"),
        ('{"temp_c": Infinity}', "temp_c"),
        ('{"temp_c": 1e400}', "temp_c"),
        ('{"temp_c": 101}', "temp_c"),
        ('{"temp_c": -30.5}', "temp_c"),
        ('{"temp_c": "45"}', "temp_c"),
        ('{"temp_c": true}', "temp_c"),
        ('{"temp_c": 45, "at": "2026-09-14T10:10:00"}', "at"),
        ("{}", "temp_c"),
    ],
)
def test_bad_temperatures_get_422(client, task, raw, field):
    _, token = _supplier_user(task)
    batch = _started(client, task, token)
    _through_samples(client, batch["id"], token)

    answer = client.post(
        f"/api/batches/{batch['id']}/dispatch",
        data=raw,
        headers={**bearer(token), "Content-Type": "application/json"},
    )

    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]["json"]
    assert db.session.get(Batch, batch["id"]).status == "sampled"


def test_unknown_ids_get_404(client, task):
    _, token = make_user("commander", department="government")

    assert _post(client, "/batches/999999/cooked", token).status_code == 404
    assert _post(client, "/supply-tasks/999999/batches", token,
                 {"dishes": DISHES, "meals": 1}).status_code == 404  # fmt: skip
    assert client.get("/api/batches/999999", headers=bearer(token)).status_code == 404
    assert client.get("/api/batches/99999999999", headers=bearer(token)).status_code == 404


def test_wrong_states_get_409(client, task):
    _, token = _supplier_user(task)
    batch = _started(client, task, token)

    answer = _post(client, f"/batches/{batch['id']}/dispatch", token, {"temp_c": 45})
    assert answer.status_code == 409 and "still cooking" in answer.json["message"]
    assert _post(client, f"/batches/{batch['id']}/receive", token).status_code == 409
    _through_samples(client, batch["id"], token)
    assert _post(client, f"/batches/{batch['id']}/cooked", token).status_code == 409


def test_a_batch_served_too_late_is_kept_flagged_and_the_serving_refused(client, task):
    _, token = _supplier_user(task)
    batch = _started(client, task, token)
    _through_samples(client, batch["id"], token)
    _post(client, f"/batches/{batch['id']}/dispatch", token, {"temp_c": 45, "at": _iso(minutes(5))})
    _post(client, f"/batches/{batch['id']}/deliver", token, {"temp_c": 40, "at": _iso(minutes(60))})

    answer = _post(client, f"/batches/{batch['id']}/receive", token, {"at": _iso(minutes(100))})

    assert answer.status_code == 409 and "not served" in answer.json["message"]
    shown = client.get(f"/api/batches/{batch['id']}", headers=bearer(token)).json
    assert shown["status"] == "flagged" and "holding rule broken" in shown["flag"]
    again = _post(client, f"/batches/{batch['id']}/receive", token, {"at": _iso(minutes(101))})
    assert again.status_code == 409
    assert len(_flag_messages(task)) == 1


def test_two_batches_at_once_that_together_exceed_the_task_give_one_409(app, task):
    """Each request in its own thread and connection: the task's meals are never exceeded."""
    _, token = _supplier_user(task)
    meals, task_id = task.meals // 2 + 1, task.id
    db.session.commit()
    barrier = threading.Barrier(2)
    codes = []

    def post():
        own = app.test_client()
        barrier.wait(timeout=30)
        body = {"dishes": DISHES, "meals": meals}
        codes.append(_post(own, f"/supply-tasks/{task_id}/batches", token, body).status_code)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(codes) == [201, 409]
    db.session.expire_all()
    assert db.session.scalar(select(func.sum(Batch.meals))) == meals


# Pages ---------------------------------------------------------------------------------


def _english(client, path):
    """The page in English; Babel keeps its first choice in the test's app context."""
    from flask_babel import refresh

    refresh()
    joiner = "&" if "?" in path else "?"
    return client.get(f"{path}{joiner}lang=en")


def _page_user(client, role, **kwargs):
    from tests.helpers import sign_in

    user, _ = make_user(role, password="pw-batches-1234", **kwargs)
    sign_in(client, user.username, "pw-batches-1234")
    return user


def test_the_batch_page_shows_its_steps_temperatures_flag_and_samples(client, task):
    batch = _on_its_way(task)
    deliver_batch(batch, at=minutes(100), temp_c=37)
    db.session.commit()
    _page_user(client, "inspector")

    page = _english(client, f"/batches/{batch.id}").get_data(as_text=True)

    assert "Left the kitchen" in page and "40.0 °C" in page and "37.0 °C" in page
    assert 'class="flag"' in page and "holding rule broken" in page
    assert f"risk-{task.supplier.risk_colour}" in page
    assert "红烧鸡块" in page and "h left" in page
    assert f"{task.supplier.name}" in page


def test_the_batch_page_shows_user_text_literally(client, task):
    hostile = '<script>alert("x")</script> "引号"'
    batch = start_batch(task, dishes=[hostile], at=COOKED)
    finish_cooking(batch, COOKED)
    retain_samples(batch, at=COOKED, kept_at="<b>冰箱</b>", grams=150)
    db.session.commit()
    _page_user(client, "commander", department="government")

    page = client.get(f"/batches/{batch.id}").get_data(as_text=True)

    assert '<html lang="zh-CN">' in page and "需求点" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<b>冰箱</b>" not in page and "&lt;b&gt;冰箱&lt;/b&gt;" in page


def test_a_supplier_sees_only_its_own_batch_page(client, task):
    batch = start_batch(task, dishes=DISHES, at=COOKED)
    db.session.commit()
    other = db.session.scalar(
        select(Supplier).where(Supplier.id != task.supplier_id).order_by(Supplier.id).limit(1)
    )
    _page_user(client, "supplier", supplier=other.code)

    assert client.get(f"/batches/{batch.id}").status_code == 403


def test_an_unknown_batch_page_is_404(client, task):
    _page_user(client, "inspector")
    assert client.get("/batches/999999").status_code == 404


def test_tasks_without_batches_keep_counting_their_meals(task):
    """Figures of tasks marked delivered without batch rows stay as they were."""
    task.status = "delivered"
    db.session.flush()

    assert incident_figures(_incident(task))["delivered_meals"] == task.meals
    assert db.session.scalar(select(func.count(SupplyTask.id))) >= 1
