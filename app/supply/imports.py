"""Suppliers and demand points in and out of the files users hold: CSV and Excel (.xlsx).

One column table per kind says, for each field, the English name and the Chinese header
accepted for it, its unit and whether it is required. A file is read and checked whole:
CSV as UTF-8 (with or without BOM) or GBK/GB18030, spreadsheets cell by cell; numbers
written "1,200" are read as 1200 and never as 1.2; coordinates given in GCJ-02 (Amap,
Tencent) or BD-09 (Baidu) are converted to WGS-84; a place far outside the region is
refused, saying so when swapped latitude and longitude would put it inside. Every bad row
is named with its line and field, and a refused file imports nothing.
"""

import codecs
import csv
import io
import math
import os
import re
import unicodedata
from dataclasses import dataclass

from shapely.geometry import Point
from sqlalchemy import select

from app.errors import InvalidInput
from app.extensions import db
from app.supply.models import (
    DEMAND_POINT_TYPES,
    RATINGS,
    RISK_COLOURS,
    SUPPLIER_TYPES,
    DemandPoint,
    Supplier,
)
from app.techsupport.risk import refresh_live_colours, start_colour

KINDS = ("suppliers", "demand")
COORDINATE_SYSTEMS = ("wgs84", "gcj02", "bd09")
# No kitchen cooks, and no shelter holds, a million of anything: a larger count is a typo.
MAX_COUNT = 1_000_000
# A spreadsheet larger than this is not a list of kitchens; openpyxl would hold it whole.
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
# What the XML inside a workbook may add up to; a real list of kitchens is a few MiB.
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
EARTH_RADIUS_KM = 6371.0088
# Longitude and latitude differences of GCJ-02 and BD-09 are below 0.01 degrees; the
# inverse is refined until it maps back within this.
CONVERSION_TOLERANCE = 1e-7


@dataclass(frozen=True)
class Column:
    """One column of an import file: `field` is its English header and key, `header` the
    Chinese header accepted for it, `attribute` the model column it fills."""

    field: str
    header: str
    unit: str
    required: bool
    read: object
    attribute: str | None = None
    default: object = None
    aliases: tuple = ()
    # False for a column that is checked and exported but never written from a file.
    stored: bool = True

    @property
    def target(self):
        return self.attribute or self.field


class Context:
    """What rows are checked against: the region and how coordinates are given."""

    def __init__(self, boundary, streets, coords="wgs84", max_km_outside=50.0):
        if coords not in COORDINATE_SYSTEMS:
            raise InvalidInput(
                "import refused", {"coords": [f"must be one of {', '.join(COORDINATE_SYSTEMS)}"]}
            )
        self.boundary = boundary
        self.streets = frozenset(streets)
        self.coords = coords
        self.max_km_outside = max_km_outside


# Readers: each takes the cell as read (text from CSV, a number or text from Excel) and
# returns the value, or raises ValueError with what is wrong in words.


def _plain(value, normal=True):
    """The cell as trimmed text; `normal` also makes full-width digits and letters ASCII,
    which is right for numbers and codes and wrong for names, shown as typed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    found = str(value).strip()
    return unicodedata.normalize("NFKC", found).strip() if normal else found


def text(limit, required=True):
    def read(value):
        found = _plain(value, normal=False)
        if found[:1] == "'" and found[1:2] and found[1:].startswith(FORMULA_STARTS):
            found = found[1:]  # the quote an export put before a formula-like text
        if required and not found:
            raise ValueError("must not be empty")
        if len(found) > limit:
            raise ValueError(f"must be at most {limit} characters")
        if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in found):
            raise ValueError("must not hold control characters")
        return found or None

    return read


_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")


def count(value):
    """A whole number of meals or people: 1200, "1200", "1,200" or 1200.0 all give 1200."""
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, got {value!r}")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ValueError(f"must be a whole number, got {value!r}")
        number = int(value)
    else:
        found = _plain(value)
        if _GROUPED.fullmatch(found):
            found = found.replace(",", "")
        if not (found.isascii() and found.isdigit()):
            raise ValueError(f"must be a whole number such as 1200 or 1,200, got {value!r}")
        number = int(found)
    if not 0 <= number <= MAX_COUNT:
        raise ValueError(f"must be from 0 to {MAX_COUNT}, got {number}")
    return number


_TRUE = ("true", "1", "yes", "y", "是", "有", "√")
_FALSE = ("false", "0", "no", "n", "否", "无", "")


def flag(value):
    """A yes/no cell, as spreadsheets in either language write it."""
    if isinstance(value, bool):
        return value
    found = _plain(value).casefold()
    if found in _TRUE:
        return True
    if found in _FALSE:
        return False
    raise ValueError(f"must be yes or no (是/否), got {value!r}")


def choice(codes, words=None):
    """One of a fixed set of codes, or the Chinese word for it."""
    words = words or {}

    folded = {code.casefold(): code for code in codes}

    def read(value):
        found = _plain(value)
        if found.casefold() in folded:
            return folded[found.casefold()]
        if found in words:
            return words[found]
        allowed = ", ".join(f"{code} ({word})" for word, code in _first_words(words, codes))
        raise ValueError(f"must be one of {allowed}, got {value!r}")

    return read


def _first_words(words, codes):
    shown = {}
    for word, code in words.items():
        shown.setdefault(code, word)
    return [(shown.get(code, code), code) for code in codes]


def number(value):
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int | float):
        return float(value)
    found = _plain(value)
    try:
        return float(found)
    except ValueError:
        raise ValueError(f"must be a number, got {value!r}") from None


SUPPLIER_TYPE_WORDS = {
    "中央厨房": "central_kitchen",
    "集体用餐配送单位": "group_meal",
    "团餐": "group_meal",
    "团餐企业": "group_meal",
    "食堂": "canteen",
    "单位食堂": "canteen",
    "餐馆": "restaurant",
    "餐厅": "restaurant",
    "饭店": "restaurant",
}
POINT_TYPE_WORDS = {
    "安置点": "shelter",
    "避灾安置点": "shelter",
    "场馆": "venue",
    "活动场馆": "venue",
    "医院": "hospital",
    "学校": "school",
}
# The yearly catering grade (量化分级) in words and letters.
RATING_WORDS = {"优秀": "A", "良好": "B", "一般": "C"}
COLOUR_WORDS = {
    "绿": "green", "绿色": "green", "黄": "yellow", "黄色": "yellow",
    "橙": "orange", "橙色": "orange", "红": "red", "红色": "red",
}  # fmt: skip

SUPPLIER_COLUMNS = (
    Column("code", "编码", "", True, text(40)),
    Column("name", "名称", "", True, text(200)),
    Column("type", "类型", ", ".join(SUPPLIER_TYPES), True,
           choice(SUPPLIER_TYPES, SUPPLIER_TYPE_WORDS)),
    Column("street_code", "街道代码", "9-digit code of a street or town", False, None),
    Column("lat", "纬度", "degrees", True, number),
    Column("lon", "经度", "degrees", True, number),
    Column("breakfast", "早餐产能", "meals", True, count, "breakfast_capacity"),
    Column("lunch", "午餐产能", "meals", True, count, "lunch_capacity"),
    Column("dinner", "晚餐产能", "meals", True, count, "dinner_capacity"),
    Column("rating", "量化等级", "A, B, C (优秀, 良好, 一般)", True, choice(RATINGS, RATING_WORDS)),
    # The risk colour is computed (app/techsupport/risk.py): exported, and when a file
    # gives it, checked to be a colour and then ignored in favour of the computed one.
    Column("risk_colour", "风险颜色", "green, yellow, orange, red (绿, 黄, 橙, 红); computed, "
           "a value given is checked and ignored", False, choice(RISK_COLOURS, COLOUR_WORDS),
           stored=False),
    Column("halal", "清真", "yes/no", False, flag, default=False),
    Column("vegetarian", "素食", "yes/no", False, flag, default=False),
    Column("infant", "婴幼儿餐", "yes/no", False, flag, default=False, aliases=("婴幼儿",)),
    Column("soft_diet", "软食", "yes/no", False, flag, default=False),
    Column("hot_holding", "热链配送", "yes/no: delivers above 60 °C", False, flag, default=False),
    Column("chilled", "冷链配送", "yes/no: delivers below 8 °C", False, flag, default=False),
    Column("fictitious", "虚构", "yes/no: made-up example data", False, flag, default=False),
)  # fmt: skip
DEMAND_COLUMNS = (
    Column("code", "编码", "", True, text(40)),
    Column("name", "名称", "", True, text(200)),
    Column("type", "类型", ", ".join(DEMAND_POINT_TYPES), True,
           choice(DEMAND_POINT_TYPES, POINT_TYPE_WORDS)),
    Column("street_code", "街道代码", "9-digit code of a street or town", False, None),
    Column("lat", "纬度", "degrees", True, number),
    Column("lon", "经度", "degrees", True, number),
    Column("capacity", "容纳人数", "people", True, count),
    Column("fictitious", "虚构", "yes/no: made-up example data", False, flag, default=False),
)  # fmt: skip
TABLES = {"suppliers": (Supplier, SUPPLIER_COLUMNS), "demand": (DemandPoint, DEMAND_COLUMNS)}


def columns_of(kind):
    if kind not in TABLES:
        raise InvalidInput("import refused", {"kind": [f"must be one of {', '.join(KINDS)}"]})
    return TABLES[kind][1]


def _header_key(text_value):
    """A header cell in a form that matches however it was typed: case, spaces, full-width
    brackets and a unit in brackets ("纬度(°)") do not matter."""
    found = unicodedata.normalize("NFKC", str(text_value or "")).strip().casefold()
    found = found.lstrip("\ufeff")
    found = re.sub(r"\s*[(\[].*[)\]]\s*$", "", found)
    return re.sub(r"\s+", "_", found)


def _header_index(columns):
    index = {}
    for column in columns:
        for name in (column.field, column.header, *column.aliases):
            index[_header_key(name)] = column
    return index


# Reading the file


def read_cells(path, name=None):
    """(label of a line, rows) of a CSV or .xlsx file: rows are (line number, cells), the
    header first; blank rows are skipped. CSV cells are text, Excel cells as stored."""
    name = name or os.path.basename(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise InvalidInput(
                f"{name} refused", {name: [f"larger than {MAX_FILE_BYTES // 2**20} MiB"]}
            )
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise InvalidInput(f"{name} refused: cannot read it", {name: [error.strerror]}) from None

    if name.lower().endswith(".xlsx") or data.startswith(b"PK\x03\x04"):
        return "row", list(_xlsx_rows(data, name))
    return "line", list(_csv_rows(decode(data, name), name))


def decode(data, name):
    """Text saved as UTF-8 (with or without BOM) or as GBK/GB18030.

    Spreadsheets on Chinese Windows save GBK unless told otherwise; GB18030 is a superset
    of GBK, so one decoder reads both. Anything else is refused rather than guessed at.
    """
    encodings = ("utf-8-sig",) if data.startswith(codecs.BOM_UTF8) else ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            text_value = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "gb18030":
            _refuse_mixed(data, name)
        return text_value
    raise InvalidInput(
        f"{name} refused: not UTF-8 or GB18030 text",
        {name: ["save the file as UTF-8 or as GB18030 (GBK) text"]},
    )


def _refuse_mixed(data, name):
    """A file read as GB18030 in which some lines hold Chinese in UTF-8 was saved from two
    sources; read either way, some of its names would be garbled."""
    utf8, other = [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            utf8.append(number)
        except UnicodeDecodeError:
            other.append(number)
    if utf8 and other:
        raise InvalidInput(
            f"{name} refused: two encodings in one file",
            {name: [f"lines {_few(utf8)} are UTF-8 and lines {_few(other)} GBK/GB18030; "
                    "save the whole file in one encoding"]},
        )  # fmt: skip


def _few(numbers):
    shown = ", ".join(str(n) for n in numbers[:5])
    return shown + (" ..." if len(numbers) > 5 else "")


def _csv_rows(content, name):
    reader = csv.reader(io.StringIO(content, newline=""))
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InvalidInput(
                f"{name} refused: not readable as CSV", {f"{name} line {line}": [str(error)]}
            ) from None
        if any(cell.strip() for cell in cells):
            yield line, cells


def _check_unpacked_size(data, name):
    """Refuse a workbook that unpacks to far more than it weighs (a zip bomb) before any
    of it is read."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise InvalidInput(
            f"{name} refused: not an Excel workbook", {name: [f"cannot open it: {error}"]}
        ) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise InvalidInput(
            f"{name} refused",
            {name: [f"unpacks to {unpacked // 2**20} MiB; at most "
                    f"{MAX_UNPACKED_BYTES // 2**20} MiB are read"]},
        )  # fmt: skip


def _xlsx_rows(data, name):
    """The first sheet's rows; openpyxl reads the workbook's XML through defusedxml."""
    import zipfile

    from openpyxl import load_workbook

    _check_unpacked_size(data, name)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise InvalidInput(
            f"{name} refused: not an Excel workbook", {name: [f"cannot open it: {error}"]}
        ) from None
    try:
        sheet = book.worksheets[0]
        for line, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            if line > MAX_ROWS:
                raise InvalidInput(f"{name} refused", {name: [f"more than {MAX_ROWS} rows"]})
            cells = list(cells)
            while cells and cells[-1] is None:
                cells.pop()
            if any(_plain(cell) for cell in cells):
                yield line, cells
    finally:
        book.close()


def read_rows(path, kind, context, name=None):
    """Every row of a file as model values, checked; refuses the file naming each bad row
    with its line and field. Returns a list of (line, values)."""
    name = name or os.path.basename(path)
    columns = columns_of(kind)
    unit, rows = read_cells(path, name)
    if not rows:
        raise InvalidInput(f"{name} refused: no rows", {name: ["the file is empty"]})
    (header_line, header), body = rows[0], rows[1:]
    mapping = _map_header(name, unit, header_line, header, columns)

    parsed, problems, codes = [], {}, []
    for line, cells in body:
        where = f"{name} {unit} {line}"
        if len(cells) > len(mapping) and any(_plain(cell) for cell in cells[len(mapping) :]):
            problems[where] = [_field_count_problem(len(cells), len(mapping), unit)]
            continue
        if unit == "line" and len(cells) < len(mapping):
            problems[where] = [f"too few fields ({len(cells)} fields for {len(mapping)} columns)"]
            continue
        values, row_problems = _row(mapping, cells, columns, context)
        if row_problems:
            problems[where] = row_problems
        parsed.append((line, values))
        codes.append((values.get("code"), line))

    _note_repeated(problems, codes, name, unit)
    if problems:
        raise InvalidInput(f"{name} refused, nothing imported", _in_line_order(problems))
    if not parsed:
        raise InvalidInput(f"{name} refused: no rows", {name: ["no rows below the header"]})
    return parsed


def _map_header(name, unit, line, header, columns):
    """The column of each header cell; refuses unknown, repeated and missing columns."""
    index = _header_index(columns)
    mapping, unknown = [], []
    for cell in header:
        column = index.get(_header_key(cell))
        if column is None and _plain(cell):
            unknown.append(_plain(cell))
        mapping.append(column)
    fields = [column.field for column in mapping if column is not None]
    repeated = sorted({field for field in fields if fields.count(field) > 1})
    missing = [c.field for c in columns if c.required and c.field not in fields]

    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)}")
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise InvalidInput(f"{name} refused, nothing imported", {f"{name} {unit} {line}": problems})
    return mapping


def _field_count_problem(found, expected, unit):
    if unit == "line":
        return (
            "too many fields: a number like 1,200 must be written 1200 or quoted "
            f"({found} fields for {expected} columns)"
        )
    return f"cells beyond the last column ({found} cells for {expected} columns)"


def _row(mapping, cells, columns, context):
    """One row's values by model attribute, and its problems as "field: what"."""
    given = {}
    for column, cell in zip(mapping, cells, strict=False):
        if column is not None:
            given[column.field] = cell
    values, problems = {}, []
    for column in columns:
        cell = given.get(column.field)
        if column.field in ("lat", "lon", "street_code"):
            continue
        if _plain(cell) == "" and not column.required:
            if column.stored:
                values[column.target] = column.default
            continue
        try:
            value = column.read(cell)
        except ValueError as error:
            problems.append(f"{column.field} {error}")
            continue
        if column.stored:
            values[column.target] = value

    try:
        values["lat"], values["lon"] = coordinates(given.get("lat"), given.get("lon"), context)
    except ValueError as error:
        problems.append(f"lat/lon {error}")
    try:
        values["street_code"] = street(given.get("street_code"), context)
    except ValueError as error:
        problems.append(f"street_code {error}")
    if values.get("hot_holding") and values.get("chilled"):
        problems.append("chilled a kitchen delivers hot or chilled, not both")
    return values, problems


def street(value, context):
    """A street or town of the region by its 9-digit code, or none."""
    found = _plain(value)
    if not found:
        return None
    if context.streets and found not in context.streets:
        raise ValueError(f"{found!r} is no street or town of the region")
    if len(found) > 12 or not found.isdigit():
        raise ValueError(f"must be a street or town code such as 330211001, got {value!r}")
    return found


def coordinates(lat_value, lon_value, context):
    """WGS-84 latitude and longitude of a place in or near the region, converted from the
    file's coordinate system."""
    try:
        lat, lon = number(lat_value), number(lon_value)
    except ValueError:
        raise ValueError("must be numbers") from None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError("must be finite numbers")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        hint = "; swapped latitude and longitude?" if -90 <= lon <= 90 else ""
        raise ValueError(f"are outside the world ({lat}, {lon}){hint}")

    lat, lon = to_wgs84(lat, lon, context.coords)
    outside = km_outside(context.boundary, lat, lon)
    if outside > context.max_km_outside:
        message = f"({lat:.6f}, {lon:.6f}) lie {outside:.0f} km outside the region"
        if -90 <= lon <= 90:
            swapped = to_wgs84(lon, lat, context.coords)
            if km_outside(context.boundary, *swapped) <= context.max_km_outside:
                message += "; swapped latitude and longitude? the other way round it is inside"
        raise ValueError(message)
    return round(lat, 7), round(lon, 7)


def to_wgs84(lat, lon, system):
    """WGS-84 from GCJ-02 or BD-09, by the coordTransform package's forward formulas,
    inverted by fixed-point refinement (its own inverse is off by metres)."""
    import coordTransform

    if system == "wgs84" or coordTransform.out_of_china(lon, lat):
        return lat, lon
    forward = {"gcj02": coordTransform.wgs84_to_gcj02, "bd09": coordTransform.wgs84_to_bd09}
    back = {"gcj02": coordTransform.gcj02_to_wgs84, "bd09": coordTransform.bd09_to_wgs84}
    wlon, wlat = back[system](lon, lat)
    for _ in range(10):
        glon, glat = forward[system](wlon, wlat)
        if abs(glon - lon) < CONVERSION_TOLERANCE and abs(glat - lat) < CONVERSION_TOLERANCE:
            break
        wlon -= glon - lon
        wlat -= glat - lat
    return wlat, wlon


def km_outside(boundary, lat, lon):
    """Great-circle km from a place to the nearest point of the boundary; 0 inside."""
    from shapely.ops import nearest_points

    place = Point(lon, lat)
    if boundary.covers(place):
        return 0.0
    nearest = nearest_points(boundary, place)[0]
    p1, p2 = math.radians(lat), math.radians(nearest.y)
    dl = math.radians(nearest.x - lon)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def repeats(coded_lines):
    """(code, first line, later line) for each code seen again on a later line."""
    first = {}
    for code, line in coded_lines:
        if code is None:
            continue
        if code in first:
            yield code, first[code], line
        else:
            first[code] = line


def _note_repeated(problems, coded_lines, name, unit):
    """Note each code seen on an earlier line, under the later line, naming both."""
    for code, first, line in repeats(coded_lines):
        where = f"{name} {unit} {line}"
        problems.setdefault(where, []).append(f"code {code} on {unit}s {first} and {line}")


def _in_line_order(problems):
    def line_of(key):
        tail = key.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    return dict(sorted(problems.items(), key=lambda item: line_of(item[0])))


# Storing and exporting


def store(kind, rows):
    """Create or bring up to date the rows of one kind, matched by code; returns counts.
    The caller commits (or rolls back) the whole file as one."""
    model = TABLES[kind][0]
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    existing = {row.code: row for row in db.session.scalars(select(model))}
    for _line, values in rows:
        row = existing.get(values["code"])
        if row is None and kind == "suppliers":
            # A new supplier has no results or inspections yet: its rating gives its colour.
            values = {**values, "risk_colour": start_colour(values["rating"])}
        upsert(model, values, counts, row)
    db.session.flush()
    if kind == "suppliers" and counts["updated"]:
        from app.types import utcnow

        # A rating changed: the live colour follows it (results and inspections kept).
        refresh_live_colours(at=utcnow())
    return counts


def upsert(model, values, counts, row):
    """Create a row from values, or bring `row` up to date; counts what happened."""
    if row is None:
        db.session.add(model(**values))
        counts["created"] += 1
        return
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    counts["updated" if changed else "unchanged"] += 1


def import_file(path, kind, context, name=None):
    """Read, check and store one file in the caller's transaction; returns the counts."""
    rows = read_rows(path, kind, context, name)
    return {"kind": kind, "rows": len(rows), **store(kind, rows)}


def export_rows(kind):
    """Header (English field names) and rows of every record of a kind, by code."""
    model, columns = TABLES[kind]
    records = db.session.scalars(select(model).order_by(model.code))
    header = [column.field for column in columns]
    rows = [[export_value(getattr(r, c.target)) for c in columns] for r in records]
    return header, rows


# A cell starting with one of these runs as a formula when a spreadsheet opens the file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def export_value(value):
    """A value as a spreadsheet cell that shows as written and never runs as a formula."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value  # shown as text, and read back without the quote
    return "" if value is None else value


def export_file(path, kind, language="zh"):
    """Write every record of a kind to a .csv (UTF-8 with BOM, which Excel opens as
    Unicode) or .xlsx file, with Chinese headers unless told English; returns the count.
    The file is written whole or not at all."""
    from app.files import replace_file

    columns = columns_of(kind)
    header, rows = export_rows(kind)
    if language == "zh":
        header = [column.header for column in columns]
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".csv", ".xlsx"):
        raise InvalidInput("export refused", {"file": ["name a .csv or .xlsx file"]})

    data = _xlsx_bytes(header, rows) if suffix == ".xlsx" else _csv_bytes(header, rows)
    replace_file(path, data)
    return len(rows)


def _csv_bytes(header, rows):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")


def _xlsx_bytes(header, rows):
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def column_table(kind):
    """The column table as Markdown rows, for the README and the import page."""
    lines = ["| field | 中文表头 | unit | required |", "|---|---|---|---|"]
    for column in columns_of(kind):
        names = " / ".join((column.header, *column.aliases))
        required = "yes" if column.required else f"no (default {column.default})"
        if column.default is None and not column.required:
            required = "no"
        lines.append(f"| `{column.field}` | {names} | {column.unit} | {required} |")
    return "\n".join(lines)


# Measured travel times: a third kind of file, rows naming a supplier and a point by code.

TRAVEL_COLUMNS = (
    Column("supplier", "保供单位编码", "supplier code", True, text(40)),
    Column("demand_point", "需求点编码", "demand point code", True, text(40)),
    Column("minutes", "车程分钟", "minutes on the road", True, None),
    Column("source", "来源", "where the figure comes from", False, text(200, required=False)),
)
MAX_MINUTES = 24 * 60


def minutes(value):
    found = number(value)
    if not (math.isfinite(found) and 0 <= found <= MAX_MINUTES):
        raise ValueError(f"must be from 0 to {MAX_MINUTES} minutes, got {value!r}")
    return found


def import_travel_times(path, name=None):
    """Measured minutes from suppliers to demand points (from a routing engine or a
    survey), replacing the estimate for those pairs; all or nothing, every bad row named.
    A pair given again replaces its earlier figure."""
    from app.supply.models import TravelTime

    name = name or os.path.basename(path)
    unit, rows = read_cells(path, name)
    if not rows:
        raise InvalidInput(f"{name} refused: no rows", {name: ["the file is empty"]})
    (header_line, header), body = rows[0], rows[1:]
    mapping = _map_header(name, unit, header_line, header, TRAVEL_COLUMNS)
    suppliers = dict(db.session.execute(select(Supplier.code, Supplier.id)).all())
    points = dict(db.session.execute(select(DemandPoint.code, DemandPoint.id)).all())

    parsed, problems, seen = {}, {}, {}
    for line, cells in body:
        where = f"{name} {unit} {line}"
        given = {c.field: cell for c, cell in zip(mapping, cells, strict=False) if c is not None}
        found = _travel_row(given, suppliers, points)
        if isinstance(found, list):
            problems[where] = found
            continue
        pair = found[:2]
        if pair in seen:
            problems[where] = [f"pair given on {unit}s {seen[pair]} and {line}"]
            continue
        seen[pair] = line
        parsed[pair] = found[2:]
    if problems:
        raise InvalidInput(f"{name} refused, nothing imported", _in_line_order(problems))

    existing = {
        (row.supplier_id, row.demand_point_id): row
        for row in db.session.scalars(select(TravelTime))
    }
    for (supplier_id, point_id), (value, source) in parsed.items():
        row = existing.get((supplier_id, point_id))
        if row is None:
            db.session.add(TravelTime(supplier_id=supplier_id, demand_point_id=point_id,
                                      minutes=value, source=source))  # fmt: skip
        else:
            row.minutes, row.source = value, source
    db.session.flush()
    return {"kind": "travel_times", "rows": len(parsed)}


def _travel_row(given, suppliers, points):
    """(supplier id, point id, minutes, source), or the row's problems."""
    problems, values = [], {}
    for column in TRAVEL_COLUMNS:
        read = minutes if column.field == "minutes" else column.read
        try:
            values[column.field] = read(given.get(column.field))
        except ValueError as error:
            problems.append(f"{column.field} {error}")
    if values.get("supplier") and values["supplier"] not in suppliers:
        problems.append(f"supplier {values['supplier']!r} is no known supplier")
    if values.get("demand_point") and values["demand_point"] not in points:
        problems.append(f"demand_point {values['demand_point']!r} is no known demand point")
    if problems:
        return problems
    return (suppliers[values["supplier"]], points[values["demand_point"]], values["minutes"],
            values.get("source"))  # fmt: skip
