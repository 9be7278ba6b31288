"""The duty matrix of an incident: each department's duties with their status and
instants, a summary per department, and the same as an Excel workbook."""

import io

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.duties.models import DutyAssignment
from app.duties.services import status_of
from app.extensions import db
from app.types import isoformat_utc

INSTANTS = ("assigned_at", "deadline_at", "confirmed_at", "objected_at", "reminded_at")
INSTANTS += ("overdue_at", "escalated_at", "closed_at")


def assignments_of(incident):
    return db.session.scalars(
        select(DutyAssignment)
        .options(joinedload(DutyAssignment.duty), joinedload(DutyAssignment.department))
        .filter_by(incident_id=incident.id)
        .order_by(DutyAssignment.id)
    ).all()


def matrix_rows(incident, instant=isoformat_utc):
    """One row per assignment: department, duty, legal basis, status and its instants."""
    return [assignment_row(a, instant) for a in assignments_of(incident)]


def assignment_row(a, instant=isoformat_utc):
    """One assignment as a row of the matrix."""
    row = {
        "id": a.id,
        "department": a.department.code,
        "department_name": a.department.name,
        "department_name_en": a.department.name_en,
        "duty": a.duty.code,
        "title": a.duty.title,
        "title_en": a.duty.title_en,
        "legal_basis": a.duty.legal_basis,
        "trigger": a.duty.trigger,
        "status": status_of(a),
        "objection": a.objection,
        "close_note": a.close_note,
        "escalation_step": a.escalation_step,
    }
    row.update({name: instant(getattr(a, name)) for name in INSTANTS})
    return row


def department_summary(incident):
    """Per department, in the order its first duty was assigned: when it was first
    assigned, reminded and escalated, and when it had confirmed every duty (null while
    any duty it still holds is unconfirmed). Instants are ISO-8601 UTC."""
    by_department = {}
    for a in assignments_of(incident):
        by_department.setdefault(a.department.code, []).append(a)
    summary = []
    for code, rows in by_department.items():
        held = [a for a in rows if a.status != "retired"] or rows

        def first(name, among=rows):
            values = [getattr(a, name) for a in among if getattr(a, name) is not None]
            return isoformat_utc(min(values)) if values else None

        confirmed = [a.confirmed_at for a in held]
        summary.append(
            {
                "department": code,
                "assigned_at": first("assigned_at"),
                "reminded_at": first("reminded_at"),
                "confirmed_at": (
                    isoformat_utc(max(confirmed)) if all(c is not None for c in confirmed) else None
                ),
                "escalated_at": first("escalated_at"),
            }
        )
    return summary


def _local_naive(value):
    """An instant as the command's local wall time, which Excel keeps as a date (Excel
    cells hold no offset; the header says which zone)."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    if value is None:
        return None
    zone = ZoneInfo(current_app.config["BAOGONG_TIMEZONE"])
    return value.astimezone(zone).replace(tzinfo=None)


# Each status as the English and Chinese sheets name it.
STATUS_HEADERS = {
    "assigned": ("assigned", "已分派"),
    "overdue": ("overdue", "已超时"),
    "escalated": ("escalated", "已上报"),
    "objected": ("objected", "有异议"),
    "confirmed": ("confirmed", "已确认"),
    "closed": ("closed", "已关闭"),
    "retired": ("retired", "已撤销"),
}


def matrix_workbook(incident, english=False):
    """The matrix as an .xlsx file (bytes): a sheet of every duty, times in the command's
    zone, and a sheet counting each department's duties by status."""
    from flask import current_app
    from openpyxl import Workbook

    from app.supply.imports import export_value as escape_cell

    rows = matrix_rows(incident, instant=_local_naive)
    book = Workbook()
    sheet = book.active
    sheet.title = "Duties" if english else "职责矩阵"
    headers = (
        ("department", "部门", "Department"),
        ("duty", "职责编码", "Duty code"),
        ("title", "职责", "Duty"),
        ("legal_basis", "法定依据", "Legal basis"),
        ("status", "状态", "Status"),
        ("assigned_at", "分派时间", "Assigned"),
        ("deadline_at", "确认时限", "Deadline"),
        ("confirmed_at", "确认时间", "Confirmed"),
        ("reminded_at", "提醒时间", "Reminded"),
        ("escalated_at", "上报时间", "Escalated"),
        ("objection", "异议", "Objection"),
        ("closed_at", "关闭时间", "Closed"),
    )
    zone = current_app.config["BAOGONG_TIMEZONE"]
    sheet.append(
        [(en if english else zh) + (f" ({zone})" if key.endswith("_at") else "")
         for key, zh, en in headers]
    )  # fmt: skip
    for row in rows:
        values = dict(row)
        values["department"] = (row["department_name_en"] if english else None) or row[
            "department_name"
        ]
        values["title"] = (row["title_en"] if english else None) or row["title"]
        values["status"] = STATUS_HEADERS[row["status"]][0 if english else 1]
        sheet.append([escape_cell(values[key]) for key, _, _ in headers])

    summary = book.create_sheet("By department" if english else "按部门")
    summary.append(["Department" if english else "部门",
                    *(en if english else zh for en, zh in STATUS_HEADERS.values())])  # fmt: skip
    statuses = tuple(STATUS_HEADERS)
    counts = {}
    for row in rows:
        name = (row["department_name_en"] if english else None) or row["department_name"]
        counts.setdefault(name, dict.fromkeys(statuses, 0))[row["status"]] += 1
    for name, by_status in counts.items():
        summary.append([escape_cell(name), *by_status.values()])

    for column in sheet.iter_cols(min_row=2):
        for cell in column:
            if hasattr(cell.value, "hour"):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
