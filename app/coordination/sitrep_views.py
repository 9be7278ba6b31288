"""Pages of the situation reports: an incident's reports, one report with its edit form
and the buttons of each role, a printable page and the Word document."""

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import get_locale, gettext, lazy_gettext
from sqlalchemy import select

from app.accounts.access import acting_user, require_roles
from app.api.routes import ID
from app.clock.services import now
from app.coordination import sitrep_export, sitrep_text, sitreps
from app.coordination.models import SituationReport
from app.duties.views import ActionForm
from app.errors import Conflict, DomainError, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.models import Incident

bp = Blueprint("sitreps", __name__)

STAFF = ("commander", "liaison", "inspector", "drill_controller", "viewer")
STATUS_NAMES = {
    "draft": lazy_gettext("draft"),
    "approved": lazy_gettext("approved"),
    "sent": lazy_gettext("sent"),
    "superseded": lazy_gettext("superseded"),
}


def _lang():
    return "en" if str(get_locale()) == "en" else "zh"


def _keep():
    """The page's language, kept across a redirect."""
    return {"lang": request.args["lang"]} if request.args.get("lang") else {}


def _report(report_id):
    return db.get_or_404(SituationReport, report_id)


def _incident(incident_id):
    return db.get_or_404(Incident, incident_id)


def _checked_form():
    if not ActionForm().validate_on_submit():
        abort(400, gettext("The form has expired; reload the page and try again."))


@bp.get("/sitreps")
@require_roles(*STAFF)
def recent_page():
    """The latest reports of every incident."""
    rows = db.session.scalars(
        select(SituationReport).order_by(SituationReport.id.desc()).limit(100)
    ).all()
    return render_template(
        "coordination/sitrep_list.html",
        incident=None,
        reports=rows,
        title_of=lambda r: sitrep_export.title(r, _lang()),
        statuses=STATUS_NAMES,
        may_draft=False,
        form=ActionForm(),
    )


@bp.get(f"/incidents/<{ID}:incident_id>/sitreps")
@require_roles(*STAFF)
def incident_reports_page(incident_id):
    found = _incident(incident_id)
    return render_template(
        "coordination/sitrep_list.html",
        incident=found,
        reports=sitreps.reports_of(found),
        title_of=lambda r: sitrep_export.title(r, _lang()),
        statuses=STATUS_NAMES,
        may_draft=sitreps.may_edit(acting_user(), found),
        form=ActionForm(),
    )


@bp.post(f"/incidents/<{ID}:incident_id>/sitreps")
@require_roles("commander", "liaison")
def draft_page(incident_id):
    """The draft-now button: a report from live data, as its first version."""
    found = _incident(incident_id)
    _checked_form()
    try:
        report = sitreps.draft_sitrep(found, now(found), user=acting_user())
        db.session.commit()
    except Forbidden as error:
        db.session.rollback()
        abort(403, str(error))
    return redirect(url_for("sitreps.report_page", report_id=report.id, **_keep()))


def _render(report, *, version_number=None, texts=None, error=None, status=200):
    user = acting_user()
    incident = db.session.get(Incident, report.incident_id)
    version = sitreps.version_of(report, version_number)
    if version is None:
        abort(404)
    open_to_change = report.status in ("draft", "approved")
    latest = version.number == report.current_version
    page = render_template(
        "coordination/sitrep.html",
        report=report,
        incident=incident,
        doc=sitrep_export.document(report, _lang(), version.number),
        version=version,
        statuses=STATUS_NAMES,
        form=ActionForm(),
        texts=texts or version.sections,
        error=error,
        may_edit=open_to_change and latest and sitreps.may_edit(user, incident),
        may_approve=(
            report.status == "draft" and latest and user is not None and user.role == "commander"
        ),
        may_send=report.status == "approved" and user is not None and user.role == "commander",
        section_keys=sitrep_text.SECTION_KEYS,
        section_titles={k: v[_lang()] for k, v in sitrep_text.SECTION_TITLES.items()},
        limit=sitreps.MAX_SECTION_CHARS,
    )
    return page, status


@bp.get(f"/sitreps/<{ID}:report_id>")
@require_roles(*STAFF)
def report_page(report_id):
    version = request.args.get("version", "")
    number = int(version) if version.isdigit() and len(version) < 10 else None
    return _render(_report(report_id), version_number=number)


@bp.post(f"/sitreps/<{ID}:report_id>/edit")
@require_roles("commander", "liaison")
def edit_page(report_id):
    """Save the edit form as a new version; a form made from an older version is shown
    again with the texts typed, and says so."""
    report = _report(report_id)
    _checked_form()
    # Only the sections the form holds: a missing field keeps its text, never blanks it.
    texts = {
        key: request.form[f"section_{key}"]
        for key in sitrep_text.SECTION_KEYS
        if f"section_{key}" in request.form
    }
    base = request.form.get("base_version", "")
    if not base.isdigit() or len(base) > 9:
        abort(400, gettext("The form has expired; reload the page and try again."))
    incident = db.session.get(Incident, report.incident_id)
    try:
        sitreps.edit_sitrep(
            report,
            texts,
            base_version=int(base),
            user=acting_user(),
            at=now(incident),
            note=request.form.get("note") or None,
        )
        db.session.commit()
    except Forbidden as error:
        db.session.rollback()
        abort(403, str(error))
    except (Conflict, InvalidInput) as error:
        db.session.rollback()
        message = str(error)
        if isinstance(error, InvalidInput):
            message += ": " + "; ".join(f"{k} {', '.join(v)}" for k, v in error.errors.items())
        db.session.expire_all()
        return _render(
            _report(report_id),
            texts=texts,
            error=message,
            status=409 if isinstance(error, Conflict) else 422,
        )
    flash(gettext("Saved as version %(number)s.", number=report.current_version))
    return redirect(url_for("sitreps.report_page", report_id=report.id, **_keep()))


def _decide(report_id, act):
    report = _report(report_id)
    _checked_form()
    incident = db.session.get(Incident, report.incident_id)
    try:
        act(report, now(incident))
        db.session.commit()
    except Forbidden as error:
        db.session.rollback()
        abort(403, str(error))
    except DomainError as error:
        db.session.rollback()
        flash(str(error))
    return redirect(url_for("sitreps.report_page", report_id=report_id, **_keep()))


@bp.post(f"/sitreps/<{ID}:report_id>/approve")
@require_roles("commander")
def approve_page(report_id):
    version = request.form.get("version", "")
    if not version.isdigit() or len(version) > 9:
        abort(400, gettext("The form has expired; reload the page and try again."))
    return _decide(
        report_id,
        lambda report, at: sitreps.approve_sitrep(
            report, version=int(version), user=acting_user(), at=at
        ),
    )


@bp.post(f"/sitreps/<{ID}:report_id>/send")
@require_roles("commander")
def send_page(report_id):
    return _decide(
        report_id, lambda report, at: sitreps.send_sitrep(report, user=acting_user(), at=at)
    )


@bp.get(f"/sitreps/<{ID}:report_id>.html")
@require_roles(*STAFF)
def print_page(report_id):
    """The report as one printable page, nothing around it."""
    report = _report(report_id)
    doc = sitrep_export.document(report, _lang())
    return render_template("coordination/sitrep_print.html", doc=doc)


@bp.get(f"/sitreps/<{ID}:report_id>.docx")
@require_roles(*STAFF)
def docx_file(report_id):
    """The report as a Word document, in the page's language."""
    import io

    report = _report(report_id)
    name = f"sitrep-{report.incident_id}-{report.number}-v{report.current_version}.docx"
    return send_file(
        io.BytesIO(sitrep_export.docx_bytes(report, _lang())),
        mimetype="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        as_attachment=True,
        download_name=name,
    )
