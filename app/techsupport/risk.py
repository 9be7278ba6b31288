"""The supplier risk colour (风险色): green, yellow, orange or red, from the supplier's
rating, its test results and its inspection findings.

The bureau names a four-colour index for caterers but no published Ningbo rule was found,
so this rule is ours:

1. The yearly rating gives the start: A green, B yellow, C orange.
2. The latest inspection of the last 90 days: with only minor findings it raises the
   colour one step, never beyond orange; with a serious finding (or not passed) it raises
   it to at least orange. A later clean inspection replaces an earlier one's findings.
3. A failed result (rapid or lab) in the last 30 days raises it to at least orange. A
   passed re-inspection or re-test does not erase it: the failure stays for 30 days.
4. A supplier suspended now is red.

Scope: real results, inspections and suspensions count everywhere; a drill's count only
within that drill's incident, so a drill never colours a supplier outside itself. The
supplier's own row keeps the live colour (`Supplier.risk_colour`), written whenever a real
result, inspection, suspension, reinstatement or rating change happens, and refreshed by
the relay as the windows pass; an incident's allocation computes its own colours.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select

from app.extensions import db
from app.incidents.models import Incident
from app.supply.models import RISK_COLOURS, Supplier, SupplierSuspension
from app.techsupport.models import Inspection, RapidTest
from app.types import local_iso

log = logging.getLogger(__name__)

START_BY_RATING = {"A": "green", "B": "yellow", "C": "orange"}
FAILED_RESULT_WINDOW = timedelta(days=30)
INSPECTION_WINDOW = timedelta(days=90)
ORANGE = RISK_COLOURS.index("orange")
RED = RISK_COLOURS.index("red")


@dataclass
class Risk:
    """A supplier's colour with the reasons, in the order the rule applied them."""

    colour: str
    reasons: list = field(default_factory=list)


def start_colour(rating):
    """The colour the rating alone gives; an unknown rating counts as a C."""
    return START_BY_RATING.get(rating, "orange")


def _in_scope(query, model, incident):
    """Real rows everywhere; a drill's own rows only within that drill."""
    real = or_(model.incident_id.is_(None), Incident.drill.is_(False))
    query = query.outerjoin(Incident, Incident.id == model.incident_id)
    if incident is not None and incident.drill:
        return query.where(or_(real, model.incident_id == incident.id))
    return query.where(real)


def _suspensions(incident, at):
    query = select(SupplierSuspension).where(
        SupplierSuspension.started_at <= at,
        or_(SupplierSuspension.lifted_at.is_(None), SupplierSuspension.lifted_at > at),
    )
    if incident is not None and incident.drill:
        return query.where(
            or_(SupplierSuspension.drill.is_(False), SupplierSuspension.incident_id == incident.id)
        )
    return query.where(SupplierSuspension.drill.is_(False))


def evidence(incident, at, supplier_ids=None):
    """What the rule reads, by supplier: failed results of the last 30 days, the latest
    inspection of the last 90 days, and suspensions in force at `at`. Three queries,
    whatever the number of suppliers; `supplier_ids` narrows them when it is short."""
    narrow = supplier_ids is not None and len(supplier_ids) <= 500

    failed = _in_scope(select(RapidTest), RapidTest, incident).where(
        RapidTest.passed.is_(False),
        RapidTest.tested_at > at - FAILED_RESULT_WINDOW,
        RapidTest.tested_at <= at,
    )
    inspections = _in_scope(select(Inspection), Inspection, incident).where(
        Inspection.inspected_at > at - INSPECTION_WINDOW, Inspection.inspected_at <= at
    )
    suspended = _suspensions(incident, at)
    if narrow:
        failed = failed.where(RapidTest.supplier_id.in_(supplier_ids))
        inspections = inspections.where(Inspection.supplier_id.in_(supplier_ids))
        suspended = suspended.where(SupplierSuspension.supplier_id.in_(supplier_ids))

    found = {"failed": {}, "inspection": {}, "suspension": {}}
    for test in db.session.scalars(failed.order_by(RapidTest.tested_at, RapidTest.id)):
        found["failed"].setdefault(test.supplier_id, []).append(test)
    for row in db.session.scalars(inspections.order_by(Inspection.inspected_at, Inspection.id)):
        found["inspection"][row.supplier_id] = row  # the latest wins
    for row in db.session.scalars(suspended.order_by(SupplierSuspension.started_at)):
        found["suspension"].setdefault(row.supplier_id, row)
    return found


def apply_rule(rating, failed=(), inspection=None, suspension=None):
    """The colour and reasons for one supplier from its evidence (see the module text)."""
    colour = start_colour(rating)
    reasons = [f"rating {rating}: starts {colour}"]
    level = RISK_COLOURS.index(colour)

    if inspection is not None:
        when = local_iso(inspection.inspected_at)
        if inspection.serious_findings or not inspection.passed:
            if level < ORANGE:
                level = ORANGE
            reasons.append(
                f"inspection {when}: {inspection.serious_findings} serious finding(s), "
                "at least orange"
            )
        elif inspection.minor_findings:
            if level < ORANGE:
                level += 1
            reasons.append(
                f"inspection {when}: {inspection.minor_findings} minor finding(s), one step "
                "up, not beyond orange"
            )

    if failed:
        last = failed[-1]
        level = max(level, ORANGE)
        reasons.append(
            f"failed {last.kind} test {local_iso(last.tested_at)}: {last.analyte} "
            f"{last.value:g} {last.unit} > {last.limit:g} {last.unit}"
            + (f" ({len(failed)} failed in 30 days)" if len(failed) > 1 else "")
            + ", at least orange"
        )

    if suspension is not None:
        level = RED
        reasons.append(f"suspended since {local_iso(suspension.started_at)}: red")
    return Risk(RISK_COLOURS[level], reasons)


def risk_colours(suppliers, incident=None, *, at):
    """Colour and reasons of each supplier (by id) at `at`, in the scope of `incident`
    (None: the live colour, real records only)."""
    suppliers = list(suppliers)
    found = evidence(incident, at, [s.id for s in suppliers])
    return {
        s.id: apply_rule(
            s.rating,
            found["failed"].get(s.id, ()),
            found["inspection"].get(s.id),
            found["suspension"].get(s.id),
        )
        for s in suppliers
    }


def risk_colour(supplier, incident=None, *, at):
    """One supplier's colour and reasons at `at`, in the scope of `incident`."""
    return risk_colours([supplier], incident, at=at)[supplier.id]


def refresh_live_colours(suppliers=None, *, at):
    """Write the live colour onto each supplier row (every supplier when none are given);
    returns the suppliers whose colour changed."""
    if suppliers is None:
        suppliers = db.session.scalars(select(Supplier)).all()
    changed = []
    for supplier_id, risk in risk_colours(suppliers, None, at=at).items():
        supplier = db.session.get(Supplier, supplier_id)
        if supplier.risk_colour != risk.colour:
            log.info("supplier %s: risk %s -> %s", supplier.code, supplier.risk_colour,
                     risk.colour)  # fmt: skip
            supplier.risk_colour = risk.colour
            changed.append(supplier)
    db.session.flush()
    return changed


def touches_live(incident):
    """Whether a record made in `incident` is a real one, so the live colour may change."""
    return incident is None or not incident.drill
