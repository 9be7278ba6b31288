"""Importing suppliers and demand points from the files users hold: CSV in either Chinese
encoding, Excel workbooks, Chinese headers, "1,200", GCJ-02 and BD-09, and every bad row
named while nothing is imported."""

import json

import coordTransform
import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.fixtures import FIXTURES
from app.supply.models import DemandPoint, Supplier

# A place in the old town of Zhenhai, in WGS-84.
LAT, LON = 29.9582, 121.7043
HEADER = "编码,名称,类型,街道代码,纬度,经度,容纳人数"


def _points():
    db.session.rollback()
    return {p.code: p for p in db.session.scalars(select(DemandPoint))}


@pytest.fixture
def run(app, region, tmp_path):
    """`flask supply import` on a file's bytes; returns (exit code, JSON or None, stderr)."""
    runner = app.test_cli_runner()

    def invoke(data, name="points.csv", kind="demand", *options):
        path = tmp_path / name
        path.write_bytes(data)
        result = runner.invoke(args=["supply", "import", str(path), "--kind", kind, *options])
        lines = result.stdout.splitlines()
        return result.exit_code, json.loads(lines[-1]) if lines else None, result.stderr

    return invoke


def _csv(*rows, header=HEADER):
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_each_encoding_users_save_in_gives_the_same_names(run, encoding):
    text = _csv(f"ZH-SH-90,镇海（招宝山）临时安置点,安置点,330211001,{LAT},{LON},800")

    code, answer, _ = run(text.encode(encoding))

    assert code == 0 and answer["created"] == 1
    assert _points()["ZH-SH-90"].name == "镇海（招宝山）临时安置点"


@pytest.mark.parametrize(("written", "read"), [("1,200", 1200), ("12,000", 12000), ("800", 800)])
def test_thousands_separators_are_read_as_thousands(run, written, read):
    code, _, _ = run(_csv(f'ZH-SH-90,点,shelter,,{LAT},{LON},"{written}"').encode())

    assert code == 0
    assert _points()["ZH-SH-90"].capacity == read


@pytest.mark.parametrize("written", ["1,20", "1.2", "1 200", "-5", "1e3", "lots"])
def test_a_count_that_is_not_whole_is_refused_with_its_line_and_field(run, written):
    code, _, stderr = run(_csv(f'ZH-SH-90,点,shelter,,{LAT},{LON},"{written}"').encode())

    assert code == 2
    assert "points.csv line 2" in stderr and "capacity must be" in stderr
    assert "ZH-SH-90" not in _points()


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_chinese_map_coordinates_are_stored_as_wgs84(run, system):
    forward = {"gcj02": coordTransform.wgs84_to_gcj02, "bd09": coordTransform.wgs84_to_bd09}
    lon, lat = forward[system](LON, LAT)
    assert abs(lon - LON) > 0.003  # about 500 m apart: a real shift to undo

    code, _, _ = run(_csv(f"ZH-SH-90,点,shelter,,{lat},{lon},10").encode(), "p.csv", "demand",
                     "--coords", system)  # fmt: skip

    point = _points()["ZH-SH-90"]
    assert code == 0
    assert point.lat == pytest.approx(LAT, abs=1e-6) and point.lon == pytest.approx(LON, abs=1e-6)


def test_swapped_latitude_and_longitude_are_named(run):
    code, _, stderr = run(_csv(f"ZH-SH-90,点,shelter,,{LON},{LAT},10").encode())

    assert code == 2 and "swapped" in stderr


def test_a_place_far_outside_the_district_is_refused_and_swapping_is_suggested_when_it_helps(
    app, run
):
    """Within the world both ways round: (29.96, 121.70) swapped is (121.70, ...) no more."""
    beijing = _csv("ZH-SH-90,点,shelter,,39.9,116.4,10")
    code, _, stderr = run(beijing.encode())

    assert code == 2 and "outside the region" in stderr and "swapped" not in stderr

    app.config["BAOGONG_MAX_KM_OUTSIDE"] = 2000.0
    assert run(beijing.encode())[0] == 0


def test_every_bad_row_is_named_and_nothing_is_imported(run):
    text = _csv(
        f"ZH-SH-90,好的,shelter,,{LAT},{LON},10",
        f"ZH-SH-91,,shelter,,{LAT},{LON},10",
        f"ZH-SH-92,类型错,camp,,{LAT},{LON},10",
        f"ZH-SH-93,街道错,shelter,330211999,{LAT},{LON},10",
        f"ZH-SH-90,重复,shelter,,{LAT},{LON},10",
    )

    code, _, stderr = run(text.encode())

    assert code == 2
    expected = [(3, "name must not be empty"), (4, "type must be one of"),
                (5, "no street or town"), (6, "code ZH-SH-90 on lines 2 and 6")]  # fmt: skip
    for line, says in expected:
        assert f"points.csv line {line}" in stderr and says in stderr
    assert not {"ZH-SH-90", "ZH-SH-91"} & set(_points())


def test_headers_in_english_or_chinese_in_any_order_with_units(run):
    text = _csv(
        f"{LON},{LAT},安置点,点,ZH-SH-90,10", header="经度(°),纬度(°),type,名称,code,容纳人数"
    )

    code, _, _ = run(text.encode())

    assert code == 0 and _points()["ZH-SH-90"].type == "shelter"


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("编码,名称,类型,纬度,经度", "missing columns: capacity"),
        (HEADER + ",备注", "unknown columns: 备注"),
        ("编码,名称,类型,纬度,经度,容纳人数,capacity", "repeated columns: capacity"),
    ],
)
def test_a_bad_header_is_refused_in_one_message(run, header, says):
    code, _, stderr = run(_csv(f"ZH-SH-90,点,shelter,{LAT},{LON},10", header=header).encode())

    assert code == 2 and says in stderr


def _workbook(path, rows):
    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)


def test_a_workbook_is_read_cell_by_cell_and_rows_are_named(run, tmp_path):
    good = ("ZH-SUP-900", "示例厨房", "中央厨房", None, LAT, LON, 1200, 1500.0, "1,400",
            "优秀", "绿", "是", None, None, None, None, None, None)  # fmt: skip
    bad = ("ZH-SUP-901", "坏厨房", "中央厨房", None, LAT, LON, 1.5, 10, 10,
           "A", "purple", "maybe", None, None, None, None, None, None)  # fmt: skip
    header = [c[0] for c in _supplier_header()]
    _workbook(tmp_path / "s.xlsx", [header, good])
    data = (tmp_path / "s.xlsx").read_bytes()
    _workbook(tmp_path / "bad.xlsx", [header, good, bad])

    code, answer, _ = run(data, "s.xlsx", "suppliers")
    refused, _, stderr = run((tmp_path / "bad.xlsx").read_bytes(), "bad.xlsx", "suppliers")

    supplier = db.session.scalar(select(Supplier).filter_by(code="ZH-SUP-900"))
    assert code == 0 and answer["created"] == 1
    assert (supplier.breakfast_capacity, supplier.lunch_capacity, supplier.dinner_capacity) == (
        1200, 1500, 1400)  # fmt: skip
    assert supplier.rating == "A" and supplier.halal is True
    assert refused == 2 and "bad.xlsx row 3" in stderr
    for field in ("breakfast", "risk_colour", "halal"):
        assert field in stderr
    assert db.session.scalar(select(func.count(Supplier.id)).filter_by(code="ZH-SUP-901")) == 0


def _supplier_header():
    from app.supply.imports import SUPPLIER_COLUMNS

    return [(c.header,) for c in SUPPLIER_COLUMNS]


def test_a_file_that_is_no_workbook_is_refused(run):
    code, _, stderr = run(b"PK\x03\x04 not really a zip", "s.xlsx", "suppliers")

    assert code == 2 and "not an Excel workbook" in stderr


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_an_export_imports_again_unchanged(app, run, tmp_path, suffix):
    path = tmp_path / f"out.{suffix}"
    runner = app.test_cli_runner()

    exported = runner.invoke(args=["supply", "export", str(path), "--kind", "suppliers"])
    code, answer, _ = run(path.read_bytes(), f"again.{suffix}", "suppliers")

    assert json.loads(exported.stdout)["rows"] == answer["rows"] == answer["unchanged"]
    if suffix == "xlsx":
        assert next(load_workbook(path).worksheets[0].iter_rows(values_only=True))[0] == "编码"


@pytest.mark.parametrize(
    ("name", "kind", "options"),
    [("suppliers.xlsx", "suppliers", ()), ("demand_points.csv", "demand", ("--coords", "gcj02"))],
)
def test_the_example_files_import(run, name, kind, options):
    with open(f"{FIXTURES}/examples/{name}", "rb") as handle:
        data = handle.read()

    code, answer, stderr = run(data, name, kind, *options)

    assert code == 0, stderr
    assert answer["created"] >= 3


def test_travel_times_load_and_replace_the_estimate(app, region, tmp_path):
    from datetime import timedelta

    from app.supply.services import allocate_meal
    from tests.helpers import T0, incident, open_shelters

    path = tmp_path / "times.csv"
    # 骆驼's canteen lies far west of the old town; say a new road brings it to the door.
    path.write_text("保供单位编码,需求点编码,车程分钟,来源\nZH-SUP-044,ZH-SH-01,0.5,survey\n",
                    encoding="gbk")  # fmt: skip
    result = app.test_cli_runner().invoke(args=["supply", "travel-times", str(path)])
    found = incident()
    open_shelters(found, {"ZH-SH-01": 100})

    _, tasks = allocate_meal(found, "lunch", T0 + timedelta(hours=4), T0)

    assert json.loads(result.stdout) == {"kind": "travel_times", "rows": 1}
    assert [(t.supplier.code, t.travel_minutes) for t in tasks] == [("ZH-SUP-044", 0.5)]


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("ZH-SUP-999,ZH-SH-01,5", "no known supplier"),
        ("ZH-SUP-001,ZH-SH-99,5", "no known demand point"),
        ("ZH-SUP-001,ZH-SH-01,-3", "minutes must be from 0"),
        ("ZH-SUP-001,ZH-SH-01,nan", "minutes must be from 0"),
    ],
)
def test_a_bad_travel_time_is_refused_naming_its_line(app, region, tmp_path, row, says):
    path = tmp_path / "times.csv"
    path.write_text(f"supplier,demand_point,minutes\nZH-SUP-001,ZH-SH-02,7\n{row}\n")

    result = app.test_cli_runner().invoke(args=["supply", "travel-times", str(path)])

    assert result.exit_code == 2
    assert "times.csv line 3" in result.stderr and says in result.stderr
    from app.supply.models import TravelTime

    assert db.session.scalar(select(func.count(TravelTime.id))) == 0


def test_a_workbook_that_unpacks_to_a_gigabyte_is_refused_unread(run, tmp_path):
    import zipfile

    path = tmp_path / "bomb.xlsx"
    chunk = b"A" * (1 << 20)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("xl/worksheets/sheet1.xml", "w") as member,
    ):
        for _ in range(200):
            member.write(chunk)

    code, _, stderr = run(path.read_bytes(), "bomb.xlsx", "demand")

    assert code == 2 and "unpacks to 200 MiB" in stderr


def test_a_file_in_two_encodings_is_refused(run):
    data = _csv(f"ZH-SH-90,测试,shelter,,{LAT},{LON},10").encode("utf-8")
    data += f"ZH-SH-91,测试乙,shelter,,{LAT},{LON},10\n".encode("gbk")

    code, _, stderr = run(data)

    assert code == 2 and "two encodings" in stderr
    assert "lines 1, 2 are UTF-8 and lines 3 GBK" in stderr
    assert not {"ZH-SH-90", "ZH-SH-91"} & set(_points())


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_name_like_a_formula_is_exported_as_text_and_read_back_unchanged(
    app, run, tmp_path, suffix
):
    formula = '=HYPERLINK("http://evil.example","c")'
    text = 'code,name,type,lat,lon,capacity\nZH-SH-90,"=HYPERLINK(""http://evil.example"",""c"")"'
    run(f"{text},shelter,{LAT},{LON},10\n".encode())
    path = tmp_path / f"out.{suffix}"

    app.test_cli_runner().invoke(args=["supply", "export", str(path), "--kind", "demand"])
    code, answer, _ = run(path.read_bytes(), f"again.{suffix}")

    if suffix == "xlsx":
        cells = [c for row in load_workbook(path).worksheets[0].iter_rows() for c in row]
        assert all(cell.data_type != "f" for cell in cells)
    else:
        assert f"'{formula}".replace('"', '""') in path.read_text(encoding="utf-8-sig")
    assert code == 0 and answer["unchanged"] == answer["rows"]
    assert _points()["ZH-SH-90"].name == formula


def test_a_kitchen_cannot_be_both_hot_and_chilled(run):
    header = "code,name,type,lat,lon,breakfast,lunch,dinner,rating,risk_colour,hot_holding,chilled"
    row = f"ZH-SUP-900,厨房,canteen,{LAT},{LON},1,1,1,A,green,是,是"

    code, _, stderr = run(f"{header}\n{row}\n".encode(), "s.csv", "suppliers")

    assert code == 2 and "hot or chilled, not both" in stderr
