"""Notifications reach people: a real local SMTP server, DingTalk robot and SMS gateway
take them from real workers, with retries, cover for people off duty, and drills that
send only where their run says."""

import base64
import hashlib
import hmac
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.coordination import delivery
from app.coordination.channels import dingtalk_sign
from app.coordination.models import ChannelPreference, Delivery, GroupRobot, Notification
from app.coordination.receivers import (
    DingTalkReceiver,
    LocalReceivers,
    SmsGatewayReceiver,
    SmtpReceiver,
)
from app.coordination.services import notify
from app.errors import InvalidInput
from app.extensions import db
from app.incidents.services import open_incident
from app.organisation.models import Person
from app.organisation.services import add_shift, department
from app.process.response import activate
from app.process.services import latest_plan
from app.queue import get_redis
from app.types import utcnow
from tests.helpers import T0, bearer, csrf_token, drill_run, incident, make_user, sign_in
from workers.jobs import deliver_notifications


@pytest.fixture
def quick(app):
    """Retries without waiting, and few of them."""
    app.config["BAOGONG_NOTIFY_BACKOFF_SECONDS"] = 0
    app.config["BAOGONG_NOTIFY_MAX_ATTEMPTS"] = 4
    return app


def _person(code, **changes):
    person = db.session.scalar(select(Person).filter_by(code=code))
    for name, value in changes.items():
        setattr(person, name, value)
    db.session.commit()
    return person


def _deliveries(message, channel=None):
    db.session.expire_all()
    rows = db.session.scalars(select(Delivery).filter_by(notification_id=message.id)).all()
    if channel is None:
        return {row.channel: row for row in rows}
    return next(row for row in rows if row.channel == channel)


def _drain(run_worker, incident_ids=None, rounds=12):
    """Relay and work until nothing is left to send (retries are due at once here)."""
    for _ in range(rounds):
        if not delivery.relay(incident_ids) and not delivery.unfinished(incident_ids):
            return
        run_worker()
    raise AssertionError("deliveries still unfinished")


def _message(found, person, key="note-1", subject="请确认职责：测试", body="中文正文，请查收。"):
    message = notify(
        key=key, kind="test", subject=subject, body=body, incident=found, person=person, at=T0
    )
    db.session.commit()
    return message


def _sms(app, receiver):
    app.config["BAOGONG_SMS_URL"] = receiver.url
    app.config["BAOGONG_SMS_TOKEN"] = receiver.token


def test_email_reaches_a_real_smtp_server_with_the_stable_message_id(region, quick, run_worker):
    """The email arrives over SMTP, in Chinese, with a Message-ID made from the key."""
    found = incident(drill=False)
    person = _person("ms-liaison-1", email="wangmin@example.org")
    with SmtpReceiver() as smtp:
        quick.config.update(BAOGONG_SMTP_HOST=smtp.host, BAOGONG_SMTP_PORT=smtp.port)
        message = _message(found, person, key="duty-assigned-7")
        _drain(run_worker)

    [mail] = smtp.messages
    assert mail["Message-ID"] == "<duty-assigned-7@baogong.local>"
    assert mail["Subject"] == "请确认职责：测试"
    assert mail["To"] == "wangmin@example.org"
    assert mail.get_content().startswith("中文正文，请查收。")
    row = _deliveries(message, "email")
    assert (row.status, row.attempts, row.address) == ("sent", 1, "wangmin@example.org")


def test_a_lost_smtp_answer_repeats_the_message_under_the_same_message_id(
    region, quick, run_worker
):
    """The server takes the message but the answer is lost: it comes again, same key."""
    found = incident(drill=False)
    person = _person("ms-liaison-1", email="wangmin@example.org")
    with SmtpReceiver(lose_first=1) as smtp:
        quick.config.update(BAOGONG_SMTP_HOST=smtp.host, BAOGONG_SMTP_PORT=smtp.port)
        message = _message(found, person, key="lost-answer")
        _drain(run_worker)

    assert smtp.count("lost-answer") == 2
    assert smtp.duplicates == 1
    assert {m["Message-ID"] for m in smtp.messages} == {"<lost-answer@baogong.local>"}
    assert _deliveries(message, "email").attempts == 2


def test_dingtalk_signature_follows_the_documented_format():
    """HMAC-SHA256 keyed with the secret over "timestamp\\nsecret", in base64."""
    secret, timestamp = "SEC-test-secret", 1577262236757
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert dingtalk_sign(secret, timestamp) == expected


def test_the_group_robot_gets_a_signed_message_with_its_key(region, quick, run_worker):
    """The webhook receiver checks the signature and reads the key from msgId."""
    found = incident(drill=False)
    person = _person("ms-liaison-1")
    with DingTalkReceiver(secret="SEC-right") as robot:
        delivery.set_robot(
            department("market_supervision"),
            name="市监局保供群",
            url=robot.endpoint()["url"],
            secret="SEC-right",
            at=T0,
        )
        message = _message(found, person, key="robot-1")
        _drain(run_worker)

    assert robot.refused == 0
    [body] = robot.messages
    assert body["msgId"] == "robot-1" and body["msgtype"] == "text"
    assert "robot-1" in body["text"]["content"] and "请确认职责" in body["text"]["content"]
    assert body["at"]["atMobiles"] == [person.phone]
    assert _deliveries(message, "dingtalk").address == "市监局保供群"


def test_a_wrong_robot_secret_is_refused_and_ends_failed(region, quick, run_worker):
    """DingTalk's errcode for a bad signature is a failure, retried, then failed."""
    found = incident(drill=False)
    person = _person("ms-liaison-1")
    with DingTalkReceiver(secret="SEC-right") as robot:
        delivery.set_robot(
            None, name="指挥部群", url=robot.endpoint()["url"], secret="SEC-wrong", at=T0
        )
        message = _message(found, person, key="robot-bad")
        _drain(run_worker)

    assert robot.messages == [] and robot.refused == 4
    row = _deliveries(message, "dingtalk")
    assert (row.status, row.attempts) == ("failed", 4)
    assert "310000" in row.last_error


def test_a_receiver_failing_twice_still_gets_the_message_once(region, quick, run_worker):
    """Two refusals before recording: the third try lands, and no repeat is seen."""
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token", fail_first=2) as gateway:
        _sms(quick, gateway)
        message = _message(found, _person("ms-liaison-1"), key="sms-1")
        _drain(run_worker)

    row = _deliveries(message, "sms")
    assert (row.status, row.attempts) == ("sent", 3)
    assert "HTTP 500" in row.last_error
    assert gateway.requests == 3 and gateway.count("sms-1") == 1 and gateway.duplicates == 0
    [sms] = gateway.messages
    assert sms["to"] == "0574-0000-0101" and sms["message_id"] == "sms-1"
    assert sms["text"].startswith("请确认职责：测试")


def test_a_lost_answer_is_a_repeat_the_gateway_tells_by_key(region, quick, run_worker):
    """Recorded, then answered 500: the message comes again and counts as a duplicate."""
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token", lose_first=1) as gateway:
        _sms(quick, gateway)
        message = _message(found, _person("ms-liaison-1"), key="sms-lost")
        _drain(run_worker)

    assert _deliveries(message, "sms").attempts == 2
    assert gateway.count("sms-lost") == 2 and gateway.duplicates == 1


def test_attempts_run_out_and_the_delivery_fails_with_the_error(region, quick, run_worker):
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token", fail_first=100) as gateway:
        _sms(quick, gateway)
        message = _message(found, _person("ms-liaison-1"), key="sms-down")
        _drain(run_worker)

    row = _deliveries(message, "sms")
    assert (row.status, row.attempts) == ("failed", 4)
    assert row.last_error.startswith("HTTP 500")
    assert gateway.requests == 4 and gateway.messages == []


def test_a_wrong_gateway_token_fails_at_once(region, quick, run_worker):
    """401 cannot get better by trying again."""
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token") as gateway:
        quick.config.update(BAOGONG_SMS_URL=gateway.url, BAOGONG_SMS_TOKEN="not-it")
        message = _message(found, _person("ms-liaison-1"), key="sms-token")
        _drain(run_worker)

    row = _deliveries(message, "sms")
    assert (row.status, row.attempts) == ("failed", 1)
    assert "HTTP 401" in row.last_error


def test_a_failed_try_waits_its_backoff_in_the_database(region, app):
    """The next attempt's instant is on the row; the relay leaves it until then."""
    app.config["BAOGONG_NOTIFY_BACKOFF_SECONDS"] = 60
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token", fail_first=2) as gateway:
        _sms(app, gateway)
        message = _message(found, _person("ms-liaison-1"), key="sms-wait")
        row = _deliveries(message, "sms")
        now = utcnow()

        assert delivery.deliver([row.id], at=now) == {row.id: "retry"}
        db.session.expire_all()
        assert row.next_attempt_at == now + timedelta(seconds=60)
        assert delivery.relay(at=now + timedelta(seconds=30)) == 0
        assert delivery.deliver([row.id], at=now + timedelta(seconds=30)) == {row.id: "not due"}

        later = now + timedelta(seconds=61)
        assert delivery.deliver([row.id], at=later) == {row.id: "retry"}
        db.session.expire_all()
        assert row.next_attempt_at == later + timedelta(seconds=120)
        assert delivery.deliver([row.id], at=later + timedelta(seconds=121)) == {row.id: "sent"}

    assert gateway.count("sms-wait") == 1


def test_a_job_run_twice_sends_once(region, quick):
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token") as gateway:
        _sms(quick, gateway)
        message = _message(found, _person("ms-liaison-1"), key="sms-twice")
        assert delivery.relay() == 1
        assert delivery.relay() == 0
        row_id = _deliveries(message, "sms").id
        db.session.commit()  # the job works in a session of its own

        assert deliver_notifications([row_id]) == {row_id: "sent"}
        assert deliver_notifications([row_id]) == {row_id: "not due"}

    assert gateway.count("sms-twice") == 1


def test_a_job_lost_with_redis_is_put_back_and_sent(region, quick, run_worker):
    """Redis restarted without its data: the reconciler finds the job gone."""
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token") as gateway:
        _sms(quick, gateway)
        message = _message(found, _person("ms-liaison-1"), key="sms-redis")
        assert delivery.relay() == 1
        get_redis().flushdb()

        assert delivery.reconcile(60, min_age_seconds=0) == 1
        _drain(run_worker)

    assert _deliveries(message, "sms").status == "sent"
    assert gateway.count("sms-redis") == 1


def test_a_silent_receiver_holds_up_only_its_own_message(region, quick):
    """While a worker waits on a gateway that does not answer, the database stays free for
    everyone else (SQLite lets one writer in at a time)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrived, answer = threading.Event(), threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.set()
            answer.wait(timeout=60)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    quick.config["BAOGONG_SMS_URL"] = f"http://127.0.0.1:{server.server_port}/sms"
    found = incident(drill=False)
    message = _message(found, _person("ms-liaison-1"), key="sms-silent")
    row_id = _deliveries(message, "sms").id
    db.session.commit()
    outcome = {}

    def work():
        with quick.app_context():
            outcome.update(delivery.deliver([row_id]))

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert arrived.wait(timeout=30)
        _person("ms-liaison-2", email="meanwhile@example.org")  # a write, while it waits
    finally:
        answer.set()
        worker.join(timeout=60)
        server.shutdown()

    assert outcome == {row_id: "sent"}
    assert _person("ms-liaison-2").email == "meanwhile@example.org"


def test_a_worker_lost_after_sending_sends_again_under_the_same_key(region, quick, run_worker):
    """At least once: the send happened, its record did not; the repeat carries the key."""
    found = incident(drill=False)
    with SmsGatewayReceiver(token="gw-token") as gateway:
        _sms(quick, gateway)
        message = _message(found, _person("ms-liaison-1"), key="sms-died")
        row = _deliveries(message, "sms")
        assert delivery.claim(row.id, utcnow(), job_id="delivery-of-a-dead-worker")
        db.session.commit()
        send = delivery._outgoing(db.session.get(Delivery, row.id), None)
        db.session.commit()
        send()  # then the worker died

        assert delivery.reconcile(60, min_age_seconds=0) == 1
        _drain(run_worker)

    row = _deliveries(message, "sms")
    assert (row.status, row.attempts) == ("sent", 2)
    assert gateway.count("sms-died") == 2 and gateway.duplicates == 1


def test_someone_off_shift_is_skipped_for_who_is_on_duty(region):
    found = incident(drill=False)
    office = department("market_supervision")
    meant, covering = _person("ms-liaison-1"), _person("ms-liaison-2")
    add_shift(
        department_id=office.id,
        role="liaison",
        person=covering,
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=8),
    )
    message = _message(found, meant, key="shift")

    assert message.person_id == covering.id
    assert message.skipped_person_id == meant.id
    assert meant.name in message.cover_note and covering.name in message.cover_note


def test_someone_out_of_reach_is_covered_by_the_shift_substitute(region):
    found = incident(drill=False)
    office = department("market_supervision")
    meant, substitute = _person("ms-liaison-1"), _person("ms-liaison-2")
    add_shift(
        department_id=office.id,
        role="liaison",
        person=meant,
        substitute=substitute,
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=8),
    )
    assert _message(found, meant, key="on-shift").person_id == meant.id

    _person("ms-liaison-1", available=False)
    message = _message(found, meant, key="unreachable")
    assert (message.person_id, message.skipped_person_id) == (substitute.id, meant.id)
    assert "暂无法联系" in message.cover_note


def test_channels_follow_the_persons_choice(region, app):
    """Unchosen: every channel with an address; chosen: those only, the inbox always."""
    app.config.update(BAOGONG_SMTP_HOST="127.0.0.1", BAOGONG_SMS_URL="http://127.0.0.1:9/sms")
    found = incident(drill=False)
    person = _person("ms-liaison-1", email="wangmin@example.org")

    assert set(_deliveries(_message(found, person, key="default"))) == {"inapp", "email", "sms"}

    assert delivery.set_channels(person, ["sms"], T0) == ["inapp", "sms"]
    assert set(_deliveries(_message(found, person, key="chosen"))) == {"inapp", "sms"}

    delivery.set_channels(person, ["email", "sms"], T0)
    _person("ms-liaison-1", phone=None)
    rows = _deliveries(_message(found, person, key="no-phone"))
    assert rows["sms"].status == "skipped" and rows["sms"].skip_reason == "no phone number on file"


def test_a_channel_without_an_address_cannot_be_chosen(region):
    person = _person("ms-liaison-1")
    with pytest.raises(InvalidInput) as refused:
        delivery.set_channels(person, ["email", "dingtalk", "fax"], T0)
    messages = refused.value.errors["channels"]
    assert any("fax" in m for m in messages)
    assert any("email address" in m for m in messages)
    assert any("group robot" in m for m in messages)
    assert db.session.scalar(select(func.count(ChannelPreference.id))) == 0


def test_a_message_to_a_supplier_goes_to_its_inbox(region, app):
    from app.supply.models import Supplier

    found = incident(drill=False)
    supplier = db.session.scalar(select(Supplier).limit(1))
    message = notify(
        key="sup", kind="test", subject="任务", incident=found, supplier=supplier, at=T0
    )
    assert {c: r.status for c, r in _deliveries(message).items()} == {"inapp": "sent"}


def _drill_incident(endpoints):
    """A drill incident whose run sends to `endpoints`, set before activation."""
    run = drill_run()
    run.notification_endpoints = endpoints
    found = open_incident(
        kind="supply_emergency",
        title="drill",
        plan=latest_plan("zhenhai-catering-supply"),
        at=T0,
        drill_run=run,
    )
    activate(found, "II", at=T0, reason="test activation")
    db.session.commit()
    return found


def test_a_drill_sends_only_to_its_own_endpoints(region, quick, run_worker):
    """Production's SMTP server gets nothing; unconfigured channels are skipped and
    counted; the run's SMS gateway gets every message, repeats counted by key."""
    _person("ms-liaison-1", email="wangmin@example.org")
    with SmtpReceiver() as production, LocalReceivers() as local:
        quick.config.update(BAOGONG_SMTP_HOST=production.host, BAOGONG_SMTP_PORT=production.port)
        local.sms.lose_next(1)
        found = _drill_incident({"sms": local.sms.endpoint()})
        message = _message(found, _person("ms-liaison-1"), key="drill-sms")
        _drain(run_worker, [found.id])
        figures = delivery.notification_figures(found, [local])

    assert production.messages == []
    rows = _deliveries(message)
    assert rows["email"].skip_reason == rows["dingtalk"].skip_reason == delivery.NOT_IN_DRILL
    assert rows["sms"].status == "sent"

    people = db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.incident_id == found.id, Notification.person_id.is_not(None)
        )
    )
    everything = db.session.scalar(
        select(func.count(Notification.id)).filter_by(incident_id=found.id)
    )
    with_email = db.session.scalar(
        select(func.count(Notification.id)).filter_by(
            incident_id=found.id, person_id=_person("ms-liaison-1").id
        )
    )
    assert len(local.sms.keys) == people > with_email > 1
    assert figures == {
        "sent": everything + people,  # the inbox of every message, the SMS of each person's
        "failed": 0,
        "skipped": people + with_email,  # DingTalk for each; email for those with an address
        "duplicates": 1,
    }


def test_a_drill_reaches_people_on_its_channels_whatever_they_chose(region, quick):
    """Real channel choices would make a drill's figures differ from run to run."""
    person = _person("ms-liaison-1")
    delivery.set_channels(person, ["sms"], T0)
    db.session.commit()
    with LocalReceivers() as local:
        found = _drill_incident({"dingtalk": local.dingtalk.endpoint()})
        message = _message(found, person, key="drill-choice")

    assert {row.channel: row.status for row in _deliveries(message).values()} == {
        "inapp": "sent",
        "dingtalk": "pending",
        "sms": "skipped",
    }


def test_a_stopped_drill_gives_up_its_messages(region, quick):
    with LocalReceivers() as local:
        found = _drill_incident({"sms": local.sms.endpoint()})
        message = _message(found, _person("ms-liaison-1"), key="drill-stopped")

    assert delivery.give_up(found, "the drill stopped before it was sent") >= 1
    db.session.commit()
    row = _deliveries(message, "sms")
    assert (row.status, row.last_error) == ("failed", "the drill stopped before it was sent")
    assert delivery.relay() == 0


def test_a_drill_sends_signed_robot_messages_and_mail_to_its_receivers(region, quick, run_worker):
    with LocalReceivers() as local:
        endpoints = local.endpoints()
        endpoints["email"]["to"] = "drill-inbox@baogong.local"
        found = _drill_incident(endpoints)
        _drain(run_worker, [found.id])

    assert local.dingtalk.refused == 0 and local.dingtalk.messages
    assert all(m["text"]["content"].startswith("[演练]") for m in local.dingtalk.messages)
    assert {m["To"] for m in local.email.messages} == {"drill-inbox@baogong.local"}
    assert len(local.email.keys) == len(local.dingtalk.keys) == len(local.sms.keys)
    assert local.duplicates == 0


# The API and the pages ------------------------------------------------------------------


def _paged_user(role, person_code, department_code):
    user, token = make_user(role, department=department_code, password="pw-inbox-123456")
    user.person_id = _person(person_code).id
    db.session.commit()
    return user, token


def test_the_inbox_lists_ones_own_notifications_and_marks_them_read(region, client):
    found = incident(drill=False)
    _, token = _paged_user("liaison", "ms-liaison-1", "market_supervision")
    mine = _message(found, _person("ms-liaison-1"), key="mine")
    other = _message(found, _person("gov-liaison-1"), key="not-mine")

    listed = client.get("/api/inbox?unread=true", headers=bearer(token)).get_json()
    assert "mine" in [n["key"] for n in listed] and "not-mine" not in [n["key"] for n in listed]
    assert listed[0]["deliveries"][0]["channel"] == "inapp"

    answer = client.post(f"/api/notifications/{mine.id}/read", json={}, headers=bearer(token))
    assert answer.status_code == 200 and answer.get_json()["read_at"]
    unread = client.get("/api/inbox?unread=true", headers=bearer(token)).get_json()
    assert "mine" not in [n["key"] for n in unread]

    assert (
        client.post(f"/api/notifications/{other.id}/read", json={}, headers=bearer(token))
    ).status_code == 404
    stray = client.post(f"/api/notifications/{mine.id}/read", json={"x": 1}, headers=bearer(token))
    assert stray.status_code == 422 and "x" in stray.get_json()["errors"]["json"]
    bad = client.get("/api/inbox?unread=maybe", headers=bearer(token))
    assert bad.status_code == 422 and "unread" in bad.get_json()["errors"]["query"]
    assert client.get("/api/inbox").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channels": ["fax"]}, "channels"),
        ({"channels": "sms"}, "channels"),
        ({}, "channels"),
        ({"channels": ["sms"], "colour": "red"}, "colour"),
    ],
)
def test_bad_channel_choices_are_refused_naming_the_field(region, client, body, field):
    _, token = _paged_user("liaison", "ms-liaison-1", "market_supervision")
    answer = client.put("/api/me/channels", json=body, headers=bearer(token))
    assert answer.status_code == 422
    assert field in answer.get_json()["errors"]["json"]


def test_channels_over_the_api(region, client):
    _, token = _paged_user("liaison", "ms-liaison-1", "market_supervision")
    shown = client.get("/api/me/channels", headers=bearer(token)).get_json()
    assert shown["chosen"] is False and shown["channels"] == ["inapp", "sms"]
    assert shown["reachable"]["email"] is False

    refused = client.put("/api/me/channels", json={"channels": ["email"]}, headers=bearer(token))
    assert refused.status_code == 422
    assert "email address" in refused.get_json()["errors"]["channels"][0]

    saved = client.put("/api/me/channels", json={"channels": ["sms"]}, headers=bearer(token))
    assert saved.status_code == 200 and saved.get_json()["channels"] == ["inapp", "sms"]
    assert saved.get_json()["chosen"] is True

    _, unpaged = make_user("viewer")
    assert client.get("/api/me/channels", headers=bearer(unpaged)).status_code == 409


def test_the_commander_sees_every_delivery_of_an_incident(region, client, app):
    app.config["BAOGONG_SMS_URL"] = "http://127.0.0.1:9/sms"
    found = incident(drill=False)
    _message(found, _person("ms-liaison-1"), key="watched")
    _, commander = make_user("commander", department="government")
    _, liaison = make_user("liaison", department="market_supervision")

    url = f"/api/incidents/{found.id}/notifications"
    rows = client.get(url + "?channel=sms", headers=bearer(commander)).get_json()
    [row] = [r for r in rows if r["key"] == "watched"]
    assert row["person"] == "ms-liaison-1"
    assert {d["channel"]: d["status"] for d in row["deliveries"]} == {
        "inapp": "sent",
        "sms": "pending",
    }
    assert client.get(url, headers=bearer(liaison)).status_code == 403
    bad = client.get(url + "?status=lost", headers=bearer(commander))
    assert bad.status_code == 422 and "status" in bad.get_json()["errors"]["query"]
    assert (
        client.get("/api/incidents/999999/notifications", headers=bearer(commander)).status_code
        == 404
    )


def test_the_inbox_page_speaks_chinese_marks_read_and_saves_channels(region, client):
    found = incident(drill=False)
    user, _ = _paged_user("liaison", "ms-liaison-1", "market_supervision")
    message = _message(found, _person("ms-liaison-1"), key="page", subject="<b>送餐</b>任务")
    sign_in(client, user.username, "pw-inbox-123456")

    page = client.get("/inbox").get_data(as_text=True)
    assert "收件箱" in page and "&lt;b&gt;送餐&lt;/b&gt;任务" in page
    token = csrf_token(page)
    assert client.post(f"/inbox/{message.id}/read", data={"csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Notification, message.id).read_at is not None

    refused = client.post("/inbox/channels", data={"csrf_token": token, "email": "y"})
    assert refused.status_code == 422 and "email needs an email address" in refused.get_data(
        as_text=True
    )
    saved = client.post("/inbox/channels", data={"csrf_token": token, "sms": "y"})
    assert saved.status_code == 302
    assert delivery.preferred_channels(_person("ms-liaison-1")) == ["inapp", "sms"]
    from flask_babel import refresh

    refresh()  # the test's app context keeps the locale of the last request
    assert "How you are reached" in client.get("/inbox?lang=en").get_data(as_text=True)
    refresh()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BAOGONG_SMTP_PORT", "70000"),
        ("BAOGONG_SMTP_STARTTLS", "maybe"),
        ("BAOGONG_SMS_URL", "ftp://gateway"),
        ("BAOGONG_NOTIFY_MAX_ATTEMPTS", "0"),
        ("BAOGONG_NOTIFY_BACKOFF_SECONDS", "nan"),
        ("BAOGONG_NOTIFY_TIMEOUT_SECONDS", "0"),
    ],
)
def test_bad_notification_settings_are_refused_by_name(monkeypatch, tmp_path, name, value):
    from app.config import ConfigError, from_environment

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        from_environment(str(tmp_path))


def test_the_robot_cli_keeps_the_secret_off_the_screen(region, app):
    import json

    runner = app.test_cli_runner()
    url = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef"
    args = ["notify", "set-robot", "--department", "market_supervision", "--name", "市监局群"]
    result = runner.invoke(
        args=[*args, "--url", url, "--secret-stdin"], input="SEC0123456789secret\n"
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["secret"] == "****cret" and "0123456789" not in shown["url"]
    assert delivery.robot_for(department("market_supervision").id).secret == "SEC0123456789secret"

    listed = runner.invoke(args=["notify", "robots"])
    assert "SEC0123456789secret" not in listed.stdout and "市监局群" in listed.stdout

    refused = runner.invoke(args=["notify", "set-robot", "--name", "x", "--url", url])
    assert refused.exit_code == 2 and "department" in refused.stderr
    bad_url = runner.invoke(args=["notify", "set-robot", "--command-post", "--name", "x",
                                  "--url", "not a url"])  # fmt: skip
    assert bad_url.exit_code == 2 and "url" in bad_url.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "field"),
    [
        (["--name", "x" * 201], None, "name"),
        (["--name", "群\n二"], None, "name"),
        (["--url", "http://[::1/x"], None, "url"),
        (["--url", "http://127.0.0.1:99999/r"], None, "url"),
        (["--url", "http://exa mple.com/r"], None, "url"),
        (["--secret-stdin"], "\n", "secret"),
        (["--secret-stdin"], "SEC\x00x\n", "secret"),
    ],
)
def test_robot_settings_that_cannot_work_are_refused_by_field(region, app, args, stdin, field):
    runner = app.test_cli_runner()
    base = {"--name": "市监局群", "--url": "https://oapi.dingtalk.com/robot/send?access_token=t"}
    given = dict(zip(args[::2], args[1::2], strict=False)) if "--secret-stdin" not in args else {}
    options = [part for key, value in {**base, **given}.items() for part in (key, value)]
    extra = ["--secret-stdin"] if "--secret-stdin" in args else []

    result = runner.invoke(
        args=["notify", "set-robot", "--command-post", *options, *extra], input=stdin
    )

    assert result.exit_code == 2, result.output
    assert field in result.stderr and "Traceback" not in result.output
    assert db.session.scalar(select(func.count(GroupRobot.id))) == 0


def test_a_robot_url_is_shown_without_its_secrets():
    url = "https://user:P4ss@oapi.example.org/robot/0123456789abcdef0123/send?Access_Token=abcdefgh1234&secret=SECzzzz9999#access_token=frag5678"

    shown = delivery.shown_url(url)

    for secret in ("P4ss", "user", "abcdefgh", "SECzzzz", "0123456789abcdef", "frag"):
        assert secret not in shown, (secret, shown)
    assert shown.startswith("https://****@oapi.example.org/robot/") and "1234" in shown


def test_a_drill_sets_its_own_retries_and_the_clock_need_not_wait_them_out(region, app, run_worker):
    """A run's `retry` overrides the configuration; a delivery waiting for its next try
    is unfinished, but not due."""
    with SmsGatewayReceiver(token="t", fail_first=1000) as gateway:
        found = _drill_incident(
            {"sms": gateway.endpoint(), "retry": {"max_attempts": 2, "backoff_seconds": 3600}}
        )
        delivery.relay([found.id])
        run_worker()
        waiting = delivery.unfinished([found.id])
        assert waiting > 0 and delivery.unfinished([found.id], due_by=utcnow()) == 0

        assert (
            db.session.execute(
                Delivery.__table__.update()
                .where(Delivery.status == "pending")
                .values(next_attempt_at=utcnow())
            ).rowcount
            == waiting
        )
        db.session.commit()
        _drain(run_worker, [found.id])

    figures = delivery.notification_figures(found)
    assert figures["failed"] == waiting and delivery.unfinished([found.id]) == 0
    assert gateway.requests == 2 * waiting


@pytest.mark.parametrize(
    ("endpoints", "key"),
    [
        ({"fax": {}}, "notifications.fax"),
        ({"sms": {"token": "t"}}, "notifications.sms.url"),
        ({"sms": {"url": "ftp://x"}}, "notifications.sms.url"),
        ({"email": {"host": "127.0.0.1", "port": "25"}}, "notifications.email.port"),
        ({"email": {"host": "h", "port": 25, "cc": "x"}}, "notifications.email.cc"),
        ({"dingtalk": "http://robot"}, "notifications.dingtalk"),
        ({"retry": {"backoff_seconds": float("nan")}}, "notifications.retry.backoff_seconds"),
    ],
)
def test_drill_endpoints_that_cannot_be_used_are_refused_by_key(endpoints, key):
    with pytest.raises(InvalidInput) as refused:
        delivery.check_endpoints(endpoints)
    assert key in refused.value.errors


def test_drill_endpoints_of_the_local_receivers_are_taken():
    with LocalReceivers() as local:
        assert delivery.check_endpoints(local.endpoints()) == local.endpoints()
