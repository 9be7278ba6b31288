"""`flask alerts ingest` and POST /api/alerts: every CAP message is recorded, refused or
acted on by the rules, with one JSON line on stdout and exit 0, or exit 2 when refused."""

import json
import socket
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import func, select

from app.alerts.models import Alert
from app.coordination.models import Notification
from app.extensions import db
from app.incidents.models import Incident, TimelineEntry
from tests.test_cap import SHARED_CAP, needs_shared

CAP = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER = "Zhenhai_Meteorological_Station"
SENT = "2026-09-14T06:00:00+08:00"
NOW = "2026-09-14T07:00:00+08:00"

ZHENHAI = (
    "<geocode><valueName>CPEAS Geographic Code</valueName><value>330211000000</value></geocode>"
)


def geocode(code, scheme="CPEAS Geographic Code"):
    return f"<geocode><valueName>{scheme}</valueName><value>{code}</value></geocode>"


def info(
    language="zh-CN",
    severity="Severe",
    area=ZHENHAI,
    expires="2026-09-15T06:00:00+08:00",
    effective=None,
    onset=None,
    headline="台风橙色预警",
):
    times = "".join(
        f"<{name}>{value}</{name}>"
        for name, value in (("effective", effective), ("onset", onset), ("expires", expires))
        if value
    )
    return (
        f"<info><language>{language}</language><category>Met</category><event>台风</event>"
        f"<urgency>Expected</urgency><severity>{severity}</severity>"
        f"<certainty>Likely</certainty>{times}<headline>{escape(headline)}</headline>"
        f"<area><areaDesc>test area</areaDesc>{area}</area></info>"
    )


def cap(
    identifier="ZH-1",
    status="Actual",
    msg_type="Alert",
    sent=SENT,
    references=None,
    infos=None,
    sender=SENDER,
):
    refs = f"<references>{references}</references>" if references else ""
    blocks = "".join(infos if infos is not None else [info()])
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{CAP}">'
        f"<identifier>{identifier}</identifier><sender>{sender}</sender><sent>{sent}</sent>"
        f"<status>{status}</status><msgType>{msg_type}</msgType><scope>Public</scope>"
        f"{refs}{blocks}</alert>"
    ).encode()


def ref(identifier, sent=SENT, sender=SENDER):
    return f"{sender},{identifier},{sent}"


@pytest.fixture
def ingest(app, region, tmp_path):
    """Run `flask alerts ingest` on bytes; returns (exit code, JSON answer, stderr)."""
    runner = app.test_cli_runner()
    count = iter(range(1000))

    def run(data, at=NOW, *options):
        path = tmp_path / f"alert-{next(count)}.xml"
        path.write_bytes(data)
        args = ["alerts", "ingest", str(path), *options]
        if at:
            args += ["--at", at]
        result = runner.invoke(args=args)
        lines = result.stdout.splitlines()
        assert len(lines) == 1, result.stdout  # exactly one line: the JSON answer
        return result.exit_code, json.loads(lines[0]), result.stderr

    return run


def _count(model):
    db.session.rollback()
    return db.session.scalar(select(func.count(model.id)))


def _incident(answer):
    db.session.rollback()
    return db.session.get(Incident, answer["incident_id"])


# What is acted on


def test_a_current_actual_alert_in_the_region_opens_an_incident(ingest):
    code, answer, _ = ingest(cap())

    assert code == 0
    assert answer["action"] == "opened"
    assert answer["in_region"] is True and answer["expired"] is False
    assert answer["duplicate"] is False
    for key in ("identifier", "sender", "sent", "status", "msg_type", "languages"):
        assert key in answer
    incident = _incident(answer)
    assert incident.drill is False and incident.status == "open"
    assert incident.severity == "Severe"
    # The commander hears of it, and the incident's timeline says where it came from.
    assert _count(Notification) == 1
    events = db.session.scalars(select(TimelineEntry.event).filter_by(incident_id=incident.id))
    assert {"alert_received", "level_suggested"} <= set(events)


def test_an_exercise_alert_opens_a_drill_incident(ingest):
    code, answer, _ = ingest(cap(status="Exercise"))

    assert code == 0 and answer["action"] == "opened"
    incident = _incident(answer)
    assert incident.drill is True
    assert incident.title.startswith("[演练]")


@pytest.mark.parametrize("status", ["Test", "System", "Draft"])
def test_test_system_and_draft_messages_are_recorded_not_acted_on(ingest, status):
    code, answer, _ = ingest(cap(status=status))

    assert code == 0
    assert answer["action"] == "not_acted" and answer["incident_id"] is None
    assert status in answer["reason"]
    assert _count(Alert) == 1 and _count(Incident) == 0


@pytest.mark.parametrize("msg_type", ["Ack", "Error"])
def test_ack_and_error_messages_are_recorded_not_acted_on(ingest, msg_type):
    code, answer, _ = ingest(cap(msg_type=msg_type, references=ref("ZH-0")))

    assert code == 0 and answer["action"] == "not_acted"
    assert msg_type in answer["reason"]
    assert _count(Incident) == 0


def test_an_expired_alert_is_flagged_not_acted_on(ingest):
    code, answer, _ = ingest(cap(), at="2026-09-16T06:00:00+08:00")

    assert code == 0
    assert answer["expired"] is True and answer["action"] == "not_acted"
    assert "expired" in answer["reason"]
    assert _count(Incident) == 0


def test_an_alert_expiring_before_it_was_sent_is_flagged(ingest):
    data = cap(infos=[info(expires="2026-09-14T05:00:00+08:00")])

    code, answer, _ = ingest(data, at="2026-09-14T04:00:00+08:00")

    assert code == 0 and answer["action"] == "not_acted"
    assert any("before sent" in problem for problem in answer["problems"])


@pytest.mark.parametrize("name", ["effective", "onset"])
def test_an_alert_starting_after_it_expires_is_flagged(ingest, name):
    data = cap(infos=[info(**{name: "2026-09-16T06:00:00+08:00"})])

    code, answer, _ = ingest(data)

    assert code == 0 and answer["action"] == "not_acted"
    assert any(problem.startswith(f"{name} is after expires") for problem in answer["problems"])


def test_an_alert_effective_later_but_not_expired_is_acted_on(ingest):
    data = cap(infos=[info(effective="2026-09-14T12:00:00+08:00")])

    assert ingest(data)[1]["action"] == "opened"


# Update and Cancel follow references


def test_an_update_follows_its_reference_to_the_open_incident(ingest):
    _, first, _ = ingest(cap())
    update = cap(
        identifier="ZH-2",
        msg_type="Update",
        sent="2026-09-14T09:00:00+08:00",
        references=ref("ZH-1"),
        infos=[info(severity="Extreme", headline="台风红色预警")],
    )

    code, answer, _ = ingest(update, at="2026-09-14T09:05:00+08:00")

    assert code == 0
    assert answer["action"] == "updated"
    assert answer["incident_id"] == first["incident_id"]
    assert answer["references"][0]["alert_id"] == first["alert_id"]
    assert _incident(answer).severity == "Extreme"
    assert _count(Incident) == 1


def test_an_update_of_an_unknown_message_is_acted_on_as_new_and_says_so(ingest):
    update = cap(identifier="ZH-9", msg_type="Update", references=ref("ZH-8"))

    code, answer, _ = ingest(update)

    assert code == 0
    assert answer["action"] == "opened"
    assert "unknown" in answer["reason"] and "new alert" in answer["reason"]
    assert answer["references"][0]["alert_id"] is None


def test_an_expired_update_of_an_unknown_message_is_recorded_only(ingest):
    update = cap(identifier="ZH-9", msg_type="Update", references=ref("ZH-8"))

    _, answer, _ = ingest(update, at="2026-09-20T00:00:00+08:00")

    assert answer["action"] == "not_acted" and _count(Incident) == 0


def test_a_cancel_closes_an_incident_that_has_no_level_yet(ingest):
    _, first, _ = ingest(cap())
    cancel = cap(identifier="ZH-3", msg_type="Cancel", references=ref("ZH-1"))

    code, answer, _ = ingest(cancel)

    assert code == 0
    assert answer["action"] == "cancelled"
    assert answer["incident_id"] == first["incident_id"]
    incident = _incident(answer)
    assert incident.status == "closed"


def test_a_cancel_leaves_an_activated_response_to_the_commander(ingest):
    from app.process.response import activate
    from app.types import utcnow

    _, first, _ = ingest(cap())
    incident = _incident(first)
    activate(incident, "III", at=utcnow(), reason="commander confirms")
    db.session.commit()
    cancel = cap(identifier="ZH-3", msg_type="Cancel", references=ref("ZH-1"))

    _, answer, _ = ingest(cancel)

    assert answer["action"] == "cancelled"
    assert "commander" in answer["reason"]
    assert _incident(answer).status != "closed"


def test_a_cancel_of_an_unknown_message_is_not_acted_on(ingest):
    code, answer, _ = ingest(cap(identifier="ZH-3", msg_type="Cancel", references=ref("ZH-X")))

    assert code == 0 and answer["action"] == "not_acted"
    assert "nothing to cancel" in answer["reason"]


# Areas


@pytest.mark.parametrize(
    "code",
    [
        "330000000000",  # Zhejiang province
        "330200000000",  # Ningbo city: a city-wide warning touches Zhenhai
        "330211000000",  # Zhenhai district
        "330211003000",  # 骆驼街道, a street inside
        "330200",  # Ningbo in the 6-digit form
        "33",  # Zhejiang by its province digits
        "3302",  # Ningbo by its city digits
    ],
)
def test_a_geocode_at_any_level_above_or_below_the_district_is_in_region(ingest, code):
    _, answer, _ = ingest(cap(infos=[info(area=geocode(code))]))

    assert answer["in_region"] is True and answer["action"] == "opened"


@pytest.mark.parametrize("code", ["330206000000", "110101000000"])
def test_a_geocode_elsewhere_is_out_of_region(ingest, code):
    code_, answer, _ = ingest(cap(infos=[info(area=geocode(code))]))

    assert code_ == 0
    assert answer["in_region"] is False and answer["action"] == "out_of_region"
    assert _count(Incident) == 0


@pytest.mark.parametrize("code", ["000000000000", "000211000000", "99", "3302110"])
def test_a_code_that_is_no_division_cannot_be_resolved(ingest, code):
    _, answer, _ = ingest(cap(infos=[info(area=geocode(code))]))

    assert answer["in_region"] is None and answer["action"] == "not_acted"
    assert "unreadable code" in answer["reason"]


def test_a_scheme_that_cannot_be_resolved_gives_null_and_names_it(ingest):
    _, answer, _ = ingest(cap(infos=[info(area=geocode("022001", scheme="SAME"))]))

    assert answer["in_region"] is None
    assert answer["action"] == "not_acted"
    assert answer["unresolved_schemes"] == ["SAME"]
    assert "SAME" in answer["reason"]


def test_a_polygon_over_the_district_is_in_region(ingest):
    polygon = "<polygon>29.9,121.6 29.9,121.8 30.05,121.8 30.05,121.6 29.9,121.6</polygon>"

    _, answer, _ = ingest(cap(infos=[info(area=polygon)]))

    assert answer["in_region"] is True and answer["action"] == "opened"


def test_a_polygon_elsewhere_is_out_of_region(ingest):
    polygon = "<polygon>34.0,-118.5 34.0,-118.0 34.3,-118.0 34.3,-118.5 34.0,-118.5</polygon>"

    _, answer, _ = ingest(cap(infos=[info(area=polygon)]))

    assert answer["in_region"] is False and answer["action"] == "out_of_region"


@pytest.mark.parametrize(
    ("circle", "inside"),
    [
        ("29.98,121.70 5", True),  # centred in the district
        ("30.30,121.70 10", False),  # out at sea, 30 km north
        ("30.30,121.70 40", True),  # the same centre, wide enough to reach it
    ],
)
def test_a_circle_is_tested_against_the_boundary(ingest, circle, inside):
    _, answer, _ = ingest(cap(infos=[info(area=f"<circle>{circle}</circle>")]))

    assert answer["in_region"] is inside


def test_a_polygon_decides_when_a_geocode_cannot_be_resolved(ingest):
    area = "<polygon>29.9,121.6 29.9,121.8 30.05,121.8 30.05,121.6 29.9,121.6</polygon>" + geocode(
        "LAZ043", scheme="UGC"
    )

    _, answer, _ = ingest(cap(infos=[info(area=area)]))

    assert answer["in_region"] is True and answer["unresolved_schemes"] == ["UGC"]


# Parsing and refusals


def test_a_cap_prefix_is_read_like_the_default_namespace(ingest):
    plain = cap().decode()
    prefixed = (
        plain.replace(f'<alert xmlns="{CAP}">', f'<cap:alert xmlns:cap="{CAP}">')
        .replace("</alert>", "</cap:alert>")
        .replace("<", "<cap:")
        .replace("<cap:/", "</cap:")
        .replace("<cap:?xml", "<?xml")
        .replace("<cap:cap:", "<cap:")
        .replace("</cap:cap:", "</cap:")
    )
    assert "<cap:identifier>" in prefixed

    code, answer, _ = ingest(prefixed.encode())

    assert code == 0 and answer["action"] == "opened"


def test_a_gb18030_message_keeps_its_chinese_text(ingest):
    data = cap().decode().replace('encoding="UTF-8"', 'encoding="GB18030"').encode("gb18030")

    _, answer, _ = ingest(data)

    assert answer["headline"] == "台风橙色预警"
    row = db.session.get(Alert, answer["alert_id"])
    assert "台风橙色预警" in row.raw and row.source == data


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (cap().replace(b"<scope>Public</scope>", b""), "missing required element <scope>"),
        (cap().replace(b"<status>Actual", b"<status>actual"), "status"),
        (cap().replace(CAP.encode(), b"urn:oasis:names:tc:emergency:cap:1.1"), "namespace"),
        (cap(sent="2026-09-14T06:00:00"), "no UTC offset"),
        (b"<alert", "malformed XML"),
        (b"", "malformed XML"),
        # Instants at the ends of the calendar, beyond what a database stores.
        (cap(sent="9999-12-31T23:00:00-05:00"), "outside the years"),
        (cap(sent="0001-01-01T00:30:00+08:00"), "outside the years"),
        # A radius written as plain digits that is still no finite number.
        (cap(infos=[info(area="<circle>30.0,121.65 1" + "0" * 400 + "</circle>")]), "radius"),
        (cap(identifier="L" * 5000), "at most 200"),
        (cap(sender="S" * 3000), "at most 200"),
        (
            cap(
                infos=[info(area="<polygon>30,121.6 30,121.7 30,121.6 30,121.7 30,121.6</polygon>")]
            ),
            "encloses no area",
        ),
    ],
)
def test_a_malformed_message_is_refused_with_the_reason(ingest, data, says):
    code, answer, stderr = ingest(data)

    assert code == 2
    assert answer["action"] == "refused"
    assert says in answer["reason"] and says in stderr
    assert _count(Alert) == 0


HOSTILE = {
    "internal entity": (
        b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&b;</identifier></alert>'
    ),
    "external file entity": (
        b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>&x;</note></alert>'
    ),
    "parameter entity": (
        b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY % p SYSTEM "file:///etc/hostname">'
        b'%p;]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>'
    ),
    "xinclude": cap().replace(
        b"<scope>Public</scope>",
        b'<scope>Public</scope><xi:include xmlns:xi="http://www.w3.org/2001/XInclude"'
        b' href="file:///etc/passwd" parse="text"/>',
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_construct_is_refused(ingest, name):
    code, answer, _ = ingest(HOSTILE[name])

    assert code == 2 and answer["action"] == "refused"
    assert "passwd" not in json.dumps(answer)
    assert _count(Alert) == 0


def test_an_external_reference_is_refused_without_touching_the_network(ingest):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    data = (
        f'<?xml version="1.0"?><!DOCTYPE alert SYSTEM "http://127.0.0.1:{port}/cap.dtd">'
        f'<alert xmlns="{CAP}"/>'
    ).encode()

    code, answer, _ = ingest(data)

    assert code == 2 and answer["action"] == "refused"
    with pytest.raises(TimeoutError):
        listener.accept()  # nobody came
    listener.close()


def test_an_oversized_file_is_refused_unread(ingest):
    data = cap().replace(b"</alert>", b"<!--" + b"x" * (1024 * 1024) + b"--></alert>")

    code, answer, stderr = ingest(data)

    assert code == 2 and answer["action"] == "refused"
    assert "larger than 1048576 bytes" in stderr
    assert _count(Alert) == 0


def test_a_missing_file_is_refused(app, region, tmp_path):
    result = app.test_cli_runner().invoke(args=["alerts", "ingest", str(tmp_path / "none.xml")])

    assert result.exit_code == 2
    assert json.loads(result.stdout)["action"] == "refused"
    assert "cannot read" in result.stderr


@pytest.mark.parametrize("at", ["2026-09-14T07:00:00", "garbage", "9999-12-31T23:00:00-05:00"])
def test_an_unusable_instant_is_refused_with_a_json_line(ingest, at):
    code, answer, stderr = ingest(cap(), at)

    assert code == 2 and answer["action"] == "refused"
    assert "--at" in stderr
    assert _count(Alert) == 0


def test_a_directory_is_refused_with_a_json_line(app, region, tmp_path):
    result = app.test_cli_runner().invoke(args=["alerts", "ingest", str(tmp_path)])

    assert result.exit_code == 2
    assert json.loads(result.stdout)["action"] == "refused"


def test_without_a_plan_nothing_is_written(app, tmp_path):
    path = tmp_path / "a.xml"
    path.write_bytes(cap())

    result = app.test_cli_runner().invoke(args=["alerts", "ingest", str(path), "--at", NOW])

    assert result.exit_code == 2
    assert "no plan" in result.stderr
    assert _count(Alert) == 0 and _count(Incident) == 0


# Repeats and language


def test_the_same_message_again_changes_nothing_and_says_so(ingest):
    _, first, _ = ingest(cap())

    code, again, _ = ingest(cap(), "2026-09-14T08:00:00+08:00")

    assert code == 0
    assert again["duplicate"] is True
    assert again["action"] == "not_acted" and again["first_action"] == "opened"
    assert "already received" in again["reason"]
    assert again["alert_id"] == first["alert_id"]
    assert again["incident_id"] == first["incident_id"]
    assert _count(Alert) == 1 and _count(Incident) == 1 and _count(Notification) == 1


def test_the_same_message_with_other_line_ends_or_encoding_is_a_repeat(ingest):
    _, first, _ = ingest(cap())

    _, again, _ = ingest(cap().replace(b"><", b">\r\n<") + b"\n")
    _, gb, _ = ingest(
        cap().decode().replace('encoding="UTF-8"', 'encoding="GB18030"').encode("gb18030")
    )

    assert again["duplicate"] is True and gb["duplicate"] is True
    assert _count(Alert) == 1


def test_a_used_identifier_with_other_content_is_refused(ingest):
    ingest(cap())

    code, answer, stderr = ingest(cap(infos=[info(severity="Minor")]))

    assert code == 2 and answer["action"] == "refused"
    assert "identifier" in stderr
    assert _count(Alert) == 1


def test_every_info_block_is_kept_and_the_users_language_comes_first(ingest):
    data = cap(
        infos=[
            info(language="en-US", headline="Typhoon orange warning"),
            info(language="zh-CN", headline="台风橙色预警"),
        ]
    )

    _, answer, _ = ingest(data)
    assert answer["languages"] == ["en-US", "zh-CN"]
    assert [i["language"] for i in answer["infos"]] == ["zh-CN", "en-US"]
    assert answer["headline"] == "台风橙色预警"

    _, english, _ = ingest(data, NOW, "--lang", "en")
    assert [i["language"] for i in english["infos"]] == ["en-US", "zh-CN"]
    assert english["headline"] == "Typhoon orange warning"


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-16-le", lambda: cap().decode().replace("UTF-8", "UTF-16").encode("utf-16-le")),
        ("iso-8859-1", lambda: cap(infos=[info(headline="Temp\u00eate")]).decode()
            .replace("UTF-8", "ISO-8859-1").replace("台风", "Typhoon").encode("iso-8859-1")),
    ],
)  # fmt: skip
def test_the_text_copy_is_decoded_as_the_parser_read_it(ingest, encoding, data):
    raw = data()

    code, answer, _ = ingest(raw)

    assert code == 0
    row = db.session.get(Alert, answer["alert_id"])
    assert "\x00" not in row.raw and "\ufffd" not in row.raw
    assert row.raw == raw.decode(encoding)
    assert row.source == raw


def test_an_old_alert_without_expiry_counts_as_expired(ingest):
    data = cap(sent="2020-01-01T00:00:00+08:00", infos=[info(expires=None)])

    _, answer, _ = ingest(data)

    assert answer["expired"] is True and answer["action"] == "not_acted"


# Who may update and cancel


def test_another_sender_cannot_cancel_an_alert(ingest):
    _, first, _ = ingest(cap())
    cancel = cap(identifier="X-1", sender="evil@example.org", msg_type="Cancel",
                 references=ref("ZH-1"))  # fmt: skip

    _, answer, _ = ingest(cancel)

    assert answer["action"] == "not_acted"
    assert "another sender" in answer["reason"]
    assert _incident(first).status == "open"


def test_another_senders_update_is_only_a_new_alert(ingest):
    _, first, _ = ingest(cap())
    update = cap(identifier="X-2", sender="evil@example.org", msg_type="Update",
                 references=ref("ZH-1"), infos=[info(severity="Minor")])  # fmt: skip

    _, answer, _ = ingest(update)

    assert answer["action"] == "opened"
    assert answer["incident_id"] != first["incident_id"]
    assert "another sender" in answer["reason"]
    assert _incident(first).severity == "Severe"


def test_an_update_of_two_alerts_updates_both_incidents(ingest):
    _, a, _ = ingest(cap(identifier="ZH-A"))
    _, b, _ = ingest(cap(identifier="ZH-B"))
    update = cap(identifier="ZH-C", msg_type="Update",
                 references=f"{ref('ZH-A')} {ref('ZH-B')}",
                 infos=[info(severity="Extreme")])  # fmt: skip

    _, answer, _ = ingest(update)

    assert answer["action"] == "updated"
    assert sorted(answer["incident_ids"]) == sorted([a["incident_id"], b["incident_id"]])
    assert _incident(a).severity == "Extreme" and _incident(b).severity == "Extreme"


def test_a_reference_with_another_sent_instant_still_finds_its_message(ingest):
    """CMA writes the update's own sent time in the reference; sender and identifier find
    the earlier message, and the difference is noted."""
    _, first, _ = ingest(cap())
    update = cap(identifier="ZH-2", msg_type="Update",
                 references=ref("ZH-1", sent="2026-09-14T09:30:00+08:00"))  # fmt: skip

    _, answer, _ = ingest(update)

    assert answer["references"][0]["alert_id"] == first["alert_id"]
    assert answer["references"][0]["sent_differs"] is True
    assert answer["action"] == "updated" and answer["incident_id"] == first["incident_id"]


def test_an_exercise_cannot_cancel_a_real_incident(ingest):
    _, first, _ = ingest(cap())
    cancel = cap(identifier="ZH-3", status="Exercise", msg_type="Cancel", references=ref("ZH-1"))

    _, answer, _ = ingest(cancel)

    assert answer["action"] == "not_acted"
    assert "exercise" in answer["reason"]
    assert _incident(first).status == "open"


def test_an_update_that_cannot_be_acted_on_still_reaches_the_incident(ingest):
    _, first, _ = ingest(cap())
    moved = cap(identifier="ZH-4", msg_type="Update", references=ref("ZH-1"),
                infos=[info(area=geocode("110101000000"))])  # fmt: skip

    _, answer, _ = ingest(moved)

    assert answer["action"] == "out_of_region"
    events = db.session.scalars(
        select(TimelineEntry.event).filter_by(incident_id=first["incident_id"])
    )
    assert "alert_update_not_acted" in set(events)
    assert _count(Notification) == 2  # the opening, and this


# The real alerts of the shared folder


@needs_shared
@pytest.mark.parametrize(
    ("name", "at", "action", "in_region"),
    [
        # Lightning in Baoding, an update of a message never received here.
        ("cma-baoding-lightning-2024.xml", None, "not_acted", False),
        ("cma-baoding-lightning-2024.xml", "2024-07-12T22:00:00+08:00", "out_of_region", False),
        ("nws-hurricane-multipolygon.xml", None, "not_acted", False),
        ("nws-hurricane-multipolygon.xml", "2020-08-26T05:00:00-05:00", "out_of_region", False),
        ("pagasa-typhoon-test-2014.xml", "2014-11-03T15:00:00+08:00", "not_acted", False),
    ],
)
def test_the_real_alerts_get_the_right_outcome(ingest, name, at, action, in_region):
    code, answer, _ = ingest((SHARED_CAP / name).read_bytes(), at)

    assert code == 0
    assert answer["action"] == action
    assert answer["in_region"] is in_region
    assert answer["incident_id"] is None


@needs_shared
def test_the_real_cma_alert_is_shown_in_both_languages(ingest):
    data = (SHARED_CAP / "cma-baoding-lightning-2024.xml").read_bytes()

    _, answer, _ = ingest(data)
    assert answer["infos"][0]["language"] == "zh-CN"
    assert answer["infos"][0]["event"] == "雷电"
    assert answer["references"][0]["alert_id"] is None

    _, english, _ = ingest(data, NOW, "--lang", "en-US")
    assert english["infos"][0]["event"] == "thunder"


@needs_shared
def test_the_real_attack_file_is_refused(ingest):
    code, answer, _ = ingest((SHARED_CAP / "attack-external-entities.xml").read_bytes())

    assert code == 2 and answer["action"] == "refused"


# The API and the pages


@pytest.fixture
def poster(app, region, client):
    app.config["BAOGONG_INGEST_TOKEN"] = "test-token"

    def post(data, token="test-token", content_type="application/cap+xml", query=""):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post(
            f"/api/alerts{query}", data=data, content_type=content_type, headers=headers
        )

    return post


def current_cap():
    """An alert current whenever the test runs: the API judges expiry by the real clock."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    return cap(
        identifier="ZH-API",
        sent=(now - timedelta(hours=1)).isoformat(),
        infos=[info(expires=(now + timedelta(days=1)).isoformat())],
    )


def test_the_api_ingests_like_the_command(poster):
    message = current_cap()  # built once: two builds a second apart would differ

    first = poster(message)
    again = poster(message)

    assert first.status_code == 201 and first.json["action"] == "opened"
    assert again.status_code == 200 and again.json["duplicate"] is True


def test_the_api_needs_the_token(app, poster):
    assert poster(cap(), token=None).status_code == 403
    assert poster(cap(), token="wrong").status_code == 403
    assert poster(cap(), token="caf\xe9").status_code == 403  # not ASCII: refused, not a 500
    app.config["BAOGONG_INGEST_TOKEN"] = None
    assert poster(cap()).status_code == 403
    assert _count(Alert) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"<alert", "application/xml", 422),
        (b"x" * (1024 * 1024 + 1), "application/xml", 413),
        (b"{}", "application/json", 415),
        (HOSTILE["internal entity"], "text/xml", 422),
    ],
)
def test_the_api_refuses_bad_bodies(poster, data, content_type, status):
    response = poster(data, content_type=content_type)

    assert response.status_code == status
    assert response.json["message"]
    assert _count(Alert) == 0


def test_the_api_and_pages_show_an_alert_in_the_readers_language(ingest, client):
    data = cap(
        infos=[
            info(language="en-US", headline="<script>alert(1)</script>"),
            info(language="zh-CN", headline="台风橙色预警"),
        ]
    )
    _, answer, _ = ingest(data)
    alert_id = answer["alert_id"]

    assert client.get(f"/api/alerts/{alert_id}").json["infos"][0]["language"] == "zh-CN"
    english = client.get(f"/api/alerts/{alert_id}?lang=en")
    assert english.json["infos"][0]["language"] == "en-US"
    assert client.get("/api/alerts").json[0]["id"] == alert_id

    page = client.get(f"/alerts/{alert_id}?lang=en").get_data(as_text=True)
    assert page.index("en-US") < page.index("zh-CN")
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    assert "台风橙色预警" in client.get("/alerts").get_data(as_text=True)
    assert client.get("/api/alerts/999999").status_code == 404


# Areas across the 180th meridian, on the sphere


def circle(lat, lon, radius_km):
    return f"<circle>{lat},{lon} {radius_km}</circle>"


def polygon(*points):
    return "<polygon>" + " ".join(f"{lat},{lon}" for lat, lon in points) + "</polygon>"


@pytest.mark.parametrize(
    ("area", "in_region"),
    [
        # Centred west of the 180th meridian, reaching Zhenhai across it (5,742 km away).
        (circle(30, -178, 5942), True),
        (circle(30, -178, 5542), False),
        (circle(30, -179.9, 5766), True),
        # A huge circle centred near Zhenhai's antipode stops about 100 km short of it.
        (circle(-29.9956, -58.3861, 19900), False),
        (circle(-29.9956, -58.3861, 20000), True),
        # A box over the central Pacific, drawn across the meridian: Zhenhai is not in it.
        (polygon((20, 170), (20, -170), (40, -170), (40, 170), (20, 170)), False),
        # The same across the meridian, reaching west to cover Zhenhai.
        (polygon((20, 110), (20, -170), (40, -170), (40, 110), (20, 110)), True),
    ],
)
def test_circles_and_polygons_are_judged_on_the_sphere(ingest, area, in_region):
    _, answer, _ = ingest(cap(infos=[info(area=area)]))

    assert answer["in_region"] is in_region
    assert answer["action"] == ("opened" if in_region else "out_of_region")


def test_an_area_that_cannot_be_read_keeps_the_verdict_open(ingest):
    """One area outside and one in a scheme nobody here reads: it might be the one inside."""
    blocks = [
        info(language="en-US", area=geocode("1", scheme="SAME")),
        info(area=geocode("110000000000")),
    ]

    _, answer, _ = ingest(cap(infos=blocks))

    assert answer["in_region"] is None and answer["action"] == "not_acted"
    assert "SAME" in answer["unresolved_schemes"]


def test_shapes_settle_an_area_whose_codes_cannot_be_read(ingest):
    outside = polygon((40, 116), (40, 117), (41, 117), (41, 116), (40, 116))

    _, answer, _ = ingest(cap(infos=[info(area=outside + geocode("022001", "SAME"))]))

    assert answer["in_region"] is False and answer["action"] == "out_of_region"


def test_a_village_code_under_no_town_is_unreadable(ingest):
    _, answer, _ = ingest(cap(infos=[info(area=geocode("330211000001"))]))

    assert answer["in_region"] is None
    assert "unreadable code" in answer["reason"]


# Times that cannot be current


def test_a_message_sent_in_the_future_is_not_acted_on(ingest):
    data = cap(sent="2099-01-01T08:00:00+08:00",
               infos=[info(expires="2099-01-02T08:00:00+08:00")])  # fmt: skip

    _, answer, _ = ingest(data)

    assert answer["action"] == "not_acted"
    assert "in the future" in answer["reason"]
    assert _count(Incident) == 0


def test_an_alert_effective_months_ahead_is_not_acted_on_yet(ingest):
    data = cap(infos=[info(effective="2027-06-01T08:00:00+08:00",
                           expires="2027-06-05T08:00:00+08:00")])  # fmt: skip

    _, answer, _ = ingest(data)

    assert answer["action"] == "not_acted"
    assert "not effective until" in answer["reason"]


def test_a_warning_of_tomorrows_landfall_is_acted_on(ingest):
    data = cap(infos=[info(onset="2026-09-15T02:00:00+08:00")])

    _, answer, _ = ingest(data)

    assert answer["action"] == "opened"


# Updates that lead nowhere say why


def test_a_real_update_of_an_exercise_does_not_open_a_real_incident(ingest):
    ingest(cap(identifier="EX-1", status="Exercise"))

    _, answer, _ = ingest(cap(identifier="R-2", msg_type="Update", references=ref("EX-1")))

    assert answer["action"] == "not_acted"
    assert "does not update an exercise incident" in answer["reason"]
    assert _count(Incident) == 1


def test_an_update_without_references_says_so(ingest):
    _, answer, _ = ingest(cap(msg_type="Update"))

    assert answer["action"] == "opened"
    assert answer["reason"] == "an Update without references; acted on as a new alert"


def test_an_expired_update_of_an_unknown_message_names_the_reference(ingest):
    data = cap(msg_type="Update", references=ref("NEVER-SEEN"),
               infos=[info(expires="2026-09-14T06:30:00+08:00")])  # fmt: skip

    _, answer, _ = ingest(data)

    assert answer["action"] == "not_acted"
    assert "expired" in answer["reason"] and "NEVER-SEEN" in answer["reason"]
