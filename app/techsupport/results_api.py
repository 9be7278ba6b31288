"""Test results, lab requests, suspensions and the risk colour over the API.

Inspectors and the commander record results and lab requests; only the commander lifts a
suspension. Reading needs any signed-in user. The request boundary commits once.
"""

import logging

from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, MAX_ID, Blueprint, NoQuery, PageQuery, QueryInteger, StrictSchema
from app.clock.services import now
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.process.schemas import Figure, Whole
from app.supply.models import Batch, Supplier, SupplierSuspension
from app.supply.schemas import Code, Instant, Text
from app.techsupport import gate, results
from app.techsupport.models import (
    LAB_REQUEST_STATUSES,
    TEST_PURPOSES,
    Lab,
    LabRequest,
    RapidTest,
    RetainedSample,
)
from app.techsupport.results import clock_of
from app.techsupport.risk import risk_colour
from app.types import isoformat_utc, utcnow

log = logging.getLogger(__name__)

blp = Blueprint("results", __name__, url_prefix="/api", description="Test results and labs")

RECORDERS = ("inspector", "commander")
# A result stamped later than this ahead of the clock is a typing error.


def _id(**kwargs):
    return Whole(validate=validate.Range(1, MAX_ID), **kwargs)


class ResultSchema(StrictSchema):
    supplier = Code(40, required=True)
    incident_id = _id(load_default=None)
    batch_id = _id(load_default=None)
    sample_id = _id(load_default=None)
    analyte = Text(200, required=True)
    method = Text(200, required=True)
    value = Figure(required=True, validate=validate.Range(0, results.MAX_VALUE))
    limit = Figure(
        required=True, validate=validate.Range(0, results.MAX_VALUE, min_inclusive=False)
    )
    unit = Text(20, required=True)
    purpose = fields.String(load_default="routine", validate=validate.OneOf(TEST_PURPOSES))
    tested_at = Instant(load_default=None)
    note = Text(2000, load_default=None)


class ResultQuery(PageQuery):
    supplier = Code(40, load_default=None)
    incident = QueryInteger(load_default=None, validate=validate.Range(1, MAX_ID))
    failed = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})


class LabRequestSchema(StrictSchema):
    lab = Code(40, required=True)
    supplier = Code(40, required=True)
    incident_id = _id(load_default=None)
    sample_id = _id(load_default=None)
    analytes = fields.List(Text(200), required=True, validate=validate.Length(1, 50))
    purpose = fields.String(load_default="routine", validate=validate.OneOf(TEST_PURPOSES))
    note = Text(2000, load_default=None)


class LabRequestQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(LAB_REQUEST_STATUSES))
    late = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})
    incident = QueryInteger(load_default=None, validate=validate.Range(1, MAX_ID))


class LabResultSchema(StrictSchema):
    analyte = Text(200, required=True)
    method = Text(200, required=True)
    value = Figure(required=True, validate=validate.Range(0, results.MAX_VALUE))
    limit = Figure(
        required=True, validate=validate.Range(0, results.MAX_VALUE, min_inclusive=False)
    )
    unit = Text(20, required=True)
    note = Text(2000, load_default=None)


class LabReportSchema(StrictSchema):
    results = fields.List(
        fields.Nested(LabResultSchema), required=True, validate=validate.Length(1, 50)
    )
    tested_by = Text(100, load_default=None)
    tested_at = Instant(load_default=None)


class ReinstateSchema(StrictSchema):
    reason = Text(2000, required=True)


class SuspensionQuery(PageQuery):
    current = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})


class RiskQuery(StrictSchema):
    incident = QueryInteger(load_default=None, validate=validate.Range(1, MAX_ID))


def lab_request_row(request, at):
    return {
        "id": request.id,
        "lab": request.lab.code,
        "lab_name": request.lab.name,
        "supplier": request.supplier.code,
        "incident_id": request.incident_id,
        "sample_id": request.sample_id,
        "analytes": list(request.analytes),
        "purpose": request.purpose,
        "status": request.status,
        "requested_by": request.requested_by,
        "requested_at": isoformat_utc(request.requested_at),
        "expected_by": isoformat_utc(request.expected_by),
        "reported_at": isoformat_utc(request.reported_at),
        "late": results.is_late(request, at),
        "note": request.note,
    }


def suspension_row(suspension):
    return {
        "id": suspension.id,
        "supplier": suspension.supplier.code,
        "incident_id": suspension.incident_id,
        "drill": suspension.drill,
        "reason": suspension.reason,
        "rapid_test_id": suspension.rapid_test_id,
        "started_at": isoformat_utc(suspension.started_at),
        "lifted_at": isoformat_utc(suspension.lifted_at),
        "lifted_by": suspension.lifted_by,
        "lift_reason": suspension.lift_reason,
        "reinspection_id": suspension.reinspection_id,
        "retest_id": suspension.retest_id,
    }


def _supplier(code, field="supplier"):
    supplier = db.session.scalar(select(Supplier).filter_by(code=code))
    if supplier is None:
        raise InvalidInput(f"unknown {field}", {field: [f"no supplier {code!r}"]})
    return supplier


def _row(model, row_id, field):
    """A row named in a body: 422 naming the field when there is none."""
    if row_id is None:
        return None
    row = db.session.get(model, row_id)
    if row is None:
        raise InvalidInput(
            f"unknown {field}", {field: [f"no {field.removesuffix('_id')} {row_id}"]}
        )
    return row


def _incident(incident_id):
    """The incident a record is made in (None: outside any); a closed one takes none."""
    found = _row(Incident, incident_id, "incident_id")
    if found is not None and found.status == "closed":
        raise Conflict(f"incident {found.id} is closed")
    return found


def record_from_body(body, user):
    """Record a rapid test from a checked body (API or page); the caller commits."""
    supplier = _supplier(body["supplier"])
    incident = _incident(body.get("incident_id"))
    batch = _row(Batch, body.get("batch_id"), "batch_id")
    sample = _row(RetainedSample, body.get("sample_id"), "sample_id")
    return results.record_result(
        supplier=supplier,
        incident=incident,
        analyte=body["analyte"],
        method=body["method"],
        value=body["value"],
        limit=body["limit"],
        unit=body["unit"],
        tested_by=user.display_name or user.username,
        at=clock_of(incident, body.get("tested_at")),
        batch=batch,
        sample=sample,
        purpose=body.get("purpose", "routine"),
        note=body.get("note"),
    )


def _own_supplier_only():
    """A supplier user reads its own supplier's records only (they name inspectors and
    other suppliers); None for staff, who read all."""
    user = acting_user()
    if user.role != "supplier":
        return None
    if user.supplier_id is None:
        raise Forbidden(f"{user.username} acts for no supplier")
    return user.supplier_id


@blp.route("/rapid-tests")
class RapidTests(MethodView):
    @require_roles()
    @blp.arguments(ResultQuery, location="query")
    @blp.response(200)
    def get(self, query):
        """Results newest first; `failed=true` for the failed ones only."""
        supplier = _supplier(query["supplier"]) if query["supplier"] else None
        own = _own_supplier_only()
        if own is not None:
            if supplier is not None and supplier.id != own:
                raise Forbidden("a supplier user reads its own supplier's results only")
            supplier = db.session.get(Supplier, own)
        incident = None
        if query["incident"] is not None:
            incident = db.get_or_404(Incident, query["incident"])
        rows = results.tests_query(supplier=supplier, incident=incident, failed=query["failed"])
        rows = db.session.scalars(rows.limit(query["limit"]).offset(query["offset"]))
        return [results.result_row(test) for test in rows]

    @require_roles(*RECORDERS)
    @blp.arguments(ResultSchema)
    @blp.response(201)
    def post(self, body):
        """Record a rapid test; a failed one suspends the supplier at once."""
        test = record_from_body(body, acting_user())
        db.session.commit()
        return results.result_row(test)


@blp.route(f"/rapid-tests/<{ID}:test_id>")
class RapidTestById(MethodView):
    @require_roles()
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200)
    def get(self, test_id):
        test = db.get_or_404(RapidTest, test_id, description=f"No result {test_id}.")
        own = _own_supplier_only()
        if own is not None and test.supplier_id != own:
            raise Forbidden("a supplier user reads its own supplier's results only")
        return results.result_row(test)


@blp.route("/lab-requests")
class LabRequests(MethodView):
    @require_roles()
    @blp.arguments(LabRequestQuery, location="query")
    @blp.response(200)
    def get(self, query):
        """Lab requests newest first, each with `late` (no result past `expected_by`)."""
        rows = select(LabRequest).order_by(LabRequest.requested_at.desc(), LabRequest.id.desc())
        if query["status"] is not None:
            rows = rows.where(LabRequest.status == query["status"])
        if query["incident"] is not None:
            rows = rows.where(LabRequest.incident_id == query["incident"])
        own = _own_supplier_only()
        if own is not None:
            rows = rows.where(LabRequest.supplier_id == own)
        answer = []
        # TODO: `late` depends on each request's own clock, so it is filtered here after
        # reading every matching row; with many thousands of requests the list slows.
        for request in db.session.scalars(rows):
            row = lab_request_row(request, _clock_of_request(request))
            if query["late"] is None or row["late"] == query["late"]:
                answer.append(row)
        return answer[query["offset"] : query["offset"] + query["limit"]]

    @require_roles(*RECORDERS)
    @blp.arguments(LabRequestSchema)
    @blp.response(201)
    def post(self, body):
        """Send a sample or a supplier's food to a lab: 422 naming an analyte the lab does
        not test, 409 when the lab is unavailable or full for the day."""
        request = request_from_body(body, acting_user())
        db.session.commit()
        return lab_request_row(request, _clock_of_request(request))


def request_from_body(body, user):
    """Make a lab request from a checked body (API or page); the caller commits."""
    lab = db.session.scalar(select(Lab).filter_by(code=body["lab"]))
    if lab is None:
        raise InvalidInput("unknown lab", {"lab": [f"no lab {body['lab']!r}"]})
    supplier = _supplier(body["supplier"])
    incident = _incident(body.get("incident_id"))
    sample = _row(RetainedSample, body.get("sample_id"), "sample_id")
    return results.request_lab_test(
        lab=lab,
        supplier=supplier,
        incident=incident,
        analytes=body["analytes"],
        requested_by=user.username,
        at=clock_of(incident),
        sample=sample,
        purpose=body.get("purpose", "routine"),
        note=body.get("note"),
    )


def _clock_of_request(request):
    incident = db.session.get(Incident, request.incident_id) if request.incident_id else None
    return now(incident) if incident is not None else utcnow()


@blp.route(f"/lab-requests/<{ID}:request_id>/results")
class LabRequestResults(MethodView):
    @require_roles(*RECORDERS)
    @blp.arguments(LabReportSchema)
    @blp.response(201)
    def post(self, body, request_id):
        """The lab's result for every analyte of the request; the request is reported."""
        request = db.get_or_404(LabRequest, request_id, description=f"No lab request {request_id}.")
        incident = db.session.get(Incident, request.incident_id) if request.incident_id else None
        user = acting_user()
        tests = results.record_lab_result(
            request,
            results=body["results"],
            tested_by=body.get("tested_by") or user.username,
            at=clock_of(incident, body.get("tested_at")),
        )
        db.session.commit()
        return {
            "request": lab_request_row(request, _clock_of_request(request)),
            "results": [results.result_row(t) for t in tests],
        }


@blp.route("/suspensions")
class Suspensions(MethodView):
    @require_roles()
    @blp.arguments(SuspensionQuery, location="query")
    @blp.response(200)
    def get(self, query):
        """Suspensions newest first; `current=true` for those not lifted."""
        rows = select(SupplierSuspension).order_by(SupplierSuspension.id.desc())
        if query["current"] is not None:
            lifted = SupplierSuspension.lifted_at.is_(None)
            rows = rows.where(lifted if query["current"] else ~lifted)
        own = _own_supplier_only()
        if own is not None:
            rows = rows.where(SupplierSuspension.supplier_id == own)
        rows = db.session.scalars(rows.limit(query["limit"]).offset(query["offset"]))
        return [suspension_row(s) for s in rows]


@blp.route(f"/suspensions/<{ID}:suspension_id>/reinstate")
class Reinstate(MethodView):
    @require_roles("commander")
    @blp.arguments(ReinstateSchema)
    @blp.response(200)
    def post(self, body, suspension_id):
        """Lift a suspension: 409 naming the missing re-inspection or re-test."""
        suspension = db.get_or_404(
            SupplierSuspension, suspension_id, description=f"No suspension {suspension_id}."
        )
        gate.reinstate_supplier(
            suspension,
            by=acting_user().username,
            reason=body["reason"],
            at=clock_of_suspension(suspension),
        )
        db.session.commit()
        return suspension_row(suspension)


def clock_of_suspension(suspension):
    incident = db.session.get(Incident, suspension.incident_id) if suspension.incident_id else None
    return now(incident) if incident is not None and incident.drill else utcnow()


@blp.route(f"/suppliers/<{ID}:supplier_id>/risk")
class SupplierRisk(MethodView):
    @blp.arguments(RiskQuery, location="query")
    @blp.response(200)
    def get(self, query, supplier_id):
        """The supplier's risk colour now and why; in an incident's scope when given (a
        drill's own results count there only)."""
        supplier = db.get_or_404(Supplier, supplier_id, description=f"No supplier {supplier_id}.")
        incident = None
        if query["incident"] is not None:
            incident = db.get_or_404(Incident, query["incident"])
        at = now(incident) if incident is not None else utcnow()
        risk = risk_colour(supplier, incident, at=at)
        return {
            "supplier": supplier.code,
            "incident_id": incident.id if incident is not None else None,
            "at": isoformat_utc(at),
            "risk_colour": risk.colour,
            "risk_reasons": risk.reasons,
        }
