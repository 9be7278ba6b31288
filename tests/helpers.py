"""Small builders shared by the service tests."""

from datetime import UTC, datetime

from app.drills.models import DrillRun
from app.extensions import db
from app.incidents.services import open_incident
from app.process.response import activate
from app.process.services import latest_plan
from app.supply.services import demand_point_by_code, open_point

T0 = datetime(2026, 9, 14, 0, 0, tzinfo=UTC)


def drill_run(at=T0):
    """A drill run whose simulated clock stands at `at`."""
    run = DrillRun(
        scenario="test",
        scenario_digest="0" * 64,
        sim_start=at,
        sim_end=at,
        sim_now=at,
        started_at=at,
    )
    db.session.add(run)
    db.session.flush()
    return run


def incident(level="II", drill=True, at=T0):
    """An activated supply-emergency incident on the shipped plan."""
    plan = latest_plan("zhenhai-catering-supply")
    run = drill_run(at) if drill else None
    found = open_incident(
        kind="supply_emergency", title="test incident", plan=plan, at=at, drill_run=run
    )
    activate(found, level, at=at, reason="test activation")
    db.session.commit()
    return found


def set_clock(found, at):
    """Move a drill incident's simulated clock."""
    db.session.get(DrillRun, found.drill_run_id).sim_now = at
    db.session.commit()


def open_shelters(found, headcounts, at=T0):
    for code, headcount in headcounts.items():
        open_point(found, demand_point_by_code(code), headcount=headcount, at=at)
    db.session.commit()


def make_user(role, department=None, supplier=None, password=None, username=None):
    """A committed user with `role` (department and supplier by code) and a fresh API token;
    returns (user, token)."""
    from app.accounts.services import create_user, issue_token

    global _users_made
    _users_made += 1
    user = create_user(
        username or f"test-{role}-{_users_made}",
        role,
        department_code=department,
        supplier_code=supplier,
        password=password,
    )
    _row, token = issue_token(user, "test")
    db.session.commit()
    return user, token


_users_made = 0


def bearer(token):
    """The headers of an API request made with `token`."""
    return {"Authorization": f"Bearer {token}"}


def csrf_token(page):
    """The CSRF token of the first form on a page."""
    import re

    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]


def sign_in(client, username, password):
    """Sign in on the login page as a person would; returns the response."""
    form = csrf_token(client.get("/login").get_data(as_text=True))
    data = {"csrf_token": form, "username": username, "password": password}
    return client.post("/login", data=data)


def first_assignment(found, department_code):
    """The first duty assignment of a department in an incident."""
    from sqlalchemy import select

    from app.duties.models import DutyAssignment

    return db.session.scalar(
        select(DutyAssignment)
        .join(DutyAssignment.department)
        .where(DutyAssignment.incident_id == found.id)
        .filter_by(code=department_code)
        .order_by(DutyAssignment.id)
        .limit(1)
    )
