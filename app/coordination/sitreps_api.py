"""Situation reports over the API: list and draft an incident's reports, read one with its
versions, save a version from a named base, approve a version, send.

Reading needs a signed-in member of the command's staff; drafting and saving, the
commander or a liaison of the command's office; approving and sending, the commander.
"""

from flask.views import MethodView
from marshmallow import fields, validate

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID, MAX_ID, Blueprint, QueryInteger, StrictSchema
from app.clock.services import now
from app.coordination import sitrep_export, sitreps
from app.coordination.models import SituationReport
from app.duties.api import EmptyBody
from app.extensions import db
from app.incidents.models import Incident
from app.types import isoformat_utc

blp = Blueprint(
    "sitrep_api", __name__, url_prefix="/api", description="Situation reports (信息专报)"
)

STAFF = ("commander", "liaison", "inspector", "drill_controller", "viewer")
LANGUAGES = ("zh-CN", "zh_CN", "zh", "en")


class ReadQuery(StrictSchema):
    lang = fields.String(load_default="zh-CN", validate=validate.OneOf(LANGUAGES))
    version = QueryInteger(load_default=None, validate=validate.Range(1, MAX_ID))


class EditSchema(StrictSchema):
    base_version = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_ID))
    # Checked key by key by the service, so each bad section is named.
    sections = fields.Dict(required=True)
    note = fields.String(load_default=None, allow_none=True)


class ApproveSchema(StrictSchema):
    version = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_ID))


class SectionSchema(StrictSchema):
    key = fields.String()
    title = fields.String()
    text = fields.String()
    edited = fields.Boolean()


class VersionSchema(StrictSchema):
    number = fields.Integer()
    author = fields.String()
    note = fields.String(allow_none=True)
    created_at = fields.String()
    sections = fields.Dict()


class SitrepSchema(StrictSchema):
    id = fields.Integer()
    incident_id = fields.Integer()
    number = fields.Integer()
    title = fields.String()
    status = fields.String()
    drill = fields.Boolean()
    period_start = fields.String()
    period_end = fields.String()
    drafted_at = fields.String()
    current_version = fields.Integer()
    approved_version = fields.Integer(allow_none=True)
    approved_by = fields.String(allow_none=True)
    approved_at = fields.String(allow_none=True)
    sent_version = fields.Integer(allow_none=True)
    sent_by = fields.String(allow_none=True)
    sent_at = fields.String(allow_none=True)
    superseded_by_id = fields.Integer(allow_none=True)


class SitrepDetailSchema(SitrepSchema):
    version = fields.Integer()
    sections = fields.List(fields.Nested(SectionSchema))
    versions = fields.List(fields.Nested(VersionSchema))
    figures = fields.Dict()


def _lang(value):
    return "en" if value == "en" else "zh"


def summary(report, lang="zh"):
    """A report as the list shows it; instants in UTC."""
    return {
        "id": report.id,
        "incident_id": report.incident_id,
        "number": report.number,
        "title": sitrep_export.title(report, lang),
        "status": report.status,
        "drill": bool(report.figures.get("incident", {}).get("drill")),
        "period_start": isoformat_utc(report.period_start),
        "period_end": isoformat_utc(report.period_end),
        "drafted_at": isoformat_utc(report.drafted_at),
        "current_version": report.current_version,
        "approved_version": report.approved_version,
        "approved_by": report.approved_by_name,
        "approved_at": isoformat_utc(report.approved_at),
        "sent_version": report.sent_version,
        "sent_by": report.sent_by_name,
        "sent_at": isoformat_utc(report.sent_at),
        "superseded_by_id": report.superseded_by_id,
    }


def detail(report, lang="zh", version_number=None):
    """A report with the sections of one version (the latest by default) and every
    version's text."""
    version = sitreps.version_of(report, version_number)
    if version is None:
        from app.errors import NotFound

        raise NotFound(f"report {report.id} has no version {version_number}")
    return {
        **summary(report, lang),
        "version": version.number,
        "sections": [
            {"key": key, "title": title, "text": text, "edited": edited}
            for key, title, text, edited in sitrep_export.section_texts(report, version, lang)
        ],
        "versions": [
            {
                "number": v.number,
                "author": v.author_name,
                "note": v.note,
                "created_at": isoformat_utc(v.created_at),
                "sections": v.sections,
            }
            for v in report.versions
        ],
        "figures": report.figures,
    }


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id, description=f"No incident {incident_id}.")


def _report(report_id):
    return db.get_or_404(
        SituationReport, report_id, description=f"No situation report {report_id}."
    )


def _at(report):
    return now(db.session.get(Incident, report.incident_id))


@blp.route(f"/incidents/<{ID}:incident_id>/sitreps")
class IncidentSitreps(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(ReadQuery, location="query", as_kwargs=True)
    @blp.response(200, SitrepSchema(many=True))
    def get(self, incident_id, lang, version):
        """The incident's reports, newest first, superseded drafts too."""
        found = _incident(incident_id)
        return [summary(report, _lang(lang)) for report in sitreps.reports_of(found)]

    @require_roles("commander", "liaison")
    @blp.arguments(EmptyBody)
    @blp.response(201, SitrepDetailSchema)
    @blp.alt_response(403, description="Not the commander or the command's office")
    def post(self, _body, incident_id):
        """Draft a report now from live data (the plan's schedule drafts them too); a
        report not yet sent is superseded by it."""
        found = _incident(incident_id)
        report = sitreps.draft_sitrep(found, now(found), user=acting_user())
        db.session.commit()
        return detail(report)


@blp.route(f"/sitreps/<{ID}:report_id>")
class Sitrep(MethodView):
    @require_roles(*STAFF)
    @blp.arguments(ReadQuery, location="query", as_kwargs=True)
    @blp.response(200, SitrepDetailSchema)
    def get(self, report_id, lang, version):
        """One report: the sections of its latest version (or `?version=N`), in Chinese
        or, with `?lang=en`, the English of the parts nobody edited; every version."""
        return detail(_report(report_id), _lang(lang), version)

    @require_roles("commander", "liaison")
    @blp.arguments(EditSchema)
    @blp.response(200, SitrepDetailSchema)
    @blp.alt_response(403, description="Not the commander or the command's office")
    @blp.alt_response(409, description="Saved from an older version, or the report is sent")
    def put(self, body, report_id):
        """Save section texts (`{key: text}`, the others kept) as a new version made from
        `base_version`; another save since gives 409."""
        report = _report(report_id)
        sitreps.edit_sitrep(
            report,
            body["sections"],
            base_version=body["base_version"],
            user=acting_user(),
            at=_at(report),
            note=body["note"],
        )
        db.session.commit()
        return detail(report)


@blp.route(f"/sitreps/<{ID}:report_id>/approve")
class Approve(MethodView):
    @require_roles("commander")
    @blp.arguments(ApproveSchema)
    @blp.response(200, SitrepDetailSchema)
    @blp.alt_response(403, description="Not the commander")
    @blp.alt_response(409, description="Not the latest version, or the report is sent")
    def post(self, body, report_id):
        """The commander approves a version, which must be the latest."""
        report = _report(report_id)
        sitreps.approve_sitrep(report, version=body["version"], user=acting_user(), at=_at(report))
        db.session.commit()
        return detail(report)


@blp.route(f"/sitreps/<{ID}:report_id>/send")
class Send(MethodView):
    @require_roles("commander")
    @blp.arguments(EmptyBody)
    @blp.response(200, SitrepDetailSchema)
    @blp.alt_response(403, description="Not the commander")
    @blp.alt_response(409, description="Not approved")
    def post(self, _body, report_id):
        """The commander sends the approved version to the commander, the office and the
        plan's recipients; sending again tells nobody twice."""
        report = _report(report_id)
        sitreps.send_sitrep(report, user=acting_user(), at=_at(report))
        db.session.commit()
        return detail(report)
