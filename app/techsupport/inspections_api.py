"""Inspectors posted at suppliers and inspections against the plan's checklist, over the
API.

Posting and ending a posting need the commander or a liaison of the command's office (an
inspector may also end their own posting). An inspection is recorded by an inspector, in
their own name, or by the commander, who may name the inspector; any other role is 403.
The request boundary commits once.
"""

import logging

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields, validate
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, MAX_ID, Blueprint, NoQuery, StrictSchema
from app.clock.services import now
from app.duties.api import STAFF
from app.errors import Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.organisation.models import Person
from app.supply.models import Supplier
from app.supply.schemas import Code, Instant, Text
from app.techsupport import inspections, registry
from app.techsupport.experts_api import KEEPERS, NoBody, check_keeper
from app.techsupport.models import CHECK_RESULTS, INSPECTION_PURPOSES, InspectorPosting
from app.techsupport.results import clock_of
from app.types import isoformat_utc

log = logging.getLogger(__name__)

blp = Blueprint(
    "inspections_api", __name__, url_prefix="/api", description="Inspector postings, inspections"
)

RECORDERS = ("commander", "inspector")
MAX_ITEMS = 200


class PostingSchema(StrictSchema):
    supplier = Code(40, required=True)
    person = Code(64, required=True)


class PostingQuery(StrictSchema):
    open = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})


class PostingOutSchema(StrictSchema):
    id = fields.Integer()
    incident_id = fields.Integer()
    supplier = fields.String()
    supplier_name = fields.String()
    risk_colour = fields.String()
    person = fields.String()
    person_name = fields.String()
    starts_at = fields.String()
    ends_at = fields.String(allow_none=True)
    posted_by = fields.String(allow_none=True)


class AnswerSchema(StrictSchema):
    result = fields.String(required=True, validate=validate.OneOf(CHECK_RESULTS))
    note = Text(1000, blank=True, load_default="")


class InspectionSchema(StrictSchema):
    incident = fields.Integer(strict=True, load_default=None, validate=validate.Range(1, MAX_ID))
    purpose = fields.String(load_default="routine", validate=validate.OneOf(INSPECTION_PURPOSES))
    answers = fields.Dict(
        keys=Text(100),
        values=fields.Nested(AnswerSchema),
        required=True,
        validate=validate.Length(1, MAX_ITEMS),
    )
    summary = Text(4000, blank=True, load_default="")
    # When the inspection was done, if not now on the incident's clock (written up later).
    inspected_at = Instant(load_default=None)
    # The commander writing up someone else's inspection names them.
    person = Code(64, load_default=None)
    inspector = Text(100, load_default=None)


class InspectionQuery(StrictSchema):
    passed = fields.Boolean(load_default=None, truthy={"true"}, falsy={"false"})
    purpose = fields.String(load_default=None, validate=validate.OneOf(INSPECTION_PURPOSES))


class CheckedItemSchema(StrictSchema):
    code = fields.String()
    text = fields.String()
    text_en = fields.String(allow_none=True)
    serious = fields.Boolean()
    result = fields.String()
    note = fields.String(allow_none=True)


class InspectionOutSchema(StrictSchema):
    id = fields.Integer()
    incident_id = fields.Integer(allow_none=True)
    supplier = fields.String()
    supplier_name = fields.String()
    risk_colour = fields.String()
    posting_id = fields.Integer(allow_none=True)
    person = fields.String(allow_none=True)
    inspector = fields.String()
    purpose = fields.String()
    inspected_at = fields.String()
    checklist = fields.List(fields.Nested(CheckedItemSchema))
    serious_findings = fields.Integer()
    minor_findings = fields.Integer()
    passed = fields.Boolean()
    summary = fields.String(allow_none=True)


def posting_row(posting):
    return {
        "id": posting.id,
        "incident_id": posting.incident_id,
        "supplier": posting.supplier.code,
        "supplier_name": posting.supplier.name,
        "risk_colour": posting.supplier.risk_colour,
        "person": posting.person.code,
        "person_name": posting.person.name,
        "starts_at": isoformat_utc(posting.starts_at),
        "ends_at": isoformat_utc(posting.ends_at),
        "posted_by": posting.posted_by,
    }


def inspection_row(inspection):
    person = db.session.get(Person, inspection.person_id) if inspection.person_id else None
    return {
        "id": inspection.id,
        "incident_id": inspection.incident_id,
        "supplier": inspection.supplier.code,
        "supplier_name": inspection.supplier.name,
        "risk_colour": inspection.supplier.risk_colour,
        "posting_id": inspection.posting_id,
        "person": person.code if person else None,
        "inspector": inspection.inspector,
        "purpose": inspection.purpose,
        "inspected_at": isoformat_utc(inspection.inspected_at),
        "checklist": inspection.checklist,
        "serious_findings": inspection.serious_findings,
        "minor_findings": inspection.minor_findings,
        "passed": inspection.passed,
        "summary": inspection.summary,
    }


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")


def _by_code(model, code, field):
    row = db.session.scalar(select(model).filter_by(code=code))
    if row is None:
        raise InvalidInput(f"unknown {field}", {field: [f"no {field} {code!r}"]})
    return row


def who_inspected(user, person_code=None, name=None):
    """The inspector of an inspection the user records: an inspector user is themselves
    (403 when naming someone else); the commander names the inspector (a person of role
    inspector, or a name), or is named as the one who inspected."""
    own = db.session.get(Person, user.person_id) if user.person_id else None
    if user.role == "inspector":
        if (person_code and (own is None or person_code != own.code)) or name:
            raise Forbidden(f"{user.username} records inspections in their own name only")
        return own or (user.display_name or user.username)
    if person_code:
        return _by_code(Person, person_code, "person")
    return name or user.display_name or user.username


def new_inspection(supplier, body, user):
    """Record an inspection from a checked body (API or page) for `user`; the caller
    commits. With no `incident`, an inspector posted at the supplier inspects for the
    incident of the posting. The instant is the incident's clock unless `inspected_at`
    says otherwise."""
    found = None
    inspector = who_inspected(user, body.get("person"), body.get("inspector"))
    if body.get("incident") is not None:
        found = db.session.get(Incident, body["incident"])
        if found is None:
            raise InvalidInput(
                "unknown incident", {"incident": [f"no incident {body['incident']}"]}
            )
    elif isinstance(inspector, Person):
        # An inspector on site inspects for the incident they are posted for, on its clock.
        posting = inspections.open_posting_at(inspector, supplier)
        found = db.session.get(Incident, posting.incident_id) if posting else None
    clock = now(found)
    at = body.get("inspected_at") or clock
    if at > clock:
        raise InvalidInput("inspection refused", {"inspected_at": ["must not be in the future"]})
    clock_of(found, at, "inspected_at")
    return inspections.record_inspection(
        supplier,
        incident=found,
        inspector=inspector,
        answers=body["answers"],
        at=at,
        purpose=body.get("purpose") or "routine",
        summary=body.get("summary") or None,
    )


@blp.route(f"/incidents/<{ID}:incident_id>/postings")
class IncidentPostings(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(PostingQuery, location="query")
    @blp.response(200, PostingOutSchema(many=True))
    def get(self, query, incident_id):
        """Inspectors posted at suppliers for the incident (`open`: true for those still
        on site, false for those ended), open ones first."""
        rows = inspections.postings_of(incident=_incident(incident_id))
        if query["open"] is not None:
            rows = [p for p in rows if (p.ends_at is None) == query["open"]]
        return [posting_row(p) for p in rows]

    @require_roles(*KEEPERS)
    @blp.arguments(PostingSchema)
    @blp.response(201, PostingOutSchema)
    @blp.alt_response(403, description="Neither the commander nor the office")
    @blp.alt_response(409, description="Posted elsewhere at that time, or the incident closed")
    def post(self, body, incident_id):
        """Post an inspector (a person of role inspector, by code) at a supplier (by code)
        from now on the incident's clock until the posting ends."""
        user = check_keeper()
        found = _incident(incident_id)
        person = _by_code(Person, body["person"], "person")
        supplier = _by_code(Supplier, body["supplier"], "supplier")
        posting = inspections.post_inspector(found, supplier, person, now(found), user.username)
        db.session.commit()
        return posting_row(posting)


@blp.route(f"/postings/<{ID}:posting_id>/end")
class EndPosting(MethodView):
    @require_roles(*KEEPERS, "inspector")
    @blp.arguments(NoBody)
    @blp.response(200, PostingOutSchema)
    @blp.alt_response(403, description="Not the commander, the office or the posted inspector")
    @blp.alt_response(409, description="Ended already")
    def post(self, _body, posting_id):
        """The inspector leaves the post (the commander, the office, or the inspector)."""
        posting = db.session.scalar(
            select(InspectorPosting)
            .where(InspectorPosting.id == posting_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if posting is None:
            abort(404, message=f"No posting {posting_id}.")
        may_end_or_403(acting_user(), posting)
        inspections.end_posting(posting, now(_incident(posting.incident_id)))
        db.session.commit()
        return posting_row(posting)


def may_end_or_403(user, posting):
    if registry.commander_or_office(user) or user.person_id == posting.person_id:
        return
    raise Forbidden(f"{user.username} ends only their own posting")


def _supplier(supplier_id):
    return db.get_or_404(Supplier, supplier_id, description=f"No supplier {supplier_id}.")


@blp.route(f"/suppliers/<{ID}:supplier_id>/inspections")
class SupplierInspections(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(InspectionQuery, location="query")
    @blp.response(200, InspectionOutSchema(many=True))
    def get(self, query, supplier_id):
        """The supplier's inspections, newest first (`passed`, `purpose` filter)."""
        rows = inspections.inspections_of(supplier=_supplier(supplier_id))
        return [inspection_row(i) for i in _filtered(rows, query)]

    @require_roles(*RECORDERS)
    @blp.arguments(InspectionSchema)
    @blp.response(201, InspectionOutSchema)
    @blp.alt_response(403, description="Neither an inspector nor the commander, or an "
                      "inspector posted at another supplier")  # fmt: skip
    @blp.alt_response(409, description="The incident is closed")
    def post(self, body, supplier_id):
        """Record an inspection: `answers` maps every item code of the plan's checklist to
        `{result: pass|fail|na, note}`; `incident` (an id) when it is part of one. An
        inspector posted at the supplier has it linked to the posting."""
        # TODO: no Idempotency-Key: a request sent twice (a retry on a weak mobile link at
        # the kitchen) records two inspections, and a serious finding is counted twice.
        supplier = _supplier(supplier_id)
        inspection = new_inspection(supplier, body, acting_user())
        db.session.commit()
        return inspection_row(inspection)


@blp.route(f"/incidents/<{ID}:incident_id>/inspections")
class IncidentInspections(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(InspectionQuery, location="query")
    @blp.response(200, InspectionOutSchema(many=True))
    def get(self, query, incident_id):
        """The incident's inspections, newest first (`passed`, `purpose` filter)."""
        rows = inspections.inspections_of(incident=_incident(incident_id))
        return [inspection_row(i) for i in _filtered(rows, query)]


@blp.route(f"/inspections/<{ID}:inspection_id>")
class InspectionById(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, InspectionOutSchema)
    def get(self, inspection_id):
        from app.techsupport.models import Inspection

        inspection = db.get_or_404(
            Inspection, inspection_id, description=f"No inspection {inspection_id}."
        )
        return inspection_row(inspection)


def _filtered(rows, query):
    if query["passed"] is not None:
        rows = [i for i in rows if i.passed == query["passed"]]
    if query["purpose"] is not None:
        rows = [i for i in rows if i.purpose == query["purpose"]]
    return rows
