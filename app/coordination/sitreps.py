"""Situation reports (信息专报): drafted from live data on the plan's schedule, edited by
the command, approved, sent, and read as a page, a printable page or a Word document.

A report's life: `draft` (the schedule or a person drafts it; each save is a new version
and must name the version it was based on), `approved` (the commander approves one
version; a later save makes it a draft again), `sent` (the commander sends the approved
version; final). A new draft replaces a report of the incident not yet sent, which
becomes `superseded` and leaves its number to the new one. A sent report is never
changed: a correction is the next report, which states what changed since.

Generated text is stored in Chinese (the plan's language); the English rendering of the
generated parts is made again from the figures when asked for, and a section a person
edited is shown as written.
"""

import logging
import re
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import func, select, update

from app.coordination.models import SitrepVersion, SituationReport
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.types import isoformat_utc

log = logging.getLogger(__name__)

SECTION_KEYS = ("level", "duties", "meals", "food_safety", "tasks", "changes")
SECTION_TITLES = {
    "level": {"zh": "一、响应级别与阶段", "en": "1. Response level and phase"},
    "duties": {"zh": "二、部门职责落实", "en": "2. Departments' duties"},
    "meals": {"zh": "三、餐食需求与供应", "en": "3. Meal demand and deliveries"},
    "food_safety": {"zh": "四、食品安全", "en": "4. Food safety"},
    "tasks": {"zh": "五、未办结协调任务", "en": "5. Open coordination tasks"},
    "changes": {"zh": "六、上期以来变化", "en": "6. Changes since the last report"},
}
MAX_SECTION_CHARS = 20_000
MAX_NOTE_CHARS = 2_000
# Timeline lines listed in the changes section; the rest are counted.
MAX_TIMELINE_LINES = 30
# Timeline events that come by the dozen: counted, not listed one by one.
ROUTINE_EVENTS = ("duty_confirmed", "meals_delivered", "allocation_solved", "point_opened")
DRILL_MARK = "[演练]"

PHASES = {
    "warning": ("预警", "warning"),
    "response": ("应急响应", "response"),
    "recovery": ("恢复", "recovery"),
    "closure": ("结束", "closure"),
}
INCIDENT_STATUSES = {
    "open": ("已报告", "reported"),
    "active": ("响应中", "responding"),
    "closed": ("已结束", "ended"),
}
COMMANDED_BY = {
    "national": ("国家", "national"),
    "provincial": ("省级", "provincial"),
    "municipal": ("市级", "municipal"),
    "county": ("区（县）级", "county"),
}
MEAL_NAMES = {
    "breakfast": ("早餐", "breakfast"),
    "lunch": ("午餐", "lunch"),
    "dinner": ("晚餐", "dinner"),
}
STATUS_NAMES = {
    "draft": ("草稿", "draft"),
    "approved": ("已审核", "approved"),
    "sent": ("已报送", "sent"),
    "superseded": ("已被替代", "superseded"),
}
EVENT_NAMES = {
    "incident_opened": ("事件登记", "incident opened"),
    "alert_received": ("收到预警", "alert received"),
    "alert_updated": ("预警更新", "alert updated"),
    "alert_cancelled": ("预警解除", "alert cancelled"),
    "level_suggested": ("系统建议级别", "level suggested"),
    "level_set": ("响应级别调整", "level set"),
    "level_declared_above": ("上级宣布响应", "declared above"),
    "plan_activated": ("预案启动", "plan activated"),
    "phase_entered": ("进入阶段", "phase entered"),
    "duties_reconciled": ("职责调整", "duties reconciled"),
    "duty_confirmed": ("职责确认", "duty confirmed"),
    "duty_overdue": ("职责逾期提醒", "duty overdue, reminded"),
    "duty_escalated": ("职责上报升级", "duty escalated"),
    "duty_objected": ("职责异议", "duty objected to"),
    "duty_objection_decided": ("异议处理", "objection decided"),
    "point_opened": ("需求点开放", "demand point opened"),
    "allocation_solved": ("餐食分配", "meals allocated"),
    "reallocation_solved": ("重新分配", "meals re-allocated"),
    "tasks_reallocated": ("任务转派", "tasks moved"),
    "task_set_by_hand": ("人工调整任务", "task set by hand"),
    "meals_delivered": ("餐食送达", "meals delivered"),
    "rapid_test_failed": ("快检不合格", "rapid test failed"),
    "supplier_suspended": ("供应商暂停", "supplier suspended"),
    "hazard_declared": ("划定危险区域", "hazard area declared"),
    "poisoning_reported": ("疑似食物中毒报告", "suspected poisoning reported"),
    "response_ended": ("响应结束", "response ended"),
    "incident_closed": ("事件关闭", "incident closed"),
}
# The figures compared with the previous sent report, in the order they are told.
CHANGE_FIGURES = {
    "level": ("响应级别", "response level"),
    "demand_meals": ("累计需求餐数", "meals demanded"),
    "allocated_meals": ("已分配餐数", "meals allocated"),
    "delivered_meals": ("已送达餐数", "meals delivered"),
    "unmet_meals": ("未送达餐数", "meals not delivered"),
    "suppliers_suspended": ("暂停供应商", "suppliers suspended"),
    "tests_run": ("快检批次", "rapid tests"),
    "tests_failed": ("快检不合格", "failed rapid tests"),
    "duties_confirmed": ("已确认职责", "duties confirmed"),
    "duties_open": ("待确认职责", "duties awaiting confirmation"),
    "duties_escalated": ("已升级职责", "duties escalated"),
    "tasks_open": ("未办结协调任务", "open coordination tasks"),
}
# Characters refused in section text: control characters but line breaks and tabs.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _word(table, code, lang):
    zh, en = table.get(code, (code, code))
    return en if lang == "en" else zh


# Live figures -------------------------------------------------------------------------


def _open_tasks(incident, at):
    """Open coordination tasks between departments, as dicts (id, title, priority, kind,
    status, due_at, overdue, departments)."""
    try:
        from app.coordination.tasks import open_task_summary
    except ImportError:
        # The coordination tasks module comes with another branch; until it is merged
        # there are none to report. The fallback goes when app/coordination/tasks.py lands.
        return []
    return open_task_summary(incident, at)


def _departments_by_code(codes):
    from app.organisation.models import Department

    if not codes:
        return {}
    rows = db.session.scalars(select(Department).where(Department.code.in_(sorted(codes))))
    return {d.code: {"code": d.code, "name": d.name, "name_en": d.name_en} for d in rows}


def _level_figures(incident):
    entry = incident.plan.level(incident.level) if incident.level else {}
    return {
        "declared": incident.level,
        "declared_name": entry.get("name"),
        "declared_by_higher": bool(entry.get("declared_by_higher")),
        "commanded_by": entry.get("commanded_by"),
        "suggested": incident.suggested_level,
        "phase": incident.phase,
        "status": incident.status,
    }


def _duty_figures(incident):
    from app.duties.models import DutyAssignment
    from app.duties.services import status_of

    counts = Counter()
    waiting = defaultdict(Counter)
    assignments = db.session.scalars(
        select(DutyAssignment)
        .filter_by(incident_id=incident.id)
        .where(DutyAssignment.status != "retired")
        .order_by(DutyAssignment.id)
    )
    for assignment in assignments:
        status = status_of(assignment)
        counts["total"] += 1
        counts[status] += 1
        if assignment.status in ("assigned", "objected"):
            counts["open"] += 1
            waiting[assignment.department.code][status] += 1
    names = _departments_by_code(set(waiting))
    return {
        "assigned": counts["total"],
        "confirmed": counts["confirmed"],
        "open": counts["open"],
        "overdue": counts["overdue"],
        "escalated": counts["escalated"],
        "objected": counts["objected"],
        "closed": counts["closed"],
        "waiting": [
            {
                **names[code],
                "open": sum(by.values()),
                "escalated": by["escalated"],
                "overdue": by["overdue"],
                "objected": by["objected"],
            }
            for code, by in waiting.items()
        ],
    }


def _meal_figures(incident, at):
    """Meals demanded, allocated, delivered and unmet for each meal of each day; unmet is
    None for a meal not yet served."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    from app.supply.models import DELIVERED_TASK_STATUSES, MealDemand, SupplyTask

    zone = ZoneInfo(current_app.config["BAOGONG_TIMEZONE"])
    rows = {}

    def row(serve_at, meal):
        key = (serve_at, meal)
        if key not in rows:
            rows[key] = {
                "serve_at": isoformat_utc(serve_at),
                "meal": meal,
                "day": serve_at.astimezone(zone).date().isoformat(),
                "demand": 0,
                "allocated": 0,
                "delivered": 0,
            }
        return rows[key]

    demand = select(MealDemand.serve_at, MealDemand.meal, func.sum(MealDemand.meals))
    for serve_at, meal, meals in db.session.execute(
        demand.filter_by(incident_id=incident.id).group_by(MealDemand.serve_at, MealDemand.meal)
    ):
        row(serve_at, meal)["demand"] = int(meals or 0)
    tasks = select(
        SupplyTask.serve_at, SupplyTask.meal, SupplyTask.status, func.sum(SupplyTask.meals)
    )
    tasks = tasks.where(SupplyTask.incident_id == incident.id, SupplyTask.status != "cancelled")
    for serve_at, meal, status, meals in db.session.execute(
        tasks.group_by(SupplyTask.serve_at, SupplyTask.meal, SupplyTask.status)
    ):
        entry = row(serve_at, meal)
        entry["allocated"] += int(meals or 0)
        if status in DELIVERED_TASK_STATUSES:
            entry["delivered"] += int(meals or 0)

    ordered = [rows[key] for key in sorted(rows)]
    for (serve_at, _meal), entry in sorted(rows.items()):
        entry["unmet"] = max(0, entry["demand"] - entry["delivered"]) if serve_at <= at else None
    return ordered


def _food_safety_figures(incident):
    from app.supply.models import Supplier, SupplierSuspension
    from app.techsupport.models import RapidTest

    tests = select(func.count(RapidTest.id)).filter_by(incident_id=incident.id)
    failed = db.session.execute(
        select(RapidTest, Supplier)
        .join(Supplier, RapidTest.supplier_id == Supplier.id)
        .where(RapidTest.incident_id == incident.id, RapidTest.passed.is_(False))
        .order_by(RapidTest.tested_at, RapidTest.id)
    ).all()
    suspensions = db.session.scalars(
        select(SupplierSuspension)
        .filter_by(incident_id=incident.id)
        .order_by(SupplierSuspension.started_at, SupplierSuspension.id)
    )
    return {
        "tests_run": int(db.session.scalar(tests) or 0),
        "tests_failed": len(failed),
        "failed": [
            {
                "supplier": s.code,
                "supplier_name": s.name,
                "analyte": t.analyte,
                "value": t.value,
                "limit": t.limit,
                "unit": t.unit,
                "tested_at": isoformat_utc(t.tested_at),
            }
            for t, s in failed
        ],
        "suspended": [
            {
                "supplier": s.supplier.code,
                "supplier_name": s.supplier.name,
                "since": isoformat_utc(s.started_at),
                "lifted_at": isoformat_utc(s.lifted_at),
            }
            for s in suspensions
        ],
    }


def _task_figures(incident, at):
    tasks = _open_tasks(incident, at)
    names = _departments_by_code({code for task in tasks for code in task.get("departments", [])})
    return [
        {
            "id": task["id"],
            "title": task["title"],
            "priority": task.get("priority"),
            "kind": task.get("kind"),
            "status": task.get("status"),
            "due_at": isoformat_utc(task.get("due_at")),
            "overdue": bool(task.get("overdue")),
            "departments": [
                names.get(code, {"code": code, "name": code, "name_en": None})
                for code in task.get("departments", [])
            ],
        }
        for task in tasks
    ]


def _timeline(incident, since, until):
    """What the timeline recorded in the period: routine events counted, the others
    listed (the first MAX_TIMELINE_LINES)."""
    from app.incidents.models import TimelineEntry

    entries = db.session.scalars(
        select(TimelineEntry)
        .where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.at > since,
            TimelineEntry.at <= until,
            TimelineEntry.event.not_like("sitrep_%"),
        )
        .order_by(TimelineEntry.at, TimelineEntry.origin, TimelineEntry.id)
    ).all()
    notable = [e for e in entries if e.event not in ROUTINE_EVENTS]
    routine = Counter(e.event for e in entries if e.event in ROUTINE_EVENTS)
    return {
        "count": len(entries),
        "routine": {event: routine[event] for event in ROUTINE_EVENTS if routine[event]},
        "notable": len(notable),
        "entries": [
            {"at": isoformat_utc(e.at), "event": e.event, "detail": e.detail}
            for e in notable[:MAX_TIMELINE_LINES]
        ],
    }


def _headline(figures):
    """The figures a later report compares with, flat."""
    totals, duties, safety = figures["totals"], figures["duties"], figures["food_safety"]
    return {
        "level": figures["level"]["declared"],
        **{k: totals[k] for k in ("demand_meals", "allocated_meals", "delivered_meals")},
        "unmet_meals": totals["unmet_meals"],
        "suppliers_suspended": totals["suppliers_suspended"],
        "tests_run": safety["tests_run"],
        "tests_failed": safety["tests_failed"],
        "duties_confirmed": duties["confirmed"],
        "duties_open": duties["open"],
        "duties_escalated": duties["escalated"],
        "tasks_open": len(figures["tasks"]),
    }


def _region():
    """The name of the region served, for the title."""
    from app.fixtures import configured_region

    try:
        region = configured_region()
    except InvalidInput:
        region = {}
    return {"name": region.get("name") or "", "name_en": region.get("name_en") or ""}


def _office(incident):
    from app.organisation.models import Department

    department_id = office_department_id(incident)
    found = db.session.get(Department, department_id) if department_id else None
    if found is None:
        return None
    return {"code": found.code, "name": found.name, "name_en": found.name_en}


def collect_figures(incident, at, since, previous=None):
    """The snapshot a report is drafted from: every figure its sections tell, as plain
    JSON, with what changed since `previous` (the last sent report)."""
    from app.supply.services import incident_figures

    figures = {
        "region": _region(),
        "office": _office(incident),
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "kind": incident.kind,
            "drill": incident.drill,
        },
        "level": _level_figures(incident),
        "duties": _duty_figures(incident),
        "totals": incident_figures(incident),
        "meals": _meal_figures(incident, at),
        "food_safety": _food_safety_figures(incident),
        "tasks": _task_figures(incident, at),
        "timeline": _timeline(incident, since, at),
        "period": {"since": isoformat_utc(since), "until": isoformat_utc(at)},
    }
    figures["headline"] = _headline(figures)
    figures["previous"] = None
    figures["changes"] = []
    if previous is not None:
        before = previous.figures.get("headline", {})
        figures["previous"] = {
            "id": previous.id,
            "number": previous.number,
            "until": isoformat_utc(previous.period_end),
        }
        figures["changes"] = [
            {"figure": key, "before": before.get(key), "after": value}
            for key, value in figures["headline"].items()
            if before.get(key) != value
        ]
    return figures


# Generated text ----------------------------------------------------------------------


def _local(iso):
    """An ISO UTC instant as the command's local wall time, to the minute."""
    from datetime import datetime

    from app.types import local_iso

    if not iso:
        return ""
    value = datetime.fromisoformat(iso.replace("Z", "+00:00")) if isinstance(iso, str) else iso
    return local_iso(value).replace("T", " ")[:16]


def _name(entry, lang):
    return (entry.get("name_en") if lang == "en" else None) or entry.get("name") or ""


def _number(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _level_text(f, lang):
    level = f["level"]
    en = lang == "en"
    lines = []
    if level["declared"]:
        name = f"（{level['declared_name']}）" if level["declared_name"] and not en else ""
        by = _word(COMMANDED_BY, level["commanded_by"], lang) if level["commanded_by"] else ""
        if en:
            line = f"Response level {level['declared']}"
            line += f" ({level['declared_name']})" if level["declared_name"] else ""
            line += (
                f", declared by the {by} government; the district responds within it."
                if level["declared_by_higher"]
                else f", commanded at {by} level."
                if by
                else "."
            )
        else:
            line = f"当前响应级别：{level['declared']}级{name}"
            line += (
                f"，由{by}政府宣布，本区在其框架内开展响应。"
                if level["declared_by_higher"]
                else f"，由{by}指挥。"
                if by
                else "。"
            )
        lines.append(line)
    else:
        lines.append("No response level confirmed yet." if en else "尚未确认响应级别。")

    suggested = level["suggested"]
    if suggested:
        differs = level["declared"] and suggested != level["declared"]
        if en:
            line = f"Level suggested from the figures: {suggested}."
            line += " It differs from the level in force." if differs else ""
        else:
            line = f"系统依据数据建议级别：{suggested}级。"
            line += "与当前级别不一致，请指挥长研判。" if differs else ""
        lines.append(line)
    phase = _word(PHASES, level["phase"], lang) if level["phase"] else "-"
    status = _word(INCIDENT_STATUSES, level["status"], lang)
    lines.append(
        f"Phase: {phase}; status: {status}." if en else f"当前阶段：{phase}；事件状态：{status}。"
    )
    return "\n".join(lines)


def _duties_text(f, lang):
    d = f["duties"]
    if not d["assigned"]:
        return "No duties assigned." if lang == "en" else "尚未下达部门职责。"
    if lang == "en":
        lines = [
            f"{d['assigned']} duties assigned: {d['confirmed']} confirmed, {d['open']} awaiting "
            f"confirmation ({d['overdue']} overdue, {d['escalated']} escalated, "
            f"{d['objected']} objected to), {d['closed']} closed."
        ]
    else:
        lines = [
            f"共下达部门职责 {d['assigned']} 项：已确认 {d['confirmed']} 项，待确认 {d['open']} 项"
            f"（其中逾期 {d['overdue']} 项、已上报升级 {d['escalated']} 项、"
            f"有异议 {d['objected']} 项），"
            f"已关闭 {d['closed']} 项。"
        ]
    if not d["waiting"]:
        lines.append(
            "Every department has confirmed its duties." if lang == "en" else "各部门均已确认职责。"
        )
        return "\n".join(lines)

    parts = []
    for dept in d["waiting"]:
        marks = []
        if lang == "en":
            marks += [f"{dept['escalated']} escalated"] if dept["escalated"] else []
            marks += [f"{dept['overdue']} overdue"] if dept["overdue"] else []
            marks += [f"{dept['objected']} objected to"] if dept["objected"] else []
            parts.append(
                f"{_name(dept, lang)} ({dept['open']}{', ' if marks else ''}{', '.join(marks)})"
            )
        else:
            marks += [f"已升级 {dept['escalated']} 项"] if dept["escalated"] else []
            marks += [f"逾期 {dept['overdue']} 项"] if dept["overdue"] else []
            marks += [f"有异议 {dept['objected']} 项"] if dept["objected"] else []
            parts.append(
                f"{dept['name']}（{dept['open']} 项{'，' if marks else ''}{'，'.join(marks)}）"
            )
    if lang == "en":
        lines.append("Not yet confirmed: " + "; ".join(parts) + ".")
    else:
        lines.append("尚未确认的部门：" + "；".join(parts) + "。")
    return "\n".join(lines)


def _meal_label(row, lang):
    day = row["day"]
    if lang == "en":
        return f"{day} {_word(MEAL_NAMES, row['meal'], lang)}"
    _year, month, dom = day.split("-")
    return f"{int(month)}月{int(dom)}日{_word(MEAL_NAMES, row['meal'], lang)}"


def _meals_text(f, lang):
    t = f["totals"]
    if lang == "en":
        lines = [
            f"Meals demanded {t['demand_meals']}, allocated {t['allocated_meals']}, delivered "
            f"{t['delivered_meals']}, not delivered {t['unmet_meals']}; "
            f"{t['suppliers_suspended']} suppliers suspended."
        ]
    else:
        lines = [
            f"累计需求 {t['demand_meals']} 份，已分配 {t['allocated_meals']} 份，已送达 "
            f"{t['delivered_meals']} 份，未送达 {t['unmet_meals']} 份；暂停供应商 "
            f"{t['suppliers_suspended']} 家。"
        ]
    short = [row for row in f["meals"] if row["unmet"]]
    if short:
        listed = short[:6]
        if lang == "en":
            parts = [f"{_meal_label(r, lang)}: {r['unmet']} short" for r in listed]
            more = f" and {len(short) - len(listed)} more" if len(short) > len(listed) else ""
            lines.append("Meals served with a shortfall: " + "; ".join(parts) + more + ".")
        else:
            parts = [f"{_meal_label(r, lang)}缺 {r['unmet']} 份" for r in listed]
            more = f"等 {len(short)} 个餐次" if len(short) > len(listed) else ""
            lines.append("已过供餐时间仍有缺口的餐次：" + "；".join(parts) + more + "。")
    elif f["meals"]:
        lines.append(
            "Every meal served so far was delivered in full."
            if lang == "en"
            else "已过供餐时间的餐次均已足额送达。"
        )
    lines.append("Each meal is shown in the table below." if lang == "en" else "各餐次明细见下表。")
    return "\n".join(lines)


def _food_safety_text(f, lang):
    s = f["food_safety"]
    en = lang == "en"
    lines = [
        f"{s['tests_run']} rapid tests run, {s['tests_failed']} failed."
        if en
        else f"累计开展快检 {s['tests_run']} 批次，不合格 {s['tests_failed']} 批次。"
    ]
    for t in s["failed"]:
        value, limit = _number(t["value"]), _number(t["limit"])
        if en:
            lines.append(
                f"Failed: {t['supplier_name']}, {t['analyte']} {value} {t['unit']} "
                f"(limit {limit} {t['unit']}), {_local(t['tested_at'])}."
            )
        else:
            lines.append(
                f"不合格：{t['supplier_name']}，{t['analyte']} 检出 {value}{t['unit']}"
                f"（限值 {limit}{t['unit']}），{_local(t['tested_at'])}。"
            )
    if s["suspended"]:
        parts = []
        for x in s["suspended"]:
            if en:
                lifted = f", lifted {_local(x['lifted_at'])}" if x["lifted_at"] else ""
                parts.append(f"{x['supplier_name']} (since {_local(x['since'])}{lifted})")
            else:
                lifted = f"，{_local(x['lifted_at'])} 已恢复" if x["lifted_at"] else ""
                parts.append(f"{x['supplier_name']}（{_local(x['since'])} 起{lifted}）")
        if en:
            lines.append("Suppliers suspended: " + "; ".join(parts) + ".")
        else:
            lines.append("暂停供应的供应商：" + "；".join(parts) + "。")
    else:
        lines.append("No supplier suspended." if en else "无供应商被暂停供应。")
    return "\n".join(lines)


def _tasks_text(f, lang):
    tasks = f["tasks"]
    en = lang == "en"
    if not tasks:
        return "No coordination task is open." if en else "当前无未办结的协调任务。"
    late = sum(1 for t in tasks if t["overdue"])
    lines = [
        f"{len(tasks)} coordination tasks open, {late} overdue:"
        if en
        else f"未办结协调任务 {len(tasks)} 项，其中逾期 {late} 项："
    ]
    for t in tasks:
        names = (", " if en else "、").join(_name(d, lang) for d in t["departments"]) or "-"
        due = _local(t["due_at"]) or "-"
        if en:
            mark = ", overdue" if t["overdue"] else ""
            lines.append(
                f"- [{t['priority'] or '-'}] {t['title']} ({names}; {t['status']}; due {due}{mark})"
            )
        else:
            mark = "，已逾期" if t["overdue"] else ""
            lines.append(
                f"· 【{t['priority'] or '-'}】{t['title']}（{names}；{t['status']}；"
                f"期限 {due}{mark}）"
            )
    return "\n".join(lines)


def _change_value(key, value, lang):
    if value is None:
        return "-" if key != "level" else ("none" if lang == "en" else "无")
    return f"{value}" + ("" if lang == "en" or key != "level" else "级")


def _changes_text(f, lang):
    en = lang == "en"
    previous = f["previous"]
    lines = []
    if previous is None:
        lines.append("This is the first report." if en else "本期为首期报告。")
    else:
        until = _local(previous["until"])
        lines.append(
            f"Since report no. {previous['number']} (to {until}):"
            if en
            else f"与第{previous['number']}期（截至 {until}）相比："
        )
        for change in f["changes"]:
            key = change["figure"]
            label = _word(CHANGE_FIGURES, key, lang)
            before = _change_value(key, change["before"], lang)
            after = _change_value(key, change["after"], lang)
            delta = ""
            if isinstance(change["before"], int) and isinstance(change["after"], int):
                delta = f"（{change['after'] - change['before']:+d}）"
                delta = f" ({change['after'] - change['before']:+d})" if en else delta
            lines.append(
                f"- {label}: {before} -> {after}{delta}"
                if en
                else f"· {label}：由 {before} 变为 {after}{delta}"
            )
        if not f["changes"]:
            lines.append("No figure changed." if en else "各项数字均无变化。")

    timeline = f["timeline"]
    since, until = _local(f["period"]["since"]), _local(f["period"]["until"])
    if not timeline["count"]:
        lines.append(
            f"Nothing recorded from {since} to {until}."
            if en
            else f"{since} 至 {until} 期间无新增事项。"
        )
        return "\n".join(lines)
    lines.append(
        f"Recorded from {since} to {until}: {timeline['count']} entries."
        if en
        else f"{since} 至 {until} 期间新增事项 {timeline['count']} 条。"
    )
    if timeline.get("routine"):
        counts = [(_word(EVENT_NAMES, e, lang), n) for e, n in timeline["routine"].items()]
        lines.append(
            "Among them: " + ", ".join(f"{name} {n}" for name, n in counts) + "."
            if en
            else "其中" + "、".join(f"{name} {n} 条" for name, n in counts) + "。"
        )
    for entry in timeline["entries"]:
        event = _word(EVENT_NAMES, entry["event"], lang)
        detail = f"{'：' if not en else ': '}{entry['detail']}" if entry["detail"] else ""
        lines.append(f"{'- ' if en else '· '}{_local(entry['at'])} {event}{detail}")
    left = timeline.get("notable", 0) - len(timeline["entries"])
    if left > 0:
        lines.append(f"... and {left} more." if en else f"……另有 {left} 条，见事件时间线。")
    return "\n".join(lines)


_WRITERS = {
    "level": _level_text,
    "duties": _duties_text,
    "meals": _meals_text,
    "food_safety": _food_safety_text,
    "tasks": _tasks_text,
    "changes": _changes_text,
}


def generate_sections(figures, lang="zh"):
    """Each section's text, written from the figures in Chinese (or English)."""
    return {key: _WRITERS[key](figures, lang) for key in SECTION_KEYS}


# Who may do what ----------------------------------------------------------------------


def office_department_id(incident):
    """The department that runs the command's office for this incident."""
    from app.organisation.services import command_post, department

    post = command_post(incident)
    if post is not None and post.office_department_id is not None:
        return post.office_department_id
    code = incident.plan.document.get("command", {}).get("office_department")
    found = department(code) if code else None
    return found.id if found is not None else None


def may_edit(user, incident):
    """The commander, or a liaison of the command's office; None is the system (the drill
    engine playing the commander)."""
    if user is None or user.role == "commander":
        return True
    return (
        user.role == "liaison"
        and user.department_id is not None
        and user.department_id == office_department_id(incident)
    )


def may_decide(user):
    """Approving and sending is the commander's alone."""
    return user is None or user.role == "commander"


def _actor(user, incident, at):
    """Who acted, as (user id, name): the user, or the incident's commander for the
    system."""
    if user is not None:
        return user.id, (user.display_name or user.username)[:100]
    from app.organisation.services import commander_of

    commander = commander_of(incident, at)
    return None, (commander.name if commander is not None else "system")[:100]


# The life of a report -----------------------------------------------------------------


def reports_of(incident):
    """Every report of an incident, newest first."""
    return db.session.scalars(
        select(SituationReport)
        .filter_by(incident_id=incident.id)
        .order_by(SituationReport.number.desc(), SituationReport.id.desc())
    ).all()


def last_sent(incident):
    return db.session.scalar(
        select(SituationReport)
        .filter_by(incident_id=incident.id, status="sent")
        .order_by(SituationReport.number.desc())
        .limit(1)
    )


def version_of(report, number=None):
    """A version of the report (the latest by default), or None."""
    number = report.current_version if number is None else number
    return db.session.scalar(select(SitrepVersion).filter_by(report_id=report.id, number=number))


def sitreps_issued(incident):
    """How many reports of the incident were sent."""
    count = select(func.count(SituationReport.id)).filter_by(incident_id=incident.id, status="sent")
    return int(db.session.scalar(count) or 0)


def _incident_of(report):
    from app.incidents.models import Incident

    return db.session.get(Incident, report.incident_id)


def _lock(incident):
    """Drafts of one incident go one after another (PostgreSQL; SQLite's writers already
    do), so two cannot take the same number."""
    from app.incidents.models import Incident

    db.session.execute(select(Incident.id).where(Incident.id == incident.id).with_for_update())


def draft_sitrep(incident, at, *, user=None):
    """Draft the next report from live data, as version 1; a report not yet sent is
    superseded by it and leaves it its number."""
    from app.incidents.services import record

    if user is not None and not may_edit(user, incident):
        raise Forbidden("situation reports are drafted by the commander or the command's office")
    _lock(incident)
    previous = last_sent(incident)
    since = previous.period_end if previous else (incident.activated_at or incident.opened_at)
    since = min(since, at)
    figures = collect_figures(incident, at, since, previous)
    pending = db.session.scalars(
        select(SituationReport).where(
            SituationReport.incident_id == incident.id,
            SituationReport.status.in_(("draft", "approved")),
        )
    ).all()
    for old in pending:
        old.status = "superseded"
    db.session.flush()

    report = SituationReport(
        incident_id=incident.id,
        number=(previous.number + 1) if previous else 1,
        status="draft",
        period_start=since,
        period_end=at,
        drafted_at=at,
        figures=figures,
        previous_id=previous.id if previous else None,
        current_version=1,
    )
    db.session.add(report)
    db.session.flush()
    for old in pending:
        old.superseded_by_id = report.id
    author_id, author_name = _actor(user, incident, at) if user else (None, "system")
    db.session.add(
        SitrepVersion(
            report_id=report.id,
            number=1,
            sections=generate_sections(figures, "zh"),
            author_id=author_id,
            author_name=author_name,
            note="drafted from live data",
            created_at=at,
        )
    )
    db.session.flush()

    record(incident, "sitrep_drafted", f"no. {report.number}, report {report.id}", at)
    _tell_drafted(report, incident, at)
    log.info(
        "incident %s: situation report %s drafted as no. %s", incident.id, report.id, report.number
    )
    return report


def draft_on_schedule(incident, *, due_at, at):
    """The plan's schedule: draft a report and schedule the next, keeping the cadence
    from the instant this one was due."""
    from app.clock.services import schedule

    report = draft_sitrep(incident, at)
    every = incident.plan.document.get("sitreps", {}).get("every_hours")
    if every and incident.status != "closed":
        step = timedelta(hours=every)
        following = due_at + step
        while following <= at:
            following += step
        schedule("sitrep", incident, incident.id, following)
    return report


def check_sections(sections):
    """The section texts of a save, trimmed, with \\r\\n made \\n; refuses an unknown key,
    a text that is not a string, too long, or holds control characters."""
    if not isinstance(sections, dict):
        raise InvalidInput("sections refused", {"sections": ["must be a mapping of texts"]})
    errors, clean = {}, {}
    for key, text in sections.items():
        field = f"sections.{key}"
        if key not in SECTION_KEYS:
            errors[field] = [f"unknown section; one of {', '.join(SECTION_KEYS)}"]
        elif not isinstance(text, str):
            errors[field] = ["must be text"]
        elif len(text) > MAX_SECTION_CHARS:
            errors[field] = [f"at most {MAX_SECTION_CHARS} characters"]
        else:
            text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
            if _CONTROL.search(text):
                errors[field] = ["must not hold control characters (line breaks and tabs may)"]
            clean[key] = text
    if errors:
        raise InvalidInput("sections refused", errors)
    return clean


def _editable(report):
    if report.status == "sent":
        raise Conflict(
            f"report no. {report.number} was sent and is final; a correction is the next report"
        )
    if report.status == "superseded":
        raise Conflict(
            f"report {report.id} was superseded by report {report.superseded_by_id}; edit that one"
        )


def edit_sitrep(report, sections, *, base_version, user, at, note=None):
    """Save section texts as a new version made from `base_version`; a save from an older
    version is refused, so two editors at once do not overwrite each other unseen. Returns
    the version (the current one when nothing changed)."""
    incident = _incident_of(report)
    if not may_edit(user, incident):
        raise Forbidden("situation reports are edited by the commander or the command's office")
    clean = check_sections(sections)
    if note is not None:
        note = note.strip() or None
        if note and (len(note) > MAX_NOTE_CHARS or _CONTROL.search(note) or "\n" in note):
            raise InvalidInput("note refused", {"note": [f"one line, at most {MAX_NOTE_CHARS}"]})
    _editable(report)
    if base_version != report.current_version:
        raise Conflict(
            f"report {report.id} is at version {report.current_version} now, not {base_version}: "
            "reload it and make the change again"
        )
    base = version_of(report)
    merged = {**base.sections, **clean}
    if merged == base.sections and not note:
        return base

    claimed = db.session.execute(
        update(SituationReport)
        .where(
            SituationReport.id == report.id,
            SituationReport.current_version == base_version,
            SituationReport.status.in_(("draft", "approved")),
        )
        .values(
            current_version=base_version + 1,
            status="draft",
            approved_version=None,
            approved_by_id=None,
            approved_by_name=None,
            approved_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.refresh(report)
        _editable(report)
        raise Conflict(f"report {report.id} was changed meanwhile; reload it")
    db.session.refresh(report)
    author_id, author_name = _actor(user, incident, at)
    version = SitrepVersion(
        report_id=report.id,
        number=base_version + 1,
        sections=merged,
        author_id=author_id,
        author_name=author_name,
        note=note,
        created_at=at,
    )
    db.session.add(version)
    db.session.flush()
    log.info("situation report %s: version %s saved by %s", report.id, version.number, author_name)
    return version


def approve_sitrep(report, *, version, user, at):
    """The commander approves a version, which must be the latest; approving it again
    changes nothing."""
    from app.incidents.services import record

    if not may_decide(user):
        raise Forbidden("only the commander approves a situation report")
    _editable(report)
    if version != report.current_version:
        raise Conflict(
            f"version {version} is not the latest of report {report.id} "
            f"(version {report.current_version}): read it before approving"
        )
    if report.status == "approved" and report.approved_version == version:
        return report
    incident = _incident_of(report)
    report.approved_by_id, report.approved_by_name = _actor(user, incident, at)
    report.status = "approved"
    report.approved_version = version
    report.approved_at = at
    db.session.flush()
    record(incident, "sitrep_approved", f"no. {report.number}, version {version}", at)
    return report


def recipients(incident, at):
    """Who receives a sent report: the commander, the office's liaison on duty, and the
    liaison on duty of each department the plan's `sitreps.recipients` names; each once."""
    from app.organisation.services import commander_of, department, liaison_of, office_liaison

    people = [commander_of(incident, at), office_liaison(incident, at)]
    for code in incident.plan.document.get("sitreps", {}).get("recipients", []):
        found = department(code)
        if found is not None:
            people.append(liaison_of(found.id, at))
    seen, unique = set(), []
    for person in people:
        if person is not None and person.id not in seen:
            seen.add(person.id)
            unique.append(person)
    return unique


def send_sitrep(report, *, user, at):
    """The commander sends the approved version to its recipients and the report is final;
    sending it again changes nothing and tells nobody twice."""
    from app.incidents.services import record

    if not may_decide(user):
        raise Forbidden("only the commander sends a situation report")
    if report.status == "sent":
        return report
    if report.status != "approved":
        raise Conflict(f"report no. {report.number} is {report.status}: approve a version first")
    incident = _incident_of(report)
    by_id, by_name = _actor(user, incident, at)
    claimed = db.session.execute(
        update(SituationReport)
        .where(
            SituationReport.id == report.id,
            SituationReport.status == "approved",
            SituationReport.approved_version == report.approved_version,
        )
        .values(
            status="sent",
            sent_version=report.approved_version,
            sent_by_id=by_id,
            sent_by_name=by_name,
            sent_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(report)
    if claimed.rowcount != 1:
        if report.status == "sent":
            return report
        raise Conflict(f"report no. {report.number} changed meanwhile; reload it")

    _tell_sent(report, incident, at)
    record(incident, "sitrep_issued", f"no. {report.number}, version {report.sent_version}", at)
    log.info(
        "incident %s: situation report no. %s sent (version %s)",
        incident.id,
        report.number,
        report.sent_version,
    )
    return report


def _tell_drafted(report, incident, at):
    from app.coordination.services import notify
    from app.organisation.services import commander_of, office_liaison

    mark = f"{DRILL_MARK} " if incident.drill else ""
    for person in {
        p.id: p for p in (commander_of(incident, at), office_liaison(incident, at)) if p is not None
    }.values():
        notify(
            key=f"sitrep-draft-{report.id}-p{person.id}",
            kind="sitrep_draft",
            subject=f"{mark}信息专报 第{report.number}期 草稿待审核",
            body=f"草稿已根据 {_local(report.figures['period']['until'])} 的数据生成。",
            incident=incident,
            person=person,
            at=at,
            data={"sitrep_id": report.id, "number": report.number},
        )


def _tell_sent(report, incident, at):
    from app.coordination.services import notify

    body = plain_text(report, report.sent_version)
    for person in recipients(incident, at):
        notify(
            key=f"sitrep-{incident.id}-{report.number}-v{report.sent_version}-p{person.id}",
            kind="sitrep",
            subject=title(report, "zh"),
            body=body,
            incident=incident,
            person=person,
            at=at,
            data={
                "sitrep_id": report.id,
                "number": report.number,
                "version": report.sent_version,
            },
        )


# Reading and exporting ----------------------------------------------------------------


def title(report, lang="zh"):
    """The report's title, marked as a drill where it is one."""
    figures = report.figures
    drill = figures.get("incident", {}).get("drill")
    region = _name(figures.get("region", {}), lang)
    if lang == "en":
        mark = f"{DRILL_MARK} [Drill] " if drill else ""
        return f"{mark}{region} catering supply situation report no. {report.number}".strip()
    mark = f"{DRILL_MARK} " if drill else ""
    return f"{mark}{region}餐饮保供信息专报 第{report.number}期"


def section_texts(report, version, lang="zh"):
    """Each section's text as shown: as saved, or, in English, the English rendering of a
    section nobody edited. Returns (key, title, text, edited) tuples in order."""
    generated = generate_sections(report.figures, "zh")
    english = generate_sections(report.figures, "en") if lang == "en" else {}
    rows = []
    for key in SECTION_KEYS:
        text = version.sections.get(key, "")
        edited = text != generated[key]
        if lang == "en" and not edited:
            text = english[key]
        rows.append((key, SECTION_TITLES[key]["en" if lang == "en" else "zh"], text, edited))
    return rows


def meal_table(report, lang="zh"):
    """The meals of each day as a table: header and rows of text."""
    en = lang == "en"
    header = (
        ["Day", "Meal", "Demanded", "Allocated", "Delivered", "Not delivered"]
        if en
        else ["日期", "餐次", "需求（份）", "已分配（份）", "已送达（份）", "缺口（份）"]
    )
    rows = [
        [
            row["day"],
            _word(MEAL_NAMES, row["meal"], lang),
            str(row["demand"]),
            str(row["allocated"]),
            str(row["delivered"]),
            ("to come" if en else "待供") if row["unmet"] is None else str(row["unmet"]),
        ]
        for row in report.figures.get("meals", [])
    ]
    return {"header": header, "rows": rows}


def document(report, lang="zh", version_number=None):
    """Everything a page, the printable page and the Word document show, as plain data."""
    from flask import current_app

    en = lang == "en"
    version = version_of(report, version_number)
    figures = report.figures
    office = figures.get("office")
    office_name = _name(office, lang) if office else ""
    status = _word(STATUS_NAMES, report.status, lang)
    issued = _local(isoformat_utc(report.sent_at or report.drafted_at))
    since, until = _local(figures["period"]["since"]), _local(figures["period"]["until"])
    zone = current_app.config["BAOGONG_TIMEZONE"]

    sections = []
    for key, heading, text, edited in section_texts(report, version, lang):
        sections.append(
            {
                "key": key,
                "title": heading,
                "edited": edited,
                "paragraphs": [line for line in text.split("\n") if line.strip()],
                "table": meal_table(report, lang)
                if key == "meals" and figures.get("meals")
                else None,
            }
        )

    made = f"{_local(isoformat_utc(version.created_at))}, {version.author_name}"
    if en:
        version_line = f"Version {version.number} of {report.current_version} ({made})"
        approval = (
            f"Approved: version {report.approved_version} by {report.approved_by_name}, "
            f"{_local(isoformat_utc(report.approved_at))}"
            if report.approved_version
            else "Not approved"
        )
        sent = (
            f"Sent: version {report.sent_version} by {report.sent_by_name}, "
            f"{_local(isoformat_utc(report.sent_at))}"
            if report.sent_at
            else "Not sent"
        )
        meta = {
            "office": f"Issued by: {office_name}" if office_name else "",
            "time": f"Time: {issued} ({zone})",
            "period": f"Period: {since} to {until}",
            "status": f"Status: {status}",
        }
    else:
        version_line = f"第 {version.number} 版（共 {report.current_version} 版；{made}）"
        approval = (
            f"审核：{report.approved_by_name} 于 {_local(isoformat_utc(report.approved_at))} "
            f"批准第 {report.approved_version} 版"
            if report.approved_version
            else "未审核"
        )
        sent = (
            f"报送：{report.sent_by_name} 于 {_local(isoformat_utc(report.sent_at))} "
            f"报送第 {report.sent_version} 版"
            if report.sent_at
            else "未报送"
        )
        meta = {
            "office": f"编发：{office_name}（指挥部办公室）" if office_name else "",
            "time": f"时间：{issued}（{zone}）",
            "period": f"报告期：{since} 至 {until}",
            "status": f"状态：{status}",
        }
    return {
        "id": report.id,
        "title": title(report, lang),
        "subtitle": figures.get("incident", {}).get("title", ""),
        "drill": bool(figures.get("incident", {}).get("drill")),
        "meta": meta,
        "sections": sections,
        "version": version.number,
        "version_line": version_line,
        "approval_line": approval,
        "sent_line": sent,
        "lang": "en" if en else "zh-CN",
    }


def plain_text(report, version_number=None, lang="zh"):
    """The report as plain text, for a notification's body."""
    doc = document(report, lang, version_number)
    lines = [doc["title"], doc["subtitle"], *[v for v in doc["meta"].values() if v], ""]
    for section in doc["sections"]:
        lines += [section["title"], *section["paragraphs"]]
        if section["table"]:
            lines += ["\t".join(section["table"]["header"])]
            lines += ["\t".join(row) for row in section["table"]["rows"]]
        lines.append("")
    lines += [doc["version_line"], doc["approval_line"], doc["sent_line"]]
    return "\n".join(lines)


# XML 1.0 refuses these even escaped; the generated parts may quote a name typed long ago.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_safe(text):
    return _NOT_XML.sub("", text)


def docx_bytes(report, lang="zh", version_number=None):
    """The report as a Word document (.docx): title, office and time, each section as a
    heading and paragraphs, the meals as a table, the version and approval lines."""
    import io

    from docx import Document
    from docx.oxml.ns import qn
    from docx.shared import Pt

    doc = document(report, lang, version_number)
    word = Document()
    word.core_properties.title = _xml_safe(doc["title"])
    word.core_properties.language = doc["lang"]
    for style_name in ("Normal", "Title", "Heading 1", "Heading 2"):
        style = word.styles[style_name]
        style.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), "SimSun")
    word.styles["Normal"].font.size = Pt(12)

    word.add_heading(_xml_safe(doc["title"]), level=0)
    if doc["subtitle"]:
        word.add_paragraph(_xml_safe(doc["subtitle"]))
    for line in doc["meta"].values():
        if line:
            word.add_paragraph(_xml_safe(line))
    for section in doc["sections"]:
        word.add_heading(_xml_safe(section["title"]), level=1)
        for paragraph in section["paragraphs"]:
            word.add_paragraph(_xml_safe(paragraph))
        table = section["table"]
        if table:
            grid = word.add_table(rows=1, cols=len(table["header"]))
            grid.style = "Table Grid"
            for cell, text in zip(grid.rows[0].cells, table["header"], strict=True):
                cell.text = _xml_safe(text)
            for row in table["rows"]:
                for cell, text in zip(grid.add_row().cells, row, strict=True):
                    cell.text = _xml_safe(text)
    word.add_paragraph("")
    for line in (doc["version_line"], doc["approval_line"], doc["sent_line"]):
        word.add_paragraph(_xml_safe(line))

    buffer = io.BytesIO()
    word.save(buffer)
    return buffer.getvalue()
