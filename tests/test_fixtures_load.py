"""The region pack loads, loads again without change, and a bad file is refused whole."""

import csv
import io
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.extensions import db
from app.fixtures import DEFAULT_PLAN, DEFAULT_REGION, load_all
from app.organisation.models import Person
from app.supply.models import Supplier


def _copy_region(tmp_path):
    target = tmp_path / "region"
    shutil.copytree(DEFAULT_REGION, target)
    return target


def _replace_line(path, line_number, transform):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line_number - 1] = transform(lines[line_number - 1])
    path.write_text("".join(lines), encoding="utf-8")


def test_loading_twice_changes_nothing(app):
    first = load_all()
    second = load_all()

    assert first["suppliers"]["created"] >= 60
    assert first["demand_points"]["created"] >= 20
    assert second["suppliers"] == {"created": 0, "updated": 0, "unchanged": 68}
    assert second["plan"]["outcome"] == "unchanged"


def test_names_with_quotes_and_brackets_load_literally(app):
    load_all()

    names = set(db.session.scalars(select(Supplier.name)))

    assert '"老街坊"<骆驼>快餐店' in names
    assert "Tom's 餐饮 & 配送" in names


def test_swapped_coordinates_are_refused_with_the_line(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"

    def swap(line):
        cells = line.split(",")
        cells[4], cells[5] = cells[5], cells[4]
        return ",".join(cells)

    _replace_line(csv_path, 5, swap)

    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region))

    assert "suppliers.csv line 5" in refused.value.errors
    assert "swapped" in refused.value.errors["suppliers.csv line 5"][0]
    assert db.session.scalar(select(func.count(Supplier.id))) == 0


def test_a_quoted_thousands_separator_is_read_as_thousands_not_as_a_decimal(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    _replace_line(csv_path, 2, lambda line: line.replace(",2800,3000,", ',"2,800",3000,', 1))

    load_all(region_dir=str(region))

    first = db.session.scalar(select(Supplier).order_by(Supplier.code))
    assert first.breakfast_capacity == 2800


@pytest.mark.parametrize("written", ["2,80", "2.8", "2,8000", "2 800"])
def test_a_number_that_is_not_a_whole_count_is_refused(app, tmp_path, written):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    _replace_line(csv_path, 2, lambda line: line.replace(",2800,3000,", f',"{written}",3000,', 1))

    refusal = _refusal(region)

    assert "breakfast must be a whole number" in refusal.errors["suppliers.csv line 2"][0]
    assert _count_suppliers() == 0


def test_every_bad_row_is_reported(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "demand_points.csv"
    _replace_line(csv_path, 3, lambda line: line.replace(",shelter,", ",bunker,", 1))
    _replace_line(csv_path, 4, lambda line: line.replace(",1500,", ",-1,", 1))

    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region))

    assert set(refused.value.errors) == {"demand_points.csv line 3", "demand_points.csv line 4"}


def _count_suppliers():
    return db.session.scalar(select(func.count(Supplier.id)))


def _line_of(path, text):
    """The number of the first line of a file that contains `text`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


def _refusal(region, **kwargs):
    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region), **kwargs)
    return refused.value


@pytest.mark.parametrize(
    "file_name, code", [("suppliers.csv", "ZH-SUP-001"), ("demand_points.csv", "ZH-SH-01")]
)
def test_a_repeated_code_is_refused_naming_both_lines(app, tmp_path, file_name, code):
    region = _copy_region(tmp_path)
    csv_path = region / file_name
    last = len(csv_path.read_text(encoding="utf-8").splitlines())
    _replace_line(csv_path, last, lambda line: code + line[line.index(",") :])

    refusal = _refusal(region)

    assert refusal.errors == {f"{file_name} line {last}": [f"code {code} on lines 2 and {last}"]}
    assert _count_suppliers() == 0


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_gbk_and_bom_files_give_the_same_names_as_utf8(app, tmp_path, encoding):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    original = csv_path.read_text(encoding="utf-8")
    csv_path.write_bytes(original.encode(encoding))

    load_all(region_dir=str(region))

    expected = {row["code"]: row["name"] for row in csv.DictReader(io.StringIO(original))}
    loaded = dict(db.session.execute(select(Supplier.code, Supplier.name)).all())
    assert loaded == expected
    assert "镇海甬港餐饮中央厨房" in loaded.values()


def test_a_file_in_neither_utf8_nor_gb18030_is_refused_naming_it(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    csv_path.write_bytes(csv_path.read_text(encoding="utf-8").encode("utf-16"))

    refusal = _refusal(region)

    assert "suppliers.csv" in str(refusal)
    assert list(refusal.errors) == ["suppliers.csv"]
    assert _count_suppliers() == 0


@pytest.mark.parametrize("keep_header", [False, True])
def test_a_file_without_rows_is_refused(app, tmp_path, keep_header):
    region = _copy_region(tmp_path)
    csv_path = region / "demand_points.csv"
    header = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)[0]
    csv_path.write_text(header if keep_header else "", encoding="utf-8")

    refusal = _refusal(region)

    assert str(refusal) == "demand_points.csv refused: no rows"
    assert _count_suppliers() == 0


def _rewrite_columns(csv_path, change):
    """Rewrite every row of a CSV file through `change(row)`, a list of cells."""
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    output = io.StringIO()
    csv.writer(output, lineterminator="\n").writerows(change(row) for row in rows)
    csv_path.write_text(output.getvalue(), encoding="utf-8")


def test_missing_columns_are_named_in_one_message(app, tmp_path):
    """Checked on the header, not as one complaint per row."""
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    header = csv_path.read_text(encoding="utf-8").splitlines()[0].split(",")
    dropped = [header.index("rating"), header.index("lunch")]
    _rewrite_columns(csv_path, lambda row: [c for i, c in enumerate(row) if i not in dropped])

    refusal = _refusal(region)

    assert refusal.errors == {"suppliers.csv line 1": ["missing columns: lunch, rating"]}
    assert _count_suppliers() == 0


def test_unknown_columns_are_refused_naming_them(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    _rewrite_columns(csv_path, lambda row: [*row, "notes" if row[0] == "code" else "ok"])

    refusal = _refusal(region)

    assert refusal.errors == {"suppliers.csv line 1": ["unknown columns: notes"]}
    assert _count_suppliers() == 0


def test_an_unquoted_thousands_separator_is_refused_as_too_many_fields(app, tmp_path):
    """An unquoted 1,200 shifts every later field; the message must say why, not blame them."""
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    _replace_line(csv_path, 2, lambda line: line.replace(",2800,3000,", ",2,800,3000,", 1))

    refusal = _refusal(region)

    [message] = refusal.errors["suppliers.csv line 2"]
    assert message.startswith("too many fields: a number like 1,200 must be written 1200 or quoted")
    assert _count_suppliers() == 0


def test_a_row_with_too_few_fields_is_refused_with_its_line(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "demand_points.csv"
    _replace_line(csv_path, 3, lambda line: line.rsplit(",", 2)[0] + "\n")

    refusal = _refusal(region)

    assert refusal.errors["demand_points.csv line 3"][0].startswith("too few fields")


@pytest.mark.parametrize("lat, lon", [("nan", "nan"), ("inf", "121.7"), ("29.9", "-1e400")])
def test_non_finite_coordinates_are_refused(app, tmp_path, lat, lon):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"

    def replace(line):
        cells = line.split(",")
        cells[4], cells[5] = lat, lon
        return ",".join(cells)

    _replace_line(csv_path, 4, replace)

    refusal = _refusal(region)

    assert refusal.errors == {"suppliers.csv line 4": ["lat/lon must be finite numbers"]}
    assert _count_suppliers() == 0


def test_a_person_with_an_unknown_role_is_refused(app, tmp_path):
    region = _copy_region(tmp_path)
    yaml_path = region / "departments.yaml"
    line = _line_of(yaml_path, "code: gov-liaison-1")
    _replace_line(yaml_path, line + 2, lambda text: text.replace("liaison", "chef"))

    refusal = _refusal(region)

    assert "role must be one of" in refusal.errors[f"departments.yaml line {line}"][0]
    assert _count_suppliers() == 0


@pytest.mark.parametrize(
    "kind, first, second",
    [
        ("person", "gov-commander-1", "gov-liaison-1"),
        ("department", "government", "market_supervision"),
    ],
)
def test_a_repeated_department_or_person_code_is_refused(app, tmp_path, kind, first, second):
    region = _copy_region(tmp_path)
    yaml_path = region / "departments.yaml"
    first_line = _line_of(yaml_path, f"code: {first}")
    second_line = _line_of(yaml_path, f"code: {second}")
    _replace_line(yaml_path, second_line, lambda text: text.replace(second, first))

    refusal = _refusal(region)

    message = f"{kind} code {first} on lines {first_line} and {second_line}"
    assert message in refusal.errors[f"departments.yaml line {second_line}"]
    assert _count_suppliers() == 0


def test_a_yaml_syntax_error_is_refused_naming_the_file(app, tmp_path):
    region = _copy_region(tmp_path)
    yaml_path = region / "departments.yaml"
    line = _line_of(yaml_path, "name: 陈国栋")
    _replace_line(yaml_path, line, lambda text: text.replace("陈国栋", "陈国栋: 指挥长"))

    refusal = _refusal(region)

    assert str(refusal) == "departments.yaml refused: not valid YAML"
    assert list(refusal.errors) == [f"departments.yaml line {line}"]
    assert _count_suppliers() == 0


def _rename_a_supplier_and_repeat_a_code(region):
    csv_path = region / "suppliers.csv"
    _replace_line(csv_path, 2, lambda line: line.replace("镇海", "改名", 1))
    _replace_line(csv_path, 3, lambda line: "ZH-SUP-001" + line[line.index(",") :])


def _rename_a_person_and_give_another_an_unknown_role(region):
    yaml_path = region / "departments.yaml"
    name_line, role_line = _line_of(yaml_path, "陈国栋"), _line_of(yaml_path, "role: staff")
    _replace_line(yaml_path, name_line, lambda line: line.replace("陈国栋", "改名"))
    _replace_line(yaml_path, role_line, lambda line: line.replace("staff", "chef"))


@pytest.mark.parametrize(
    "spoil",
    [_rename_a_supplier_and_repeat_a_code, _rename_a_person_and_give_another_an_unknown_role],
)
def test_a_refused_file_after_a_good_load_changes_nothing(app, tmp_path, spoil):
    load_all()
    suppliers = dict(db.session.execute(select(Supplier.code, Supplier.name)).all())
    people = dict(db.session.execute(select(Person.code, Person.name)).all())
    region = _copy_region(tmp_path)
    spoil(region)

    _refusal(region)

    assert dict(db.session.execute(select(Supplier.code, Supplier.name)).all()) == suppliers
    assert dict(db.session.execute(select(Person.code, Person.name)).all()) == people


def test_a_plan_refused_after_the_rows_were_staged_leaves_nothing_behind(app, tmp_path):
    """The plan is checked against the departments inside the transaction: it must roll back."""
    region = _copy_region(tmp_path)
    plan_path = tmp_path / "plan.yaml"
    plan = Path(DEFAULT_PLAN).read_text(encoding="utf-8")
    duty_department = "\n    department: government\n"
    assert duty_department in plan
    plan_path.write_text(plan.replace(duty_department, "\n    department: nowhere\n", 1))

    refusal = _refusal(region, plan_path=str(plan_path))

    assert refusal.errors["duties[0].department"] == ["no department nowhere"]
    assert _count_suppliers() == 0
    assert db.session.scalar(select(func.count(Person.id))) == 0


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("region.yaml", ""),
        ("region.yaml", "code: '330211'\nname: x\n"),
        ("boundary.geojson", '{"type": "Polygon", "coordinates": [[1, 2]]}'),
        ("boundary.geojson", '{"type": "Point", "coordinates": [121.6, 29.9]}'),
    ],
)
def test_a_broken_region_description_is_refused_naming_the_file(app, tmp_path, name, content):
    region = _copy_region(tmp_path)
    (region / name).write_text(content, encoding="utf-8")

    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region))

    assert name in str(refused.value) + str(refused.value.errors)
