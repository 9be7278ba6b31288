"""The supplier capacity map: offline, complete, and safe with hostile names."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from maps.capacity import (
    DEFAULT_LABELS,
    MapDataError,
    build_capacity_map,
    write_capacity_map,
)

CHROMIUM = Path("/usr/bin/chromium")

BOUNDARY = {
    "type": "Polygon",
    "coordinates": [[[121.55, 29.9], [121.8, 29.9], [121.8, 30.1], [121.55, 30.1], [121.55, 29.9]]],
}
SCRIPT_NAME = '"><script>alert(1)</script>'
CLOSING_NAME = "</script><b>x"
CHINESE_NAME = "镇海区蛟川街道中央厨房"


def make_supplier(supplier_id, name, **overrides):
    supplier = {
        "id": supplier_id,
        "name": name,
        "lat": 29.95,
        "lon": 121.7,
        "capacity": 1000,
        "available": 400,
        "risk_colour": "green",
        "status": "active",
        "rating": "A",
        "type": "central_kitchen",
    }
    return {**supplier, **overrides}


def make_demand_point(point_id, name, **overrides):
    point = {
        "id": point_id,
        "name": name,
        "lat": 29.97,
        "lon": 121.68,
        "type": "shelter",
        "headcount": 300,
        "meals_demand": 900,
        "meals_allocated": 600,
    }
    return {**point, **overrides}


def build(**overrides):
    data = {
        "boundary": BOUNDARY,
        "suppliers": [
            make_supplier(1, SCRIPT_NAME),
            make_supplier(2, CLOSING_NAME, status="suspended", risk_colour="red", lon=121.62),
            make_supplier(3, CHINESE_NAME, available=1600, risk_colour="yellow", lat=30.01),
        ],
        "demand_points": [
            make_demand_point("d1", "招宝山安置点"),
            make_demand_point("d2", "Hospital <No. 2> & 'annex'", type="hospital", lat=29.93),
        ],
        "allocations": [
            {"supplier_id": 1, "demand_point_id": "d1", "meals": 600},
            {"supplier_id": 3, "demand_point_id": "d2", "meals": 150},
        ],
        "title": "镇海区保供能力图",
    }
    return build_capacity_map(**{**data, **overrides})


def embedded(text):
    """Return text as the page embeds it: JSON with <, > and & escaped."""
    encoded = json.dumps(text, ensure_ascii=False)
    return encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_data(page):
    """Return the tables the page draws from, parsed back from its script."""
    found = re.search(r"var capacity_data_\w+ = (.*?);\n", page)
    assert found, "the page carries no capacity data"
    return json.loads(found.group(1))


class ScriptCounter(HTMLParser):
    """Counts script elements the way a browser's tokenizer sees them."""

    def __init__(self):
        super().__init__()
        self.opened, self.closed, self.bodies = 0, 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.opened += 1
            self.bodies.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self.closed += 1

    def handle_data(self, data):
        if self.opened > self.closed:
            self.bodies[-1] += data


def test_page_links_no_external_script_or_stylesheet():
    """The command centre may have no internet; every asset must be inside the page."""
    page = build()

    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link\b[^>]*\bhref\s*=", page, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(https?:|images/)", page)
    assert "Leaflet 1.9.3" in page
    assert "cdn.jsdelivr.net" not in page and "code.jquery.com" not in page


def test_page_has_no_base_tiles_unless_asked():
    assert "L.tileLayer" not in build()

    page = build(tiles="https://tiles.example.org/{z}/{x}/{y}.png", tile_attribution="Example")

    assert "tiles.example.org" in page
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, re.IGNORECASE)


def test_page_shows_boundary_suppliers_demand_points_and_allocations():
    page = build()
    data = page_data(page)

    assert "[121.55, 29.9]" in page
    assert "fitBounds" in page and "[[29.9, 121.55], [30.1, 121.8]]" in page
    for name in (SCRIPT_NAME, CLOSING_NAME, CHINESE_NAME, "招宝山安置点"):
        assert embedded(name) in page
    assert embedded("Hospital <No. 2> & 'annex'") in page
    assert len(data["suppliers"]) == 3
    assert len(data["demandPoints"]) == 2
    assert len(data["allocations"]) == 2


def test_allocations_point_at_their_supplier_and_demand_point():
    data = page_data(build())
    supplier_name = data["fields"]["suppliers"].index("name")
    point_name = data["fields"]["demandPoints"].index("name")

    pairs = {
        (data["suppliers"][row[0]][supplier_name], data["demandPoints"][row[1]][point_name])
        for row in data["allocations"]
    }

    assert pairs == {(SCRIPT_NAME, "招宝山安置点"), (CHINESE_NAME, "Hospital <No. 2> & 'annex'")}


def test_each_kind_is_one_overlay_in_the_layer_control():
    page = build()
    overlays = re.search(r"overlays :  \{(.*?)\}", page, re.DOTALL).group(1)

    assert overlays.count(":") == 4
    assert page.count("L.featureGroup()") == 3


def test_hostile_names_never_leave_their_string():
    """A supplier's name is shown as text; it can neither close the script nor run."""
    page = build()
    counter = ScriptCounter()
    counter.feed(page)

    assert "<script>alert(1)" not in page
    assert CLOSING_NAME not in page
    assert counter.opened == counter.closed == page.count("<script>")
    assert counter.bodies[-1].rstrip().endswith(");")
    assert "textContent" in page


@pytest.mark.parametrize(
    ("name", "literal", "never"),
    [
        ("镇海{{ 7*7 }}", "{{ 7*7 }}", "镇海49"),
        ("{{ cycler.__init__.__globals__.os.popen('echo RAN-$((6*7))').read() }}",
         "cycler.__init__", "RAN-42"),
        ("{% if true %}yes{% endif %}", "{% if true %}", None),
        ("it's \"quoted\" {{", "quoted", None),
    ],
)  # fmt: skip
def test_template_syntax_in_names_and_titles_is_shown_not_run(name, literal, never):
    """Names pass through Jinja once, as values; a "{{ }}" in them must never be evaluated."""
    page = build(
        title=name,
        suppliers=[make_supplier(1, name), make_supplier(2, "x"), make_supplier(3, "y")],
        demand_points=[make_demand_point("d1", name), make_demand_point("d2", "y")],
    )

    assert page.count(literal) >= 2  # the title and the data, as typed
    if never:
        assert never not in page


def test_title_and_labels_are_html_escaped():
    hostile = "<img src=x onerror=alert(1)>"

    page = build(title=hostile, labels={"suppliers": hostile, "type_shelter": hostile})

    assert hostile not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_chinese_name_appears_as_typed():
    assert CHINESE_NAME in build()


def test_legend_explains_colours_sizes_and_suspended():
    page = build()
    legend = page[page.index('<details class="bg-legend"') :]

    for key in ("risk_colour", "risk_green", "risk_red", "suspended", "size", "unmet"):
        assert DEFAULT_LABELS[key] in legend
    assert "1,600" in legend  # the largest available capacity, as the largest sample circle


def test_legend_speaks_the_callers_language():
    english = {"suppliers": "Suppliers", "suspended": "Suspended", "risk_red": "Red"}

    page = build(labels=english)

    assert "Suspended" in page and "Red" in page
    assert '"Suppliers"' in page  # the layer control name


def test_suspended_supplier_is_drawn_distinctly():
    data = page_data(build())
    fields = data["fields"]["suppliers"]
    by_name = {row[fields.index("name")]: row for row in data["suppliers"]}

    assert by_name[CLOSING_NAME][fields.index("suspended")] == 1
    assert by_name[SCRIPT_NAME][fields.index("suspended")] == 0
    suspended, active = data["style"]["suspended"], data["style"]["supplier"]
    assert suspended["dashArray"] and "dashArray" not in active
    assert suspended["fillColor"] not in data["risk"]["colours"]


def test_circle_area_grows_with_available_capacity():
    data = page_data(build())
    fields = data["fields"]["suppliers"]
    radius = {
        row[fields.index("available")]: row[fields.index("radius")] for row in data["suppliers"]
    }

    # 400 is a quarter of 1,600, so its radius lies halfway between the smallest and largest.
    assert radius[1600] == 18.0
    assert radius[400] == 11.0


def test_allocation_lines_thicken_with_meals():
    data = page_data(build())
    weight = {row[2]: row[3] for row in data["allocations"]}

    assert weight[600] > weight[150] >= 1


def test_empty_lists_build_a_map():
    page = build(suppliers=[], demand_points=[], allocations=[])
    data = page_data(page)

    assert data["suppliers"] == data["demandPoints"] == data["allocations"] == []
    assert "fitBounds" in page


def test_multipolygon_boundary_fits_all_its_parts():
    second = [[[121.9, 30.2], [122.0, 30.2], [122.0, 30.3], [121.9, 30.2]]]

    page = build(
        boundary={"type": "MultiPolygon", "coordinates": [BOUNDARY["coordinates"], second]}
    )

    assert "[[29.9, 121.55], [30.3, 122.0]]" in page


BAD_INPUT = [
    ({"suppliers": [make_supplier(1, "a", lat=float("nan"))]}, r"suppliers\[0\]\.lat"),
    ({"suppliers": [make_supplier(1, "a", lon="121.7")]}, r"suppliers\[0\]\.lon"),
    ({"suppliers": [make_supplier(1, "a", risk_colour="blue")]}, r"suppliers\[0\]\.risk_colour"),
    ({"suppliers": [make_supplier(1, "a"), make_supplier(1, "b")]}, r"suppliers\[1\]\.id"),
    (
        {"demand_points": [make_demand_point("d", "x", headcount=-1)]},
        r"demand_points\[0\]\.headcount",
    ),
    ({"demand_points": [make_demand_point("d", "x", type="camp")]}, r"demand_points\[0\]\.type"),
    (
        {"allocations": [{"supplier_id": 9, "demand_point_id": "d1", "meals": 1}]},
        r"allocations\[0\]\.supplier_id",
    ),
    ({"boundary": {"type": "Point", "coordinates": [121.7, 29.9]}}, r"boundary"),
    ({"labels": {"supplierz": "x"}}, r"labels\.supplierz"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUT)
def test_bad_input_is_refused_naming_row_and_field(overrides, message):
    with pytest.raises(MapDataError, match=message):
        build(**overrides)


def test_write_capacity_map_writes_utf8_page(tmp_path):
    target = tmp_path / "capacity.html"

    written = write_capacity_map(
        target,
        boundary=BOUNDARY,
        suppliers=[make_supplier(1, CHINESE_NAME)],
        demand_points=[],
        allocations=[],
        title="镇海",
    )

    assert written == target
    assert CHINESE_NAME in target.read_text(encoding="utf-8")
    assert [path.name for path in tmp_path.iterdir()] == ["capacity.html"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed")
def test_page_draws_in_headless_chromium_without_network(tmp_path):
    target = tmp_path / "capacity.html"
    target.write_text(build(), encoding="utf-8")
    chromium = shutil.which(str(CHROMIUM))

    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",  # any attempt to reach the network fails
            "--virtual-time-budget=3000",
            "--dump-dom",
            target.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert "leaflet-container" in result.stdout
    assert "<canvas" in result.stdout
    assert "leaflet-control-layers" in result.stdout
