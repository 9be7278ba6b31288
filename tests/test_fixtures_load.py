"""The region pack loads, loads again without change, and a bad file is refused whole."""

import shutil

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.extensions import db
from app.fixtures import DEFAULT_REGION, load_all
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


def test_a_thousands_separator_is_refused_not_read_as_a_decimal(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "suppliers.csv"
    _replace_line(csv_path, 2, lambda line: line.replace(",2800,3000,", ',"2,800",3000,', 1))

    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region))

    assert "2,800" in refused.value.errors["suppliers.csv line 2"][0]
    assert db.session.scalar(select(func.count(Supplier.id))) == 0


def test_every_bad_row_is_reported(app, tmp_path):
    region = _copy_region(tmp_path)
    csv_path = region / "demand_points.csv"
    _replace_line(csv_path, 3, lambda line: line.replace(",shelter,", ",bunker,", 1))
    _replace_line(csv_path, 4, lambda line: line.replace(",1500,", ",-1,", 1))

    with pytest.raises(InvalidInput) as refused:
        load_all(region_dir=str(region))

    assert set(refused.value.errors) == {"demand_points.csv line 3", "demand_points.csv line 4"}
