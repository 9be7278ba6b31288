"""The drill report explains every unmet meal with the allocation's own reason."""

from datetime import timedelta

from app.drills.report import shortfall
from app.extensions import db
from app.supply.services import allocate_meal, demand_point_by_code, open_point
from tests.helpers import T0, incident


def test_unmet_halal_meals_carry_the_allocation_reason(region):
    found = incident()
    open_point(
        found, demand_point_by_code("ZH-SH-09"), headcount=6000, at=T0, diets={"halal": 6000}
    )
    run, _ = allocate_meal(found, "lunch", T0 + timedelta(hours=4), T0)
    db.session.commit()
    unallocated = sum(entry["meals"] for entry in run.shortfall)

    rows = shortfall(found)

    assert unallocated > 0
    assert len(rows) == 1 and rows[0]["by_diet"] == {"halal": 6000}
    assert rows[0]["reason"] == "halal: capacity in reach exhausted"
    assert rows[0]["serve_at"].endswith("Z")
