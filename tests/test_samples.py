"""Retained samples: one per dish per batch, each weighed and kept somewhere named, every
dish sampled before the batch leaves; kept for 48 hours, held for a food-safety incident
past that until released with a reason, and only then discarded. Through the services,
the API and the pages."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.services import open_incident
from app.process.services import latest_plan
from app.supply.models import Supplier
from app.supply.services import accept_task, allocate_meal, dispatch_batch, finish_cooking
from app.supply.services import start_batch as start
from app.techsupport.models import RetainedSample, SampleHold
from app.techsupport.samples import (
    discard_sample,
    find_samples,
    hold_samples,
    record_samples,
    release_hold,
    retain_samples,
)
from app.techsupport.services import retain_samples as retain_samples_from_services
from tests.helpers import (
    T0,
    bearer,
    csrf_token,
    incident,
    make_user,
    open_shelters,
    set_clock,
    sign_in,
)

LUNCH = T0 + timedelta(hours=4)
COOKED = T0 + timedelta(hours=2)
DISHES = ["米饭", "红烧鸡块", "清炒青菜"]
KEPT_UNTIL = COOKED + timedelta(hours=48)


@pytest.fixture
def task(region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 600})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    chosen = max(tasks, key=lambda t: t.meals)
    accept_task(chosen, T0)
    db.session.commit()
    set_clock(found, COOKED + timedelta(hours=1))
    return chosen


@pytest.fixture
def batch(task):
    made = start(task, dishes=DISHES, at=COOKED - timedelta(minutes=40))
    finish_cooking(made, COOKED)
    return made


def _entry(dish, grams=150, kept_at="留样冰箱 2 号"):
    return {"dish": dish, "grams": grams, "kept_at": kept_at}


def _all(batch, at=COOKED):
    return record_samples(batch, [_entry(d) for d in DISHES], at=at, by="张师傅")


def _poisoning(at=COOKED + timedelta(hours=20), drill_of=None):
    """A food-safety incident, of the same drill run as `drill_of` when given."""
    from app.drills.models import DrillRun

    run = db.session.get(DrillRun, drill_of.drill_run_id) if drill_of is not None else None
    found = open_incident(
        kind="food_safety",
        title="疑似食物中毒",
        plan=latest_plan("zhenhai-catering-supply"),
        at=at,
        drill_run=run,
    )
    db.session.flush()
    return found


def _incident_of(task):
    from app.incidents.models import Incident

    return db.session.get(Incident, task.incident_id)


# Retaining ---------------------------------------------------------------------------


def test_each_dish_gets_its_own_sample_with_its_weight_place_and_countdown(batch):
    samples = record_samples(
        batch,
        [_entry("米饭", 130), _entry("红烧鸡块", 200, "2 号冰箱上层"), _entry("清炒青菜")],
        at=COOKED,
        by="张师傅",
    )

    assert [(s.dish, s.grams, s.kept_at) for s in samples] == [
        ("米饭", 130, "留样冰箱 2 号"),
        ("红烧鸡块", 200, "2 号冰箱上层"),
        ("清炒青菜", 150, "留样冰箱 2 号"),
    ]
    assert all(s.keep_until == KEPT_UNTIL and s.retained_by == "张师傅" for s in samples)
    assert batch.status == "sampled" and batch.supply_task.status == "sampled"


def test_a_repeat_dish_is_refused(batch):
    record_samples(batch, [_entry("米饭")], at=COOKED)

    with pytest.raises(Conflict, match="米饭 sampled already"):
        record_samples(batch, [_entry("米饭")], at=COOKED)
    with pytest.raises(Conflict, match="红烧鸡块"):
        record_samples(batch, [_entry("红烧鸡块"), _entry("红烧鸡块")], at=COOKED)
    assert db.session.scalar(select(func.count(RetainedSample.id))) == 1


def test_a_sample_under_the_least_weight_is_refused_naming_the_dish(batch):
    with pytest.raises(InvalidInput) as refused:
        record_samples(batch, [_entry("米饭"), _entry("红烧鸡块", 124)], at=COOKED)

    assert refused.value.errors == {"samples.1.grams": ["红烧鸡块: at least 125 g, got 124 g"]}
    assert db.session.scalar(select(func.count(RetainedSample.id))) == 0


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (_entry("鱼香肉丝"), "samples.0.dish"),
        (_entry("米饭", kept_at=""), "samples.0.kept_at"),
        (_entry("米饭", kept_at="   "), "samples.0.kept_at"),
        (_entry("米饭", kept_at="x" * 201), "samples.0.kept_at"),
        (_entry("米饭", grams=150.5), "samples.0.grams"),
        (_entry("米饭", grams=True), "samples.0.grams"),
        (_entry("米饭", grams=20_000), "samples.0.grams"),
    ],
)
def test_bad_samples_are_refused_naming_the_field(batch, entry, field):
    with pytest.raises(InvalidInput) as refused:
        record_samples(batch, [entry], at=COOKED)
    assert field in refused.value.errors


def test_the_plan_least_weight_is_the_callers_to_give(batch):
    with pytest.raises(InvalidInput):
        record_samples(batch, [_entry("米饭", 150)], at=COOKED, min_grams=200)


def test_retain_samples_keeps_every_dish_and_is_importable_from_services(batch):
    assert retain_samples_from_services is retain_samples
    samples = retain_samples(batch, at=COOKED, kept_at="fridge", grams=150, keep_hours=72)

    assert [s.dish for s in samples] == DISHES
    assert all(s.keep_until - s.retained_at == timedelta(hours=72) for s in samples)


def test_a_batch_may_not_leave_until_every_dish_has_a_sample(batch):
    record_samples(batch, [_entry("米饭")], at=COOKED)

    with pytest.raises(Conflict, match="missing: 红烧鸡块, 清炒青菜"):
        dispatch_batch(batch, at=COOKED + timedelta(minutes=5), temp_c=45)
    record_samples(batch, [_entry("红烧鸡块"), _entry("清炒青菜")], at=COOKED)
    dispatch_batch(batch, at=COOKED + timedelta(minutes=5), temp_c=45)

    assert batch.status == "in_transit"


def test_samples_taken_while_cooking_count_once_it_is_cooked(task):
    cooking = start(task, dishes=DISHES, at=COOKED - timedelta(minutes=40))
    _all(cooking, at=COOKED - timedelta(minutes=5))
    assert cooking.status == "cooking"

    finish_cooking(cooking, COOKED)

    assert cooking.status == "sampled"


def test_no_samples_after_the_batch_has_left(batch):
    _all(batch)
    dispatch_batch(batch, at=COOKED + timedelta(minutes=5), temp_c=45)

    with pytest.raises(Conflict, match="in_transit"):
        record_samples(batch, [_entry("米饭")], at=COOKED + timedelta(minutes=6))


# Discarding and holds -----------------------------------------------------------------


def test_a_sample_discarded_early_is_refused_with_the_time_left(batch):
    sample = _all(batch)[0]

    with pytest.raises(Conflict, match="2 h 0 min left"):
        discard_sample(sample, "张师傅", KEPT_UNTIL - timedelta(hours=2))
    assert sample.discarded_at is None


def test_a_sample_may_be_discarded_once_its_keeping_time_is_over(batch):
    sample = _all(batch)[0]

    discard_sample(sample, "张师傅", KEPT_UNTIL)

    assert sample.discarded_at == KEPT_UNTIL and sample.discarded_by == "张师傅"
    with pytest.raises(Conflict, match="discarded at"):
        discard_sample(sample, "张师傅", KEPT_UNTIL + timedelta(hours=1))


def test_a_held_sample_is_kept_past_48_hours_until_released(batch):
    sample = _all(batch)[0]
    poisoning = _poisoning(drill_of=_incident_of(batch.supply_task))
    [hold] = hold_samples(poisoning, [sample], "安置点疑似食物中毒", COOKED + timedelta(hours=20))

    with pytest.raises(Conflict, match=f"held for incident {poisoning.id}"):
        discard_sample(sample, "张师傅", KEPT_UNTIL + timedelta(hours=30))
    release_hold(hold, "检验员", "检测合格，解除封存", KEPT_UNTIL + timedelta(hours=31))
    discard_sample(sample, "张师傅", KEPT_UNTIL + timedelta(hours=32))

    assert sample.discarded_at is not None
    assert hold.released_by == "检验员" and hold.release_reason == "检测合格，解除封存"


def test_a_release_needs_a_reason_and_happens_once(batch):
    sample = _all(batch)[0]
    [hold] = hold_samples(_poisoning(drill_of=_incident_of(batch.supply_task)), [sample], "封存",
                          COOKED)  # fmt: skip

    for reason in ("", "   ", None):
        with pytest.raises(InvalidInput) as refused:
            release_hold(hold, "检验员", reason, COOKED + timedelta(hours=1))
        assert "reason" in refused.value.errors
    with pytest.raises(InvalidInput) as refused:
        release_hold(hold, "检验员", "ok", COOKED - timedelta(hours=1))
    assert "before the hold began" in refused.value.errors["at"][0]
    release_hold(hold, "检验员", "ok", COOKED + timedelta(hours=1))
    with pytest.raises(Conflict, match="released at"):
        release_hold(hold, "检验员", "again", COOKED + timedelta(hours=2))


def test_holding_is_idempotent_per_sample_and_incident_and_takes_many_at_once(task):
    samples = []
    for _ in range(3):
        made = start(task, dishes=DISHES, meals=10, at=COOKED)
        finish_cooking(made, COOKED)
        samples += _all(made)
    poisoning = _poisoning(drill_of=_incident_of(task))

    first = hold_samples(poisoning, samples, "疑似中毒", COOKED + timedelta(hours=1))
    again = hold_samples(poisoning, samples + samples[:2], "疑似中毒", COOKED + timedelta(hours=2))

    assert len(first) == 9 and [h.id for h in again] == [h.id for h in first]
    assert db.session.scalar(select(func.count(SampleHold.id))) == 9
    assert all(h.held_at == COOKED + timedelta(hours=1) for h in again)


def test_a_released_hold_is_held_again_when_asked(batch):
    sample = _all(batch)[0]
    poisoning = _poisoning(drill_of=_incident_of(batch.supply_task))
    [hold] = hold_samples(poisoning, [sample], "第一次", COOKED)
    release_hold(hold, "检验员", "合格", COOKED + timedelta(hours=1))

    [again] = hold_samples(poisoning, [sample], "又有病例", COOKED + timedelta(hours=2))

    assert again.id == hold.id and again.released_at is None and again.reason == "又有病例"


def test_a_discarded_sample_cannot_be_held(batch):
    samples = _all(batch)
    discard_sample(samples[0], "张师傅", KEPT_UNTIL)

    holds = hold_samples(_poisoning(drill_of=_incident_of(batch.supply_task)), samples, "封存",
                         KEPT_UNTIL)  # fmt: skip

    assert sorted(h.sample_id for h in holds) == sorted(s.id for s in samples[1:])


def test_a_drill_holds_no_sample_of_another_run(batch):
    samples = _all(batch)
    other_drill = _poisoning(drill_of=incident())

    assert hold_samples(other_drill, samples, "演练封存", COOKED) == []


def test_a_hold_needs_a_reason(batch):
    with pytest.raises(InvalidInput):
        hold_samples(_poisoning(), _all(batch), " ", COOKED)


def test_samples_are_found_by_state_on_their_incidents_clock(batch):
    samples = _all(batch)
    poisoning = _poisoning(drill_of=_incident_of(batch.supply_task))
    hold_samples(poisoning, samples[:1], "封存", COOKED)
    db.session.commit()

    assert [s.id for s in find_samples(state="held")] == [samples[0].id]
    assert {s.id for s in find_samples(state="kept")} == {s.id for s in samples[1:]}
    assert find_samples(state="expired") == []
    set_clock(_incident_of(batch.supply_task), KEPT_UNTIL)
    assert {s.id for s in find_samples(state="expired")} == {s.id for s in samples[1:]}
    assert [s.id for s in find_samples(incident=poisoning)] == [samples[0].id]


# The API -------------------------------------------------------------------------------


def _supplier_token(task):
    return make_user("supplier", supplier=task.supplier.code)[1]


def _post(client, path, token, body=None):
    return client.post(f"/api{path}", json=body or {}, headers=bearer(token))


def _sampled(client, batch, token, grams=150):
    body = {"samples": [_entry(d, grams) for d in DISHES], "at": COOKED.isoformat()}
    return _post(client, f"/batches/{batch.id}/samples", token, body)


def test_the_api_keeps_one_sample_per_dish_and_shows_the_countdown(client, batch):
    token = _supplier_token(batch.supply_task)

    answer = _sampled(client, batch, token)

    assert answer.status_code == 201, answer.json
    shown = client.get(f"/api/batches/{batch.id}", headers=bearer(token)).json
    assert [s["dish"] for s in shown["samples"]] == DISHES
    assert all(s["hours_left"] == 47.0 and s["state"] == "kept" for s in shown["samples"])
    assert all(s["keep_until"] == "2026-09-16T02:00:00Z" for s in shown["samples"])
    assert shown["samples"][0]["retained_by"].startswith("test-supplier")
    assert _sampled(client, batch, token).status_code == 409


def test_the_api_refuses_light_samples_naming_the_dish(client, batch):
    token = _supplier_token(batch.supply_task)
    body = {"samples": [_entry("米饭"), _entry("红烧鸡块", 100)]}

    answer = _post(client, f"/batches/{batch.id}/samples", token, body)

    assert answer.status_code == 422
    assert answer.json["errors"] == {"samples.1.grams": ["红烧鸡块: at least 125 g, got 100 g"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"samples": []}, "samples"),
        ({"samples": [{"dish": "米饭", "grams": 150}]}, "samples"),
        ({"samples": [{**_entry("米饭"), "sealed": True}]}, "samples"),
        ({"samples": [_entry("米饭", "150")]}, "samples"),
        ({"samples": [_entry("米饭")], "at": "2026-09-14T10:00"}, "at"),
        ({"samples": [_entry("米饭")], "retained_by": "x" * 101}, "retained_by"),
    ],
)
def test_bad_sample_bodies_get_422(client, batch, body, field):
    token = _supplier_token(batch.supply_task)

    answer = _post(client, f"/batches/{batch.id}/samples", token, body)

    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]["json"]


def test_the_api_refuses_to_dispatch_naming_the_dishes_missing(client, batch):
    token = _supplier_token(batch.supply_task)
    _post(client, f"/batches/{batch.id}/samples", token, {"samples": [_entry("清炒青菜")]})

    answer = _post(client, f"/batches/{batch.id}/dispatch", token, {"temp_c": 50})

    assert answer.status_code == 409 and "missing: 米饭, 红烧鸡块" in answer.json["message"]


def test_samples_are_listed_by_supplier_state_and_incident(client, batch):
    token = _supplier_token(batch.supply_task)
    _sampled(client, batch, token)
    samples = db.session.scalars(select(RetainedSample).order_by(RetainedSample.id)).all()
    poisoning = _poisoning(drill_of=_incident_of(batch.supply_task))
    hold_samples(poisoning, samples[:1], "安置点报告腹泻", COOKED)
    db.session.commit()
    _, inspector = make_user("inspector")

    def listed(**query):
        answer = client.get("/api/samples", query_string=query, headers=bearer(inspector))
        assert answer.status_code == 200, answer.json
        return answer.json

    [held] = listed(state="held")
    assert held["held"] and held["holds"][0]["incident_id"] == poisoning.id
    assert held["holds"][0]["incident_title"] == "疑似食物中毒"
    assert held["supplier"]["risk_colour"] == batch.supply_task.supplier.risk_colour
    assert len(listed(state="kept")) == 2
    assert len(listed(supplier=batch.supply_task.supplier.code)) == 3
    assert [s["id"] for s in listed(incident=poisoning.id)] == [samples[0].id]
    assert listed(state="discarded") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": "lost"}, "state"),
        ({"supplier": "NOPE-1"}, "supplier"),
        ({"incident": "999999"}, "incident"),
        ({"incident": "-1"}, "incident"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_sample_queries_get_422(client, batch, query, field):
    _, inspector = make_user("inspector")

    answer = client.get("/api/samples", query_string=query, headers=bearer(inspector))

    assert answer.status_code == 422
    errors = answer.json["errors"]
    assert field in errors.get("query", errors)


def test_a_supplier_lists_only_its_own_samples(client, batch):
    _sampled(client, batch, _supplier_token(batch.supply_task))
    other = db.session.scalar(
        select(Supplier).where(Supplier.id != batch.supplier_id).order_by(Supplier.id).limit(1)
    )
    _, theirs = make_user("supplier", supplier=other.code)

    assert client.get("/api/samples", headers=bearer(theirs)).json == []
    mine = client.get(
        "/api/samples", query_string={"supplier": batch.supply_task.supplier.code},
        headers=bearer(theirs),
    )  # fmt: skip
    assert mine.status_code == 403
    sample_id = db.session.scalar(select(RetainedSample.id).limit(1))
    assert _post(client, f"/samples/{sample_id}/discard", theirs).status_code == 403


def test_the_api_discards_only_after_the_countdown_and_the_holds(client, batch):
    token = _supplier_token(batch.supply_task)
    _sampled(client, batch, token)
    sample = db.session.scalar(select(RetainedSample).order_by(RetainedSample.id).limit(1))
    sample_id = sample.id
    [hold] = hold_samples(_poisoning(drill_of=_incident_of(batch.supply_task)), [sample],
                          "封存", COOKED)  # fmt: skip
    hold_id = hold.id
    db.session.commit()
    _, commander = make_user("commander", department="government")
    _, inspector = make_user("inspector")

    early = _post(client, f"/samples/{sample_id}/discard", token)
    assert early.status_code == 409 and "held for incident" in early.json["message"]
    set_clock(_incident_of(batch.supply_task), KEPT_UNTIL + timedelta(hours=5))
    held = _post(client, f"/samples/{sample_id}/discard", token)
    assert held.status_code == 409 and "疑似食物中毒" in held.json["message"]

    assert (
        _post(client, f"/sample-holds/{hold_id}/release", token, {"reason": "ok"}).status_code
        == 403
    )
    assert _post(client, f"/sample-holds/{hold_id}/release", inspector).status_code == 422
    blank = _post(client, f"/sample-holds/{hold_id}/release", inspector, {"reason": "  "})
    assert blank.status_code == 422 and "reason" in blank.json["errors"]["json"]
    released = _post(client, f"/sample-holds/{hold_id}/release", commander, {"reason": "合格"})
    assert released.status_code == 200 and released.json["open"] is False
    assert _post(client, f"/sample-holds/{hold_id}/release", commander,
                 {"reason": "again"}).status_code == 409  # fmt: skip

    discarded = _post(client, f"/samples/{sample_id}/discard", token)
    assert discarded.status_code == 200 and discarded.json["state"] == "discarded"
    assert _post(client, f"/samples/{sample_id}/discard", token).status_code == 409
    assert _post(client, "/samples/999999/discard", token).status_code == 404
    assert _post(client, "/sample-holds/999999/release", commander,
                 {"reason": "x"}).status_code == 404  # fmt: skip


def test_an_early_discard_over_the_api_names_the_time_left(client, batch):
    token = _supplier_token(batch.supply_task)
    _sampled(client, batch, token)
    sample_id = db.session.scalar(select(RetainedSample.id).limit(1))

    answer = _post(client, f"/samples/{sample_id}/discard", token)

    assert answer.status_code == 409 and "47 h 0 min left" in answer.json["message"]
    ahead = _post(client, f"/samples/{sample_id}/discard", token,
                  {"at": (KEPT_UNTIL + timedelta(hours=1)).isoformat()})  # fmt: skip
    assert ahead.status_code == 422 and "at" in ahead.json["errors"]


# Pages ---------------------------------------------------------------------------------


def _english(client, path):
    """The page in English; Babel keeps its first choice in the test's app context."""
    from flask_babel import refresh

    refresh()
    joiner = "&" if "?" in path else "?"
    return client.get(f"{path}{joiner}lang=en")


def _signed_in(client, role, **kwargs):
    user, _ = make_user(role, password="pw-samples-1234", **kwargs)
    sign_in(client, user.username, "pw-samples-1234")
    return user


def _held_and_expired(batch):
    samples = _all(batch)
    poisoning = _poisoning(drill_of=_incident_of(batch.supply_task))
    [hold] = hold_samples(poisoning, samples[:1], "安置点报告<b>腹泻</b>", COOKED)
    set_clock(_incident_of(batch.supply_task), KEPT_UNTIL + timedelta(hours=1))
    db.session.commit()
    return samples, hold, poisoning


def test_the_samples_page_marks_held_ones_with_the_incident(client, batch):
    samples, hold, poisoning = _held_and_expired(batch)
    _signed_in(client, "inspector")

    page = _english(client, "/samples").get_data(as_text=True)

    assert "Retained samples" in page and f"incident {poisoning.id}" in page
    assert "疑似食物中毒" in page and "&lt;b&gt;腹泻&lt;/b&gt;" in page
    assert f"/sample-holds/{hold.id}/release" in page
    assert f"/samples/{samples[1].id}/discard" in page
    assert f"/samples/{samples[0].id}/discard" not in page  # held: no discard button
    assert f"risk-{batch.supply_task.supplier.risk_colour}" in page
    assert 'href="/samples"' in page  # the nav


def test_the_samples_page_speaks_chinese_by_default(client, batch):
    _held_and_expired(batch)
    _signed_in(client, "inspector")

    page = client.get("/samples").get_data(as_text=True)

    assert '<html lang="zh-CN">' in page


def test_a_supplier_gets_no_release_button(client, batch):
    _, hold, _ = _held_and_expired(batch)
    _signed_in(client, "supplier", supplier=batch.supply_task.supplier.code)

    page = _english(client, "/samples").get_data(as_text=True)

    assert f"/sample-holds/{hold.id}/release" not in page
    assert client.post(f"/sample-holds/{hold.id}/release", data={"reason": "x"}).status_code == 403


def test_the_pages_discard_and_release_with_csrf(client, batch):
    samples, hold, _ = _held_and_expired(batch)
    sample_id, held_id, hold_id = samples[1].id, samples[0].id, hold.id
    _signed_in(client, "commander", department="government")
    token = csrf_token(_english(client, "/samples").get_data(as_text=True))

    assert client.post(f"/samples/{sample_id}/discard").status_code == 400  # no CSRF
    done = client.post(f"/samples/{sample_id}/discard?lang=en", data={"csrf_token": token})
    assert done.status_code == 302
    refused = client.post(f"/samples/{held_id}/discard?lang=en", data={"csrf_token": token})
    assert refused.status_code == 409 and "held for incident" in refused.get_data(as_text=True)
    blank = client.post(f"/sample-holds/{hold_id}/release?lang=en",
                        data={"csrf_token": token, "reason": ""})  # fmt: skip
    assert blank.status_code == 422
    released = client.post(f"/sample-holds/{hold_id}/release?lang=en",
                           data={"csrf_token": token, "reason": "检测合格"})  # fmt: skip
    assert released.status_code == 302

    db.session.expire_all()
    assert db.session.get(RetainedSample, sample_id).discarded_at is not None
    assert db.session.get(SampleHold, hold_id).release_reason == "检测合格"
    assert db.session.get(RetainedSample, held_id).discarded_at is None


def test_the_samples_page_refuses_an_unknown_state(client, batch):
    _signed_in(client, "inspector")

    assert _english(client, "/samples?state=lost").status_code == 422


def test_a_sample_dated_before_its_task_was_set_is_refused(task):
    """Backdating the seal would let the 48 hours run out at once."""
    made = start(task, dishes=DISHES, at=COOKED - timedelta(minutes=40))

    with pytest.raises(InvalidInput) as refused:
        record_samples(made, [_entry(d) for d in DISHES], at=T0 - timedelta(days=3), by="张")
    with pytest.raises(InvalidInput):
        finish_cooking(made, T0 - timedelta(days=3))

    assert "before supply task" in refused.value.errors["at"][0]
    from app.techsupport.batches import missing_samples

    assert missing_samples(made) == DISHES


def test_a_finished_drills_samples_stay_as_it_left_them(batch):
    """Its clock has stopped: a discard or release after it is over would be misdated."""
    from app.techsupport.batches import incident_of

    [sample, *_] = _all(batch)
    hold = hold_samples(_poisoning(drill_of=incident_of(batch)), [sample], "trace", COOKED)[0]
    incident_of(batch).status = "closed"

    with pytest.raises(Conflict, match="is over"):
        discard_sample(sample, "张", KEPT_UNTIL + timedelta(hours=1))
    with pytest.raises(Conflict, match="is over"):
        release_hold(hold, "王", "traced clean", KEPT_UNTIL)
    assert sample.discarded_at is None and hold.released_at is None
