"""Whether an alert's area touches the district: administrative codes by level, polygons
and circles against the real boundary."""

import pytest
from shapely.geometry import shape

from app.alerts.cap import parse_cap
from app.alerts.services import alert_in_region, touches_region
from app.fixtures import load_region

REGION = load_region()
BOUNDARY = shape(REGION["boundary_geometry"])


def _alert(area):
    return parse_cap(
        f"""<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>T1</identifier><sender>test</sender><sent>2026-09-14T06:00:00+08:00</sent>
  <status>Exercise</status><msgType>Alert</msgType><scope>Public</scope>
  <info><category>Met</category><event>typhoon</event><urgency>Immediate</urgency>
    <severity>Extreme</severity><certainty>Likely</certainty>
    <area><areaDesc>test</areaDesc>{area}</area></info>
</alert>""".encode()
    )


@pytest.mark.parametrize(
    ("code", "touches"),
    [
        ("330211000000", True),  # the district itself
        ("330200000000", True),  # Ningbo city-wide
        ("330000000000", True),  # Zhejiang province-wide
        ("330211003000", True),  # 骆驼街道, a street inside
        ("330211100401", True),  # a community under 澥浦镇
        ("330206000000", False),  # Beilun, a neighbour
        ("110101000000", False),  # Beijing
        ("130602000000", False),  # the Baoding alert's district
    ],
)
def test_administrative_codes_touch_by_level(code, touches):
    assert touches_region(code, "330211") is touches


def test_a_polygon_over_the_district_is_in_the_region():
    area = "<polygon>29.90,121.55 29.90,121.75 30.05,121.75 30.05,121.55 29.90,121.55</polygon>"

    assert alert_in_region(_alert(area), "330211", BOUNDARY) is True


def test_a_polygon_in_california_is_outside():
    area = "<polygon>34.0,-118.5 34.0,-118.0 34.5,-118.0 34.5,-118.5 34.0,-118.5</polygon>"

    assert alert_in_region(_alert(area), "330211", BOUNDARY) is False


def test_a_circle_reaching_the_district_is_in_the_region():
    assert alert_in_region(_alert("<circle>29.95,121.80 15</circle>"), "330211", BOUNDARY)
    assert not alert_in_region(_alert("<circle>29.95,123.50 15</circle>"), "330211", BOUNDARY)


def test_an_unknown_geocode_scheme_cannot_be_resolved():
    area = "<geocode><valueName>SAME</valueName><value>006037</value></geocode>"

    assert alert_in_region(_alert(area), "330211", BOUNDARY) is None
