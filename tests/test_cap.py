"""Tests of the CAP 1.2 parser: real alerts, the drill fixture, and what it refuses."""

import re
import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import pytest

from app.alerts.cap import MAX_BYTES, CapError, parse_cap

REPO = Path(__file__).resolve().parents[1]
SHARED_CAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cap"
TYPHOON_DRILL = REPO / "fixtures" / "drills" / "typhoon-cap.xml"

needs_shared = pytest.mark.skipif(
    not SHARED_CAP.is_dir(),
    reason=f"real CAP alerts not found at {SHARED_CAP} (shared/ must sit beside the repository)",
)

# A small valid message; each refusal test changes exactly one piece of it.
VALID = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>TEST-0001</identifier>
  <sender>baogong.test</sender>
  <sent>2026-09-14T06:00:00+08:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <note>  a note  </note>
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>台风</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <expires>2026-09-15T06:00:00+08:00</expires>
    <headline>测试</headline>
    <area>
      <areaDesc>镇海区</areaDesc>
      <polygon>29.9,121.6 30.0,121.7 29.9,121.8 29.9,121.6</polygon>
      <circle>29.95,121.7 5</circle>
      <geocode><valueName>CPEAS Geographic Code</valueName><value>330211000000</value></geocode>
    </area>
  </info>
</alert>"""


def variant(old: str, new: str) -> bytes:
    """The valid message with one piece replaced; fails loudly if the piece is not there."""
    assert old in VALID, f"test message has no {old!r}"
    return VALID.replace(old, new, 1).encode()


def moved(piece: str, after: str) -> bytes:
    """The valid message with one piece moved to just behind another."""
    assert piece in VALID and after in VALID, "test message lacks a piece to move"
    return VALID.replace(piece, "", 1).replace(after, after + piece, 1).encode()


def refused(data: bytes) -> str:
    """Parse data expecting a refusal and return the reason."""
    with pytest.raises(CapError) as caught:
        parse_cap(data)
    return str(caught.value)


def read_shared(name: str) -> bytes:
    """The raw bytes of one of the real alerts in the shared folder."""
    return (SHARED_CAP / name).read_bytes()


# Real alerts


@needs_shared
def test_cma_alert_parses_with_its_bilingual_blocks_and_geocode():
    alert = parse_cap(read_shared("cma-baoding-lightning-2024.xml"))

    assert alert.identifier == "13060041600000_20240712213138"
    assert alert.sender == "Baoding_Meteorological_Observatory"
    assert alert.status == "Actual"
    assert alert.msg_type == "Update"
    assert alert.scope == "Public"
    assert alert.note is None
    assert alert.sent == datetime(2024, 7, 12, 13, 31, 38, tzinfo=UTC)
    assert alert.references == (
        (
            "Baoding_Meteorological_Observatory",
            "13060041600000_20240712073642",
            datetime(2024, 7, 12, 21, 31, 38, tzinfo=timezone(timedelta(hours=8))),
        ),
    )
    assert alert.languages == ("en-US", "zh-CN")
    assert alert.info_for("zh-CN").headline.startswith("保定市气象台")
    assert alert.geocodes() == (("CPEAS Geographic Code", "130602000000"),)


@needs_shared
def test_cma_alert_info_blocks_carry_the_warning_details():
    alert = parse_cap(read_shared("cma-baoding-lightning-2024.xml"))
    info = alert.info_for("zh-CN")

    assert info.event == "雷电"
    assert info.categories == ("Met",)
    assert (info.urgency, info.severity, info.certainty) == ("Unknown", "Moderate", "Unknown")
    assert info.expires - info.onset == timedelta(hours=6)
    assert info.sender_name == "于雷"
    assert info.areas[0].desc == "新市区"
    assert info.areas[0].polygons == () and info.areas[0].circles == ()


@needs_shared
def test_pagasa_test_alert_parses_and_its_signature_is_ignored():
    alert = parse_cap(read_shared("pagasa-typhoon-test-2014.xml"))

    assert alert.status == "Test"
    assert alert.languages == ("en-US",), "a block without <language> is en-US"
    [info] = alert.infos
    [area] = info.areas
    [polygon] = area.polygons
    assert polygon[0] == (21.0, 120.0) == polygon[-1]
    assert len(polygon) == 7
    assert info.parameters == (("layer:Google:Region:0.1", "Philippine Area of Responsibility"),)


@needs_shared
def test_nws_alert_parses_with_several_polygons_and_references():
    alert = parse_cap(read_shared("nws-hurricane-multipolygon.xml"))

    [info] = alert.infos
    assert len(info.areas[0].polygons) == 2
    assert len(info.areas[0].polygons[1]) > 50
    assert len(alert.references) == 8
    assert info.severity == "Extreme"
    assert ("BLOCKCHANNEL", "CMAS") in info.parameters
    assert alert.geocodes() == (("UGC", "LAZ043"), ("SAME", "022001"))


@needs_shared
def test_attack_file_is_refused_without_network_or_file_access():
    data = read_shared("attack-external-entities.xml")
    no_network = mock.patch.object(socket.socket, "connect", side_effect=AssertionError("net"))
    no_files = mock.patch("builtins.open", side_effect=AssertionError("file opened"))

    with no_network, no_files:
        reason = refused(data)

    assert "DOCTYPE" in reason


@needs_shared
def test_every_shared_file_is_either_parsed_or_refused():
    """A new file in the shared folder must not crash the parser with anything but CapError."""
    for path in sorted(SHARED_CAP.glob("*.xml")):
        try:
            parse_cap(path.read_bytes())
        except CapError:
            assert path.name.startswith("attack-"), f"{path.name} was refused"


# The drill fixture


def test_typhoon_drill_fixture_is_an_exercise_for_zhenhai():
    alert = parse_cap(TYPHOON_DRILL.read_bytes())

    assert alert.status == "Exercise"
    assert alert.msg_type == "Alert"
    assert alert.languages == ("en-US", "zh-CN")
    assert alert.geocodes() == (("CPEAS Geographic Code", "330211000000"),)
    assert alert.sent == datetime(2026, 9, 13, 22, 0, tzinfo=UTC)


def test_typhoon_drill_fixture_marks_its_chinese_text_as_drill():
    info = parse_cap(TYPHOON_DRILL.read_bytes()).info_for("zh-CN")

    assert info.event == "台风"
    assert info.headline.startswith("[演练]")
    assert info.description.startswith("[演练]")
    assert (info.urgency, info.severity, info.certainty) == ("Immediate", "Extreme", "Likely")
    assert info.expires - info.effective == timedelta(days=3)
    assert ("warning_signal", "typhoon_red") in info.parameters


# Choosing the info block for the user


def test_info_for_picks_the_exact_language_then_the_same_primary_subtag():
    alert = parse_cap(TYPHOON_DRILL.read_bytes())

    assert alert.info_for("zh-CN").language == "zh-CN"
    assert alert.info_for("en").language == "en-US"
    assert alert.info_for("zh").language == "zh-CN"
    assert alert.info_for("zh_CN").language == "zh-CN"
    assert alert.info_for("fr").language == "en-US", "no match falls back to the first block"


def test_infos_ordered_puts_the_users_language_first():
    alert = parse_cap(TYPHOON_DRILL.read_bytes())

    assert [info.language for info in alert.infos_ordered("zh-CN")] == ["zh-CN", "en-US"]
    assert [info.language for info in alert.infos_ordered("en")] == ["en-US", "zh-CN"]


def test_alert_without_info_blocks_has_no_info_for_any_language():
    start, end = VALID.index("  <info>"), VALID.index("</info>") + len("</info>")
    alert = parse_cap((VALID[:start] + VALID[end:]).encode())

    assert alert.infos == ()
    assert alert.info_for("zh-CN") is None
    assert alert.infos_ordered() == ()


# What a valid message becomes


def test_valid_message_reads_all_area_forms_and_strips_text():
    alert = parse_cap(VALID.encode())

    [area] = alert.infos[0].areas
    assert area.polygons == (((29.9, 121.6), (30.0, 121.7), (29.9, 121.8), (29.9, 121.6)),)
    assert area.circles == ((29.95, 121.7, 5.0),)
    assert alert.note == "a note"


def test_cap_prefix_is_read_like_the_default_namespace():
    prefixed = re.sub(r"<(/?)([A-Za-z])", r"<\1cap:\2", VALID).replace("xmlns=", "xmlns:cap=")
    assert "<cap:identifier>" in prefixed and "</cap:alert>" in prefixed

    alert = parse_cap(prefixed.encode())

    assert alert.identifier == "TEST-0001"
    assert alert.infos[0].areas[0].geocodes == (("CPEAS Geographic Code", "330211000000"),)


def test_minus_zero_offset_means_utc():
    alert = parse_cap(variant("2026-09-14T06:00:00+08:00", "2026-09-13T22:00:00-00:00"))

    assert alert.sent == datetime(2026, 9, 13, 22, 0, tzinfo=UTC)


def test_empty_optional_elements_become_none():
    alert = parse_cap(variant("<headline>测试</headline>", "<headline>  </headline>"))

    assert alert.infos[0].headline is None


def test_message_of_exactly_max_bytes_is_accepted():
    data = VALID.encode()
    data += b" " * (MAX_BYTES - len(data))

    assert parse_cap(data).identifier == "TEST-0001"


# Refusals: safety


def test_oversized_message_is_refused_before_parsing():
    data = VALID.encode()
    data += b" " * (MAX_BYTES + 1 - len(data))

    assert "bytes" in refused(data)


def test_billion_laughs_is_refused():
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""

    assert "DOCTYPE" in refused(bomb)


def test_external_file_entity_is_refused_and_nothing_is_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    data = variant(
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file://{secret}">]>',
    ).replace(b"<headline>", b"<headline>&xxe;")

    reason = refused(data)

    assert "DOCTYPE" in reason
    assert "TOP-SECRET" not in reason


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE alert [<!ENTITY xxe SYSTEM "http://localhost:9/payload">]>',
        '<!DOCTYPE alert SYSTEM "http://localhost:9/cap.dtd">',
        '<!DOCTYPE alert [<!ENTITY % remote SYSTEM "http://localhost:9/x"> %remote;]>',
    ],
)
def test_external_references_are_refused_without_network(doctype):
    data = variant('<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0"?>' + doctype)
    no_network = mock.patch.object(socket.socket, "connect", side_effect=AssertionError("net"))

    with no_network:
        assert "DOCTYPE" in refused(data)


def test_undeclared_entity_is_refused_as_malformed():
    assert "malformed XML" in refused(variant("<headline>", "<headline>&xxe;"))


def test_xinclude_is_refused_anywhere():
    xinclude = '<x:include xmlns:x="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>'

    assert "XInclude" in refused(variant("<headline>测试</headline>", xinclude))
    assert "XInclude" in refused(variant("</scope>", "</scope>" + xinclude))


def test_malformed_xml_is_refused_with_the_parsers_reason():
    reason = refused(variant("</scope>", "</scop>"))

    assert reason.startswith("malformed XML")
    assert "line" in reason


# Refusals: structure and values


def test_root_other_than_cap_alert_is_refused_naming_what_was_found():
    cap11 = variant("cap:1.2", "cap:1.1")
    html = b"<html><body>not an alert</body></html>"

    assert "urn:oasis:names:tc:emergency:cap:1.1" in refused(cap11)
    assert "<html> in no namespace" in refused(html)


def test_missing_identifier_is_refused():
    reason = refused(variant("<identifier>TEST-0001</identifier>", ""))

    assert reason == "alert: missing required element <identifier>"


def test_identifier_with_a_comma_is_refused():
    """References are comma-separated, so a comma in an identifier would corrupt them."""
    assert "alert/identifier" in refused(variant("TEST-0001", "TEST,0001"))


def test_bad_status_is_refused():
    reason = refused(variant("<status>Actual</status>", "<status>Real</status>"))

    assert reason.startswith("alert/status: 'Real' is not one of Actual, Exercise")


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        ("<msgType>Alert</msgType>", "<msgType>Notice</msgType>", "alert/msgType"),
        ("<scope>Public</scope>", "<scope>Everyone</scope>", "alert/scope"),
        ("<category>Met</category>", "<category>Weather</category>", "alert/info[1]/category"),
        ("<urgency>Immediate</urgency>", "<urgency>Now</urgency>", "alert/info[1]/urgency"),
        ("<severity>Severe</severity>", "<severity>severe</severity>", "alert/info[1]/severity"),
        ("<certainty>Likely</certainty>", "<certainty>Sure</certainty>", "alert/info[1]/certainty"),
        ("<certainty>Likely</certainty>", "<certainty>Very Likely</certainty>", "alert/info[1]"),
    ],
)
def test_values_outside_the_cap_lists_are_refused(old, new, element):
    assert refused(variant(old, new)).startswith(element)


def test_datetime_without_offset_is_refused():
    reason = refused(variant("2026-09-14T06:00:00+08:00", "2026-09-14T06:00:00"))

    assert reason.startswith("alert/sent:") and "no UTC offset" in reason


def test_datetime_with_z_is_refused():
    reason = refused(variant("2026-09-15T06:00:00+08:00", "2026-09-14T22:00:00Z"))

    assert reason.startswith("alert/info[1]/expires:") and "'Z'" in reason


def test_impossible_date_is_refused():
    assert "alert/sent" in refused(variant("2026-09-14T06", "2026-02-30T06"))


def test_malformed_reference_is_refused():
    reference = "<references>baogong.test,TEST-0000</references>"

    assert "alert/references" in refused(variant("</note>", "</note>" + reference))


def test_polygon_not_closed_is_refused():
    reason = refused(variant("29.9,121.8 29.9,121.6</polygon>", "29.9,121.8 29.8,121.6</polygon>"))

    assert reason.startswith("alert/info[1]/area[1]/polygon[1]:") and "not closed" in reason


def test_polygon_with_too_few_points_is_refused():
    polygon = "<polygon>29.9,121.6 30.0,121.7 29.9,121.6</polygon>"

    assert "at least 4 points" in refused(variant("<polygon>", polygon + "<polygon>"))


def test_polygon_point_outside_the_globe_is_refused():
    """Swapped pairs (lon,lat) show up as a latitude beyond 90."""
    reason = refused(variant("29.9,121.6 30.0", "121.6,29.9 30.0"))

    assert "latitude 121.6" in reason


def test_polygon_with_nan_is_refused():
    assert "polygon[1]" in refused(variant("30.0,121.7", "nan,121.7"))


@pytest.mark.parametrize("circle", ["29.95,121.7 -5", "29.95,121.7 five", "29.95,121.7", "29.95 5"])
def test_circle_with_bad_radius_or_centre_is_refused(circle):
    reason = refused(variant("29.95,121.7 5", circle))

    assert reason.startswith("alert/info[1]/area[1]/circle[1]:")


def test_alert_elements_out_of_order_are_refused():
    swapped = moved("<sent>2026-09-14T06:00:00+08:00</sent>", after="<status>Actual</status>")

    assert refused(swapped) == "alert: <sent> is out of order, it must come before <status>"


def test_info_and_area_elements_out_of_order_are_refused():
    info = moved("<event>台风</event>", after="<certainty>Likely</certainty>")
    area = moved("<areaDesc>镇海区</areaDesc>", after="</geocode>")

    assert refused(info).startswith("alert/info[1]: <event> is out of order")
    assert refused(area).startswith("alert/info[1]/area[1]: <areaDesc> is out of order")


def test_repeated_single_element_is_refused():
    reason = refused(variant("</scope>", "</scope><scope>Public</scope>"))

    assert "<scope> appears 2 times" in reason


def test_unknown_cap_element_is_refused():
    assert refused(variant("<headline>", "<priority>1</priority><headline>")) == (
        "alert/info[1]: unknown CAP element <priority>"
    )


def test_elements_of_other_namespaces_are_refused_as_cap_1_2_allows_only_a_signature():
    extension = '<ext:colour xmlns:ext="http://example.org/ext">red</ext:colour>'

    assert "not part of CAP" in refused(variant("</info>", "</info>" + extension))
    assert "not part of CAP" in refused(variant("</headline>", "</headline>" + extension))


def test_a_cap_element_after_the_signature_is_refused():
    signature = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>'

    assert parse_cap(variant("</info>", "</info>" + signature)).identifier == "TEST-0001"
    assert "after the signature" in refused(variant("<info>", signature + "<info>"))


def test_the_draft_xinclude_namespace_is_refused_too():
    include = '<xi:include xmlns:xi="http://www.w3.org/2003/XInclude" href="file:///etc/passwd"/>'

    assert "XInclude" in refused(variant("</scope>", "</scope>" + include))


def test_restricted_scope_needs_its_restriction():
    assert "restriction: required" in refused(
        variant("<scope>Public</scope>", "<scope>Restricted</scope>")
    )


def test_a_ring_that_crosses_itself_is_taken_as_its_lobes():
    bow_tie = "29.98,121.60 30.01,121.63 29.98,121.63 30.01,121.60 29.98,121.60"
    area = f"<area><areaDesc>x</areaDesc><polygon>{bow_tie}</polygon></area>"

    alert = parse_cap(variant("</info>", area + "</info>"))

    assert len(alert.infos[0].areas[-1].polygons[0]) == 5


def test_element_without_namespace_inside_cap_is_refused():
    prefixed = variant(
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">',
        '<cap:alert xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2">',
    ).replace(b"</alert>", b"</cap:alert>")

    assert "is in no namespace" in refused(prefixed)


def test_message_declared_as_gbk_is_read():
    """Chinese systems still write GBK, which expat cannot read by itself."""
    text = TYPHOON_DRILL.read_text(encoding="utf-8").replace('encoding="UTF-8"', 'encoding="GBK"')

    alert = parse_cap(text.encode("gbk"))

    assert alert.info_for("zh-CN").headline.startswith("[演练]镇海区气象台")


def test_message_given_as_text_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_cap(VALID)
