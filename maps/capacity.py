"""Supplier capacity map: suppliers, demand points and allocations on one offline page.

The command centre opens this page during an incident, possibly with no internet, so the
page carries Leaflet itself (from the XStatic-Leaflet package) and links nothing outside.
To stay small and fast with tens of thousands of points, each kind of record is embedded
once as a compact JSON table and drawn on a canvas by a few lines of JavaScript, instead
of one Folium object per marker.

Names are user text. They reach the page only inside JSON whose ``<``, ``>`` and ``&`` are
escaped, and the browser shows them with ``textContent``, so they are displayed literally
and can neither close the script element nor run as HTML. The title and the labels,
which do go into HTML, are escaped there.
"""

import functools
import json
import math
import numbers
import os
import re
import reprlib
from base64 import b64encode
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import folium
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from folium.template import Template
from markupsafe import Markup, escape
from xstatic.pkg import leaflet as xstatic_leaflet

RISK_COLOURS = {
    "green": "#2e7d32",
    "yellow": "#fbc02d",
    "orange": "#ef6c00",
    "red": "#c62828",
}
SUPPLIER_STATUSES = ("active", "suspended")
RATINGS = ("A", "B", "C")

# Outline points of the demand point shapes, in units of the marker radius (y grows down,
# as on a canvas). The legend draws the same points, so map and legend cannot disagree.
SHAPES = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "diamond": [(0, -1), (1, 0), (0, 1), (-1, 0)],
    "triangle": [(0, -1), (0.95, 0.75), (-0.95, 0.75)],
    "cross": [
        (-0.35, -1), (0.35, -1), (0.35, -0.35), (1, -0.35), (1, 0.35), (0.35, 0.35),
        (0.35, 1), (-0.35, 1), (-0.35, 0.35), (-1, 0.35), (-1, -0.35), (-0.35, -0.35),
    ],
}  # fmt: skip
DEMAND_POINT_TYPES = {
    "shelter": {"colour": "#1565c0", "shape": "square"},
    "venue": {"colour": "#6a1b9a", "shape": "diamond"},
    "hospital": {"colour": "#00897b", "shape": "cross"},
    "school": {"colour": "#6d4c41", "shape": "triangle"},
}

# Leaflet path options, shared by the map and the legend.
STYLES = {
    "boundary": {"color": "#37474f", "weight": 2, "fillColor": "#ffffff", "fillOpacity": 0.5},
    "supplier": {"color": "#263238", "weight": 1, "fillOpacity": 0.85},
    "suspended": {
        "color": "#c62828",
        "weight": 2,
        "dashArray": "3 2",
        "fillColor": "#9e9e9e",
        "fillOpacity": 0.85,
    },
    "demandPoint": {"color": "#ffffff", "weight": 1, "fillOpacity": 0.95, "radius": 6},
    "unmet": {"color": "#000000", "weight": 2.5},
    "allocation": {"color": "#1e5aa8", "opacity": 0.55},
    "suspendedAllocation": {"color": "#c62828", "opacity": 0.8, "dashArray": "6 4"},
}
SUPPLIER_RADIUS = (4.0, 18.0)  # px for no and for the largest available capacity
ALLOCATION_WEIGHT = (1.0, 6.0)  # px for the smallest and the largest allocation

# Column order of the JSON tables; the page looks columns up by these names.
SUPPLIER_FIELDS = (
    "lat", "lon", "name", "type", "risk", "suspended", "rating", "capacity", "available",
    "radius",
)  # fmt: skip
DEMAND_POINT_FIELDS = ("lat", "lon", "name", "type", "headcount", "demand", "allocated")
ALLOCATION_FIELDS = ("supplier", "demandPoint", "meals", "weight")

BOUNDARY_PANE = "boundary"
COORDINATE_DIGITS = 5  # about 1 m, finer than any address in the data

DEFAULT_LABELS = {
    "legend": "图例",
    "boundary": "区界",
    "suppliers": "供应商",
    "demand_points": "需求点",
    "allocations": "配送线路",
    "risk_colour": "风险颜色",
    "risk_green": "绿",
    "risk_yellow": "黄",
    "risk_orange": "橙",
    "risk_red": "红",
    "status": "状态",
    "active": "正常",
    "suspended": "已暂停",
    "rating": "量化等级",
    "type": "类型",
    "capacity": "产能（份）",
    "available": "可用产能（份）",
    "size": "圆点大小表示可用产能",
    "headcount": "人数",
    "meals_demand": "需求（份）",
    "meals_allocated": "已分配（份）",
    "unmet": "需求未满足",
    "meals": "份数",
    "width": "线宽表示份数",
    "suspended_allocation": "来自已暂停的供应商，待重新分配",
    "type_shelter": "安置点",
    "type_venue": "场馆",
    "type_hospital": "医院",
    "type_school": "学校",
    "type_central_kitchen": "中央厨房",
    "type_group_meal": "集体用餐配送单位",
    "type_canteen": "单位食堂",
    "type_restaurant": "餐馆",
}
# Callers may label further supplier types, e.g. "type_box_meal_plant".
TYPE_LABEL_PREFIX = "type_"


class MapDataError(ValueError):
    """Input that cannot be mapped; the message names the list, row and field."""


def build_capacity_map(
    *,
    boundary: dict,
    suppliers: list[dict],
    demand_points: list[dict],
    allocations: list[dict],
    title: str,
    labels: dict | None = None,
    tiles: str | None = None,
    tile_attribution: str | None = None,
) -> str:
    """Return the capacity map as one HTML document that draws without any network.

    `tiles` adds a base map (a Folium tile name, or a URL template with
    `tile_attribution`); without it the page stays offline and shows the boundary alone.
    Raises MapDataError naming the row and field of the first value it cannot map.
    """
    if not isinstance(title, str):
        raise MapDataError(f"title: expected text, got {_short(title)}")

    ui = _merge_labels(labels)
    boundary_feature, bounds = _boundary_feature(boundary)
    supplier_rows, supplier_index, supplier_types = _supplier_rows(suppliers, ui)
    demand_rows, demand_index = _demand_point_rows(demand_points)
    allocation_rows = _allocation_rows(allocations, supplier_index, demand_index)
    data = _CapacityData(
        {
            **_page_settings(ui),
            "supplierTypes": supplier_types,
            "suppliers": supplier_rows,
            "demandPoints": demand_rows,
            "allocations": allocation_rows,
        }
    )

    figure = Figure(title=escape(title))
    figure.header.add_child(_Raw(f"<style>{_leaflet_css()}</style>"), name="leaflet_css")
    figure.header.add_child(_Raw(f"<script>{_leaflet_js()}</script>"), name="leaflet_js")
    figure.header.add_child(_Raw(f"<script>{_RUNTIME_JS}</script>"), name="capacity_js")
    capacity_map = _OfflineMap(tiles=None, prefer_canvas=True, control_scale=True)
    figure.add_child(capacity_map)
    if tiles:
        folium.TileLayer(tiles, attr=tile_attribution, control=False).add_to(capacity_map)
    _add_layers(capacity_map, data, boundary_feature, ui)
    capacity_map.fit_bounds(bounds)

    available = SUPPLIER_FIELDS.index("available")
    max_available = max((row[available] for row in supplier_rows), default=0)
    figure.add_child(_Legend(title, ui, max_available))

    page = figure.render()
    _check_offline(page)
    return page


def write_capacity_map(path: str | os.PathLike, **kwargs) -> Path:
    """Build the capacity map and write it to `path` as UTF-8, replacing it whole.

    The page is written to a temporary file first, so a reader never sees half a map.
    """
    from app.files import replace_file

    target = Path(path)
    replace_file(target, build_capacity_map(**kwargs))
    return target


# Input checks and the compact tables -------------------------------------------------------


def _merge_labels(labels: dict | None) -> dict:
    """Return the default zh-CN labels overridden by the caller's, refusing unknown keys."""
    merged = dict(DEFAULT_LABELS)
    for key, value in (labels or {}).items():
        if key not in DEFAULT_LABELS and not str(key).startswith(TYPE_LABEL_PREFIX):
            raise MapDataError(f"labels.{key}: unknown label")
        if not isinstance(value, str):
            raise MapDataError(f"labels.{key}: expected text, got {_short(value)}")
        merged[key] = value
    return merged


def _boundary_feature(boundary: dict) -> tuple[dict, list[list[float]]]:
    """Return the boundary as a rounded GeoJSON feature and its [[south, west], [north, east]]."""
    if not isinstance(boundary, Mapping) or boundary.get("type") not in ("Polygon", "MultiPolygon"):
        raise MapDataError("boundary: expected a GeoJSON Polygon or MultiPolygon geometry")

    polygons = boundary.get("coordinates")
    if boundary["type"] == "Polygon":
        polygons = [polygons]
    if not isinstance(polygons, list) or not polygons:
        raise MapDataError("boundary.coordinates: expected a non-empty list of rings")

    lats, lons, rounded = [], [], []
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            raise MapDataError("boundary.coordinates: expected a non-empty list of rings")
        rings = []
        for ring in polygon:
            if not isinstance(ring, list) or len(ring) < 4:
                raise MapDataError("boundary.coordinates: a ring needs at least four positions")
            positions = []
            for position in ring:
                if not isinstance(position, (list, tuple)) or len(position) < 2:
                    raise MapDataError(
                        f"boundary.coordinates: expected [lon, lat], got {_short(position)}"
                    )
                lon = _coordinate("boundary", "lon", position[0], 180)
                lat = _coordinate("boundary", "lat", position[1], 90)
                lons.append(lon)
                lats.append(lat)
                positions.append([lon, lat])
            rings.append(positions)
        rounded.append(rings)

    geometry = (
        {"type": "Polygon", "coordinates": rounded[0]}
        if boundary["type"] == "Polygon"
        else {"type": "MultiPolygon", "coordinates": rounded}
    )
    feature = {"type": "Feature", "id": "boundary", "geometry": geometry, "properties": {}}
    return feature, [[min(lats), min(lons)], [max(lats), max(lons)]]


def _supplier_rows(suppliers: list[dict], ui: dict) -> tuple[list, dict, list[str]]:
    """Return the supplier table, the row of each supplier id, and the type labels."""
    records = []
    for position, supplier in enumerate(_records("suppliers", suppliers)):
        where = f"suppliers[{position}]"
        records.append(
            {
                "id": _field(supplier, where, "id"),
                "lat": _coordinate(where, "lat", _field(supplier, where, "lat"), 90),
                "lon": _coordinate(where, "lon", _field(supplier, where, "lon"), 180),
                "name": _text(where, "name", _field(supplier, where, "name")),
                "type": _text(where, "type", _field(supplier, where, "type")),
                "risk": _choice(where, "risk_colour", supplier, tuple(RISK_COLOURS)),
                "status": _choice(where, "status", supplier, SUPPLIER_STATUSES),
                "rating": _choice(where, "rating", supplier, RATINGS),
                "capacity": _amount(where, "capacity", _field(supplier, where, "capacity")),
                "available": _amount(where, "available", _field(supplier, where, "available")),
                "where": where,
            }
        )

    # Largest first, so that small circles are drawn over the big ones and stay visible.
    records.sort(key=lambda record: -record["available"])
    max_available = max((record["available"] for record in records), default=0)
    risk_keys = list(RISK_COLOURS)
    type_keys: dict[str, int] = {}
    rows, index = [], {}
    for record in records:
        if record["id"] in index:
            raise MapDataError(
                f"{record['where']}.id: duplicate supplier id {_short(record['id'])}"
            )
        index[record["id"]] = len(rows)
        type_number = type_keys.setdefault(record["type"], len(type_keys))
        rows.append(
            [  # in SUPPLIER_FIELDS order
                record["lat"],
                record["lon"],
                record["name"],
                type_number,
                risk_keys.index(record["risk"]),
                int(record["status"] == "suspended"),
                record["rating"],
                record["capacity"],
                record["available"],
                _supplier_radius(record["available"], max_available),
            ]
        )

    type_labels = [ui.get(TYPE_LABEL_PREFIX + key, key) for key in type_keys]
    return rows, index, type_labels


def _demand_point_rows(demand_points: list[dict]) -> tuple[list, dict]:
    """Return the demand point table and the row of each demand point id."""
    type_keys = list(DEMAND_POINT_TYPES)
    rows, index = [], {}
    for position, point in enumerate(_records("demand_points", demand_points)):
        where = f"demand_points[{position}]"
        point_id = _field(point, where, "id")
        if point_id in index:
            raise MapDataError(f"{where}.id: duplicate demand point id {_short(point_id)}")
        index[point_id] = len(rows)
        rows.append(
            [  # in DEMAND_POINT_FIELDS order
                _coordinate(where, "lat", _field(point, where, "lat"), 90),
                _coordinate(where, "lon", _field(point, where, "lon"), 180),
                _text(where, "name", _field(point, where, "name")),
                type_keys.index(_choice(where, "type", point, tuple(type_keys))),
                _amount(where, "headcount", _field(point, where, "headcount")),
                _amount(where, "meals_demand", _field(point, where, "meals_demand")),
                _amount(where, "meals_allocated", _field(point, where, "meals_allocated")),
            ]
        )
    return rows, index


def _allocation_rows(allocations: list[dict], suppliers: dict, demand_points: dict) -> list:
    """Return the allocation table, pointing at rows of the supplier and demand point tables."""
    pairs = []
    for position, allocation in enumerate(_records("allocations", allocations)):
        where = f"allocations[{position}]"
        supplier_id = _field(allocation, where, "supplier_id")
        point_id = _field(allocation, where, "demand_point_id")
        if supplier_id not in suppliers:
            raise MapDataError(f"{where}.supplier_id: no supplier {_short(supplier_id)}")
        if point_id not in demand_points:
            raise MapDataError(f"{where}.demand_point_id: no demand point {_short(point_id)}")
        meals = _amount(where, "meals", _field(allocation, where, "meals"))
        pairs.append((suppliers[supplier_id], demand_points[point_id], meals))

    largest = max((meals for _, _, meals in pairs), default=0)
    thinnest, thickest = ALLOCATION_WEIGHT
    return [
        [supplier, point, meals, _scale(meals, largest, thinnest, thickest)]
        for supplier, point, meals in pairs
    ]


def _supplier_radius(available: float, max_available: float) -> float:
    """Return the circle radius; the area, not the radius, grows with available capacity."""
    return _scale(available, max_available, *SUPPLIER_RADIUS)


def _scale(value: float, largest: float, smallest_px: float, largest_px: float) -> float:
    """Map 0..largest onto smallest_px..largest_px along a square root, to one decimal."""
    share = math.sqrt(value / largest) if largest > 0 else 0.0
    return round(smallest_px + (largest_px - smallest_px) * share, 1)


def _records(what: str, records: list) -> list:
    if not isinstance(records, (list, tuple)):
        raise MapDataError(f"{what}: expected a list, got {_short(records)}")
    for position, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise MapDataError(f"{what}[{position}]: expected a mapping, got {_short(record)}")
    return records


def _field(record: Mapping, where: str, field: str):
    try:
        return record[field]
    except KeyError:
        raise MapDataError(f"{where}.{field}: missing") from None


def _text(where: str, field: str, value) -> str:
    if not isinstance(value, str):
        raise MapDataError(f"{where}.{field}: expected text, got {_short(value)}")
    return value


def _choice(where: str, field: str, record: Mapping, allowed: tuple) -> str:
    value = _field(record, where, field)
    if value not in allowed:
        raise MapDataError(
            f"{where}.{field}: expected one of {', '.join(allowed)}, got {_short(value)}"
        )
    return value


def _number(where: str, field: str, value) -> float:
    # bool is an int to Python, but True is never a latitude or a meal count.
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise MapDataError(f"{where}.{field}: expected a number, got {_short(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise MapDataError(f"{where}.{field}: expected a finite number, got {_short(value)}")
    return number


def _coordinate(where: str, field: str, value, limit: int) -> float:
    number = _number(where, field, value)
    if not -limit <= number <= limit:
        raise MapDataError(f"{where}.{field}: expected -{limit} to {limit}, got {_short(value)}")
    return round(number, COORDINATE_DIGITS)


def _amount(where: str, field: str, value) -> int | float:
    number = _number(where, field, value)
    if number < 0:
        raise MapDataError(f"{where}.{field}: expected zero or more, got {_short(value)}")
    return int(number) if number.is_integer() else round(number, 2)


def _short(value) -> str:
    """Return a repr short enough for an error message, whatever the caller passed."""
    return reprlib.repr(value)


def _html(text: str) -> str:
    return str(escape(text))


# Page assembly -----------------------------------------------------------------------------


def _page_settings(ui: dict) -> dict:
    """Return what the page needs besides the tables: labels, colours, shapes and styles."""
    return {
        "ui": ui,
        "risk": {
            "colours": list(RISK_COLOURS.values()),
            "labels": [ui[f"risk_{key}"] for key in RISK_COLOURS],
        },
        "demandTypes": [
            {
                "label": ui[TYPE_LABEL_PREFIX + key],
                "colour": kind["colour"],
                "shape": SHAPES[kind["shape"]],
            }
            for key, kind in DEMAND_POINT_TYPES.items()
        ],
        "style": STYLES,
        "fields": {
            "suppliers": SUPPLIER_FIELDS,
            "demandPoints": DEMAND_POINT_FIELDS,
            "allocations": ALLOCATION_FIELDS,
        },
    }


def _add_layers(
    capacity_map: folium.Map, data: "_CapacityData", boundary_feature: dict, ui: dict
) -> None:
    """Add the boundary, the three record overlays and a layer control that lists them."""
    capacity_map.add_child(data)

    # The boundary gets a pane of its own below the markers, so that switching it off and on
    # again cannot paint its fill over them. The layer control writes layer names as HTML,
    # so they go in escaped.
    folium.map.CustomPane(BOUNDARY_PANE, z_index=350, pointer_events=False).add_to(capacity_map)
    folium.GeoJson(
        boundary_feature,
        name=_html(ui["boundary"]),
        style_function=lambda _feature: STYLES["boundary"],
        interactive=False,
        pane=BOUNDARY_PANE,
    ).add_to(capacity_map)

    # Drawing order: lines under suppliers, small demand points on top.
    layers = [
        _RecordLayer("drawAllocations", data, _html(ui["allocations"])),
        _RecordLayer("drawSuppliers", data, _html(ui["suppliers"])),
        _RecordLayer("drawDemandPoints", data, _html(ui["demand_points"])),
    ]
    for layer in layers:
        capacity_map.add_child(layer)
    capacity_map.add_child(_LayerOrder(layers))
    folium.LayerControl(collapsed=False).add_to(capacity_map)


def _script_json(value) -> str:
    """Return JSON that is safe to place inside a <script> element.

    json.dumps leaves "<" alone, so a name containing "</script>" would end the element;
    escaping <, > and & keeps every name inside its string. U+2028 and U+2029 are escaped
    for older browsers that do not accept them inside JavaScript strings.
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for character, replacement in _SCRIPT_ESCAPES:
        text = text.replace(character, replacement)
    return text


_SCRIPT_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


@functools.cache
def _leaflet_js() -> str:
    script = (Path(xstatic_leaflet.BASE_DIR) / "leaflet.js").read_text(encoding="utf-8")
    # The source-map comment would make developer tools fetch a file that is not there.
    return re.sub(r"//# sourceMappingURL=\S+\s*$", "", script)


@functools.cache
def _leaflet_css() -> str:
    """Return Leaflet's stylesheet with its images (layer control icons) inlined."""
    base = Path(xstatic_leaflet.BASE_DIR)

    def inline(match: re.Match) -> str:
        encoded = b64encode((base / match.group(1)).read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{encoded})"

    css = (base / "leaflet.css").read_text(encoding="utf-8")
    return re.sub(r"url\((images/[\w.-]+\.png)\)", inline, css)


_EXTERNAL_RESOURCE = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=", re.IGNORECASE)


def _check_offline(page: str) -> None:
    """Fail loudly if any element linked a script or stylesheet, which would need a network."""
    found = _EXTERNAL_RESOURCE.search(page)
    if found:
        raise RuntimeError(
            f"capacity map links an external resource: {page[found.start() :][:120]}"
        )


class _Raw(Element):
    """Page text placed as it is; Leaflet's code must not pass through Jinja."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def render(self, **kwargs) -> str:
        return self.text


class _OfflineMap(folium.Map):
    """A Folium map that links none of Folium's default CDN scripts and stylesheets.

    Leaflet is inlined by build_capacity_map; jQuery, Bootstrap and the awesome-markers
    that Folium links by default are not used by this map.
    """

    default_js = ()
    default_css = ()


class _Literal(MacroElement):
    """A macro element whose rendered parts are placed as they are.

    branca's MacroElement wraps each rendered macro in a new Element, which parses it again
    as a Jinja template: a supplier named "{{ ... }}" would run as template code. Here the
    macros render once, with the data as values, and the output is never parsed again.
    """

    def render(self, **kwargs):
        figure = self.get_root()
        module = self._template.module.__dict__
        for part, parent in (("header", figure.header), ("html", figure.html),
                             ("script", figure.script)):  # fmt: skip
            macro = module.get(part)
            if macro is not None:
                parent.add_child(_Raw(str(macro(self, kwargs))), name=self.get_name())
        for element in self._children.values():
            element.render(**kwargs)


class _CapacityData(_Literal):
    """The tables every layer draws from, embedded once as a JavaScript object."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = {{ this.json }};
        {% endmacro %}
        """
    )

    def __init__(self, data: dict):
        super().__init__()
        self._name = "CapacityData"
        self.json = _script_json(data)


class _RecordLayer(Layer):
    """One overlay (suppliers, demand points or allocations) drawn from the shared tables."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.featureGroup();
            BaogongCapacity.{{ this.painter }}({{ this.get_name() }}, {{ this.data.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, painter: str, data: _CapacityData, name: str):
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "CapacityLayer"
        self.painter = painter
        self.data = data


class _LayerOrder(MacroElement):
    """Keeps the drawing order of the record layers when one is switched off and on again.

    They share one canvas, which paints in the order layers were added; panes of their own
    would give each a canvas, and only the topmost canvas receives the pointer.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            BaogongCapacity.keepOrder(
                {{ this._parent.get_name() }},
                [{% for layer in this.layers %}{{ layer.get_name() }}, {% endfor %}]
            );
        {% endmacro %}
        """
    )

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self._name = "LayerOrder"
        self.layers = layers


class _Legend(_Literal):
    """The page title and a legend for colours, shapes, sizes and line widths."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
        <style>
            .leaflet-container { background: #eef0ec; }
            .bg-title, .bg-legend {
                position: absolute; z-index: 1000; background: rgba(255, 255, 255, 0.95);
                border-radius: 4px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3);
                font-family: sans-serif;
            }
            .bg-title {
                top: 10px; left: 50%; transform: translateX(-50%); padding: 4px 12px;
                font-size: 16px; font-weight: 600; pointer-events: none;
            }
            .bg-legend {
                bottom: 24px; left: 10px; padding: 6px 10px; font-size: 12px;
                line-height: 1.5; max-height: 70vh; overflow: auto;
            }
            .bg-legend summary { font-weight: 600; cursor: pointer; }
            .bg-legend h4 { margin: 6px 0 2px; font-size: 12px; }
            .bg-legend div { display: flex; align-items: center; gap: 6px; }
            .bg-legend svg { flex: none; }
            .bg-card th { text-align: left; font-weight: normal; color: #555; padding-right: 8px; }
        </style>
        {% endmacro %}

        {% macro html(this, kwargs) %}
        <div class="bg-title">{{ this.title|e }}</div>
        <details class="bg-legend" open>
            <summary>{{ this.ui.legend|e }}</summary>
            {% for heading, entries in this.sections %}
            <h4>{{ heading|e }}</h4>
            {% for symbol, text in entries %}
            <div>{{ symbol }}<span>{{ text|e }}</span></div>
            {% endfor %}
            {% endfor %}
        </details>
        {% endmacro %}
        """
    )

    def __init__(self, title: str, ui: dict, max_available: float):
        super().__init__()
        self._name = "CapacityLegend"
        self.title = title
        self.ui = ui
        self.sections = _legend_sections(ui, max_available)


def _legend_sections(ui: dict, max_available: float) -> list:
    """Return (heading, [(svg symbol, text)]) for the legend; symbols come from constants."""
    supplier, suspended = STYLES["supplier"], STYLES["suspended"]
    risk = [
        (_svg_circle(6, colour, supplier), f"{ui['risk_colour']}: {ui[f'risk_{key}']}")
        for key, colour in RISK_COLOURS.items()
    ]
    risk.append((_svg_circle(6, suspended["fillColor"], suspended), ui["suspended"]))

    # Sample sizes: all, a quarter and none of the largest available capacity.
    amounts = (max_available, max_available / 4, 0) if max_available else (0,)
    sizes = [
        (
            _svg_circle(_supplier_radius(amount, max_available), "#b0bec5", supplier),
            f"{amount:,.0f}",
        )
        for amount in amounts
    ]

    point, unmet = STYLES["demandPoint"], STYLES["unmet"]
    points = [
        (_svg_shape(kind["shape"], kind["colour"], point), ui[TYPE_LABEL_PREFIX + key])
        for key, kind in DEMAND_POINT_TYPES.items()
    ]
    points.append((_svg_shape("square", "#b0bec5", {**point, **unmet}), ui["unmet"]))

    allocation, suspended_allocation = STYLES["allocation"], STYLES["suspendedAllocation"]
    lines = [
        (_svg_line(ALLOCATION_WEIGHT[0], allocation), ui["width"]),
        (_svg_line(ALLOCATION_WEIGHT[1], allocation), ui["width"]),
        (_svg_line(2, suspended_allocation), ui["suspended_allocation"]),
    ]
    return [
        (ui["suppliers"], risk),
        (ui["size"], sizes),
        (ui["demand_points"], points),
        (ui["allocations"], lines),
    ]


def _svg_circle(radius: float, fill: str, style: dict) -> Markup:
    size = 2 * SUPPLIER_RADIUS[1] + 4 if radius > 8 else 16
    centre = size / 2
    return Markup(
        f'<svg width="{size:g}" height="{size:g}"><circle cx="{centre:g}" cy="{centre:g}" '
        f'r="{radius:g}" fill="{fill}" fill-opacity="{style["fillOpacity"]}" '
        f"{_svg_stroke(style)}/></svg>"
    )


def _svg_shape(shape: str, fill: str, style: dict) -> Markup:
    radius, centre = style["radius"], 8
    points = " ".join(f"{centre + x * radius:g},{centre + y * radius:g}" for x, y in SHAPES[shape])
    # A white outline vanishes on the white legend, so the legend draws it grey.
    stroke = {**style, "color": "#90a4ae"} if style["color"] == "#ffffff" else style
    return Markup(
        f'<svg width="16" height="16"><polygon points="{points}" fill="{fill}" '
        f'fill-opacity="{style["fillOpacity"]}" {_svg_stroke(stroke)}/></svg>'
    )


def _svg_line(weight: float, style: dict) -> Markup:
    return Markup(
        f'<svg width="30" height="12"><line x1="1" y1="6" x2="29" y2="6" '
        f'stroke-opacity="{style["opacity"]}" {_svg_stroke({**style, "weight": weight})}/></svg>'
    )


def _svg_stroke(style: dict) -> str:
    dash = f' stroke-dasharray="{style["dashArray"]}"' if "dashArray" in style else ""
    return f'stroke="{style["color"]}" stroke-width="{style["weight"]:g}"{dash}'


# Draws the tables on the map's canvas renderer. Hover text is built with textContent, so
# names are shown exactly as typed and never parsed as HTML.
_RUNTIME_JS = """
var BaogongCapacity = (function () {
  "use strict";

  // Demand points are small polygons painted on the canvas: 20,000 DOM icons would be
  // far slower to draw. Falls back to a circle if the map ever uses the SVG renderer.
  var ShapeMarker = L.CircleMarker.extend({
    _updatePath: function () {
      var renderer = this._renderer;
      if (!(renderer instanceof L.Canvas)) {
        return L.CircleMarker.prototype._updatePath.call(this);
      }
      if (!renderer._drawing || this._empty()) {
        return;
      }
      var ctx = renderer._ctx, p = this._point, r = this._radius, shape = this.options.shape;
      ctx.beginPath();
      for (var i = 0; i < shape.length; i++) {
        ctx[i ? "lineTo" : "moveTo"](p.x + shape[i][0] * r, p.y + shape[i][1] * r);
      }
      ctx.closePath();
      renderer._fillStroke(ctx, this);
    }
  });

  function columns(fields) {
    var at = {};
    fields.forEach(function (field, i) { at[field] = i; });
    return at;
  }

  function count(value) {
    return Number(value).toLocaleString();
  }

  function card(title, rows) {
    var box = document.createElement("div");
    var head = document.createElement("b");
    var table = document.createElement("table");
    box.className = "bg-card";
    head.textContent = title;
    rows.forEach(function (pair) {
      var tr = table.insertRow();
      var th = document.createElement("th");
      th.textContent = pair[0];
      tr.appendChild(th);
      tr.insertCell().textContent = pair[1];
    });
    box.appendChild(head);
    box.appendChild(table);
    return box;
  }

  function describeWith(group, describe) {
    group.bindTooltip(function (layer) { return describe(layer.options.record); },
                      {sticky: true});
  }

  function drawSuppliers(group, data) {
    var S = columns(data.fields.suppliers), ui = data.ui;
    data.suppliers.forEach(function (row) {
      var style = row[S.suspended] ? data.style.suspended
        : L.extend({fillColor: data.risk.colours[row[S.risk]]}, data.style.supplier);
      var options = L.extend({radius: row[S.radius], record: row}, style);
      group.addLayer(L.circleMarker([row[S.lat], row[S.lon]], options));
    });
    describeWith(group, function (row) {
      return card(row[S.name], [
        [ui.type, data.supplierTypes[row[S.type]]],
        [ui.status, row[S.suspended] ? ui.suspended : ui.active],
        [ui.risk_colour, data.risk.labels[row[S.risk]]],
        [ui.rating, row[S.rating]],
        [ui.capacity, count(row[S.capacity])],
        [ui.available, count(row[S.available])]
      ]);
    });
  }

  function drawDemandPoints(group, data) {
    var D = columns(data.fields.demandPoints), ui = data.ui;
    data.demandPoints.forEach(function (row) {
      var kind = data.demandTypes[row[D.type]];
      var options = L.extend({}, data.style.demandPoint,
                             {fillColor: kind.colour, shape: kind.shape, record: row});
      if (row[D.allocated] < row[D.demand]) {
        L.extend(options, data.style.unmet);
      }
      group.addLayer(new ShapeMarker([row[D.lat], row[D.lon]], options));
    });
    describeWith(group, function (row) {
      return card(row[D.name], [
        [ui.type, data.demandTypes[row[D.type]].label],
        [ui.headcount, count(row[D.headcount])],
        [ui.meals_demand, count(row[D.demand])],
        [ui.meals_allocated, count(row[D.allocated])]
      ]);
    });
  }

  function drawAllocations(group, data) {
    var S = columns(data.fields.suppliers), D = columns(data.fields.demandPoints);
    var A = columns(data.fields.allocations), ui = data.ui;
    data.allocations.forEach(function (row) {
      var from = data.suppliers[row[A.supplier]], to = data.demandPoints[row[A.demandPoint]];
      var style = from[S.suspended] ? data.style.suspendedAllocation : data.style.allocation;
      var options = L.extend({weight: row[A.weight], record: row}, style);
      group.addLayer(L.polyline([[from[S.lat], from[S.lon]], [to[D.lat], to[D.lon]]], options));
    });
    describeWith(group, function (row) {
      var from = data.suppliers[row[A.supplier]], to = data.demandPoints[row[A.demandPoint]];
      return card(from[S.name] + " \\u2192 " + to[D.name], [[ui.meals, count(row[A.meals])]]);
    });
  }

  function keepOrder(map, groups) {
    map.on("overlayadd", function () {
      groups.forEach(function (group) {
        if (map.hasLayer(group)) {
          group.bringToFront();
        }
      });
    });
  }

  return {
    drawSuppliers: drawSuppliers,
    drawDemandPoints: drawDemandPoints,
    drawAllocations: drawAllocations,
    keepOrder: keepOrder
  };
})();
"""
