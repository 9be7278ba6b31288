"""The words of a situation report: section titles and the text written from a report's
figures, in Chinese (stored) or English (shown on request)."""

SECTION_KEYS = ("level", "duties", "meals", "food_safety", "tasks", "changes")
SECTION_TITLES = {
    "level": {"zh": "一、响应级别与阶段", "en": "1. Response level and phase"},
    "duties": {"zh": "二、部门职责落实", "en": "2. Departments' duties"},
    "meals": {"zh": "三、餐食需求与供应", "en": "3. Meal demand and deliveries"},
    "food_safety": {"zh": "四、食品安全", "en": "4. Food safety"},
    "tasks": {"zh": "五、未办结协调任务", "en": "5. Open coordination tasks"},
    "changes": {"zh": "六、上期以来变化", "en": "6. Changes since the last report"},
}
DRILL_MARK = "[演练]"

# The words of each code, as (Chinese, English).
SYSTEM = ("系统", "system")
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
    "task_created": ("下达协同任务", "coordination task set"),
    "task_accepted": ("协同任务接收", "coordination task accepted"),
    "task_declined": ("协同任务退回", "coordination task declined"),
    "task_progress": ("协同任务进展", "coordination task progress"),
    "task_share_done": ("部门承办完成", "department's part done"),
    "task_done": ("协同任务办结", "coordination task done"),
    "task_reassigned": ("协同任务改派", "coordination task reassigned"),
    "task_cancelled": ("协同任务撤销", "coordination task cancelled"),
    "task_overdue": ("协同任务逾期提醒", "coordination task overdue, reminded"),
    "task_escalated": ("协同任务上报升级", "coordination task escalated"),
    "sitrep_drafted": ("信息专报起草", "situation report drafted"),
    "sitrep_approved": ("信息专报审核", "situation report approved"),
    "sitrep_issued": ("信息专报报送", "situation report issued"),
}
TASK_PRIORITY_WORDS = {
    "urgent": ("紧急", "urgent"),
    "routine": ("一般", "routine"),
    "low": ("低", "low"),
}
TASK_STATUS_WORDS = {
    "open": ("待接收", "open"),
    "in_progress": ("办理中", "in progress"),
    "done": ("已办结", "done"),
    "cancelled": ("已撤销", "cancelled"),
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
    "tasks_overdue": ("逾期协调任务", "overdue coordination tasks"),
}


def word(table, code, lang):
    zh, en = table.get(code, (code, code))
    return en if lang == "en" else zh


def local_minute(iso):
    """An ISO UTC instant as the command's local wall time, to the minute."""
    from datetime import datetime

    from app.types import local_iso

    if not iso:
        return ""
    value = datetime.fromisoformat(iso.replace("Z", "+00:00")) if isinstance(iso, str) else iso
    return local_iso(value).replace("T", " ")[:16]


def name_in(entry, lang):
    return (entry.get("name_en") if lang == "en" else None) or entry.get("name") or ""


def _number(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _level_text(f, lang):
    level = f["level"]
    en = lang == "en"
    lines = []
    if level["declared"]:
        name = f"（{level['declared_name']}）" if level["declared_name"] and not en else ""
        by = word(COMMANDED_BY, level["commanded_by"], lang) if level["commanded_by"] else ""
        if en:
            line = f"Response level {level['declared']}"
            named = level.get("declared_name_en") or level["declared_name"]
            line += f" ({named})" if named else ""
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
    phase = word(PHASES, level["phase"], lang) if level["phase"] else "-"
    status = word(INCIDENT_STATUSES, level["status"], lang)
    lines.append(
        f"Phase: {phase}; status: {status}." if en else f"当前阶段：{phase}；事件状态：{status}。"
    )
    return "\n".join(lines)


def _duties_text(f, lang):
    d = f["duties"]
    if not d["assigned"]:
        return "No duties assigned." if lang == "en" else "尚未下达部门职责。"
    stages = (
        ("overdue", "逾期", "overdue"),
        ("escalated", "已上报升级", "escalated"),
        ("objected", "有异议", "objected to"),
    )
    if lang == "en":
        among = [f"{d[key]} {en}" for key, _zh, en in stages if d[key]]
        line = f"Duties assigned: {d['assigned']}; confirmed: {d['confirmed']}; awaiting "
        line += f"confirmation: {d['open']}" + (f" ({', '.join(among)})" if among else "")
        line += f"; closed: {d['closed']}." if d["closed"] else "."
    else:
        among = [f"{zh} {d[key]} 项" for key, zh, _en in stages if d[key]]
        line = (
            f"共下达部门职责 {d['assigned']} 项：已确认 {d['confirmed']} 项，待确认 {d['open']} 项"
        )
        line += f"（其中{'、'.join(among)}）" if among else ""
        line += f"，已关闭 {d['closed']} 项。" if d["closed"] else "。"
    lines = [line]
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
                f"{name_in(dept, lang)} ({dept['open']}{', ' if marks else ''}{', '.join(marks)})"
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
        return f"{day} {word(MEAL_NAMES, row['meal'], lang)}"
    _year, month, dom = day.split("-")
    return f"{int(month)}月{int(dom)}日{word(MEAL_NAMES, row['meal'], lang)}"


def _meals_text(f, lang):
    t = f["totals"]
    if lang == "en":
        lines = [
            f"Meals demanded {t['demand_meals']}, allocated {t['allocated_meals']}, delivered "
            f"{t['delivered_meals']}, not delivered {t['unmet_meals']}; suppliers suspended: "
            f"{t['suppliers_suspended']}."
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
        f"Rapid tests run: {s['tests_run']}; failed: {s['tests_failed']}."
        if en
        else f"累计开展快检 {s['tests_run']} 批次，不合格 {s['tests_failed']} 批次。"
    ]
    for t in s["failed"]:
        value, limit = _number(t["value"]), _number(t["limit"])
        if en:
            lines.append(
                f"Failed: {t['supplier_name']}, {t['analyte']} {value} {t['unit']} "
                f"(limit {limit} {t['unit']}), {local_minute(t['tested_at'])}."
            )
        else:
            lines.append(
                f"不合格：{t['supplier_name']}，{t['analyte']} 检出 {value}{t['unit']}"
                f"（限值 {limit}{t['unit']}），{local_minute(t['tested_at'])}。"
            )
    if s["suspended"]:
        parts = []
        for x in s["suspended"]:
            if en:
                lifted = f", lifted {local_minute(x['lifted_at'])}" if x["lifted_at"] else ""
                parts.append(f"{x['supplier_name']} (since {local_minute(x['since'])}{lifted})")
            else:
                lifted = f"，{local_minute(x['lifted_at'])} 已恢复" if x["lifted_at"] else ""
                parts.append(f"{x['supplier_name']}（{local_minute(x['since'])} 起{lifted}）")
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
        f"Coordination tasks open: {len(tasks)}; overdue: {late}."
        if en
        else f"未办结协调任务 {len(tasks)} 项，其中逾期 {late} 项。"
    ]
    for t in tasks:
        names = (", " if en else "、").join(name_in(d, lang) for d in t["departments"]) or "-"
        due = local_minute(t["due_at"]) or "-"
        priority = word(TASK_PRIORITY_WORDS, t["priority"], lang) if t["priority"] else "-"
        status = word(TASK_STATUS_WORDS, t["status"], lang) if t["status"] else "-"
        if en:
            mark = ", overdue" if t["overdue"] else ""
            lines.append(f"- [{priority}] {t['title']} ({names}; {status}; due {due}{mark})")
        else:
            mark = "，已逾期" if t["overdue"] else ""
            lines.append(f"· 【{priority}】{t['title']}（{names}；{status}；期限 {due}{mark}）")
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
        until = local_minute(previous["until"])
        lines.append(
            f"Since report no. {previous['number']} (to {until}):"
            if en
            else f"与第{previous['number']}期（截至 {until}）相比："
        )
        for change in f["changes"]:
            key = change["figure"]
            label = word(CHANGE_FIGURES, key, lang)
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
    since, until = local_minute(f["period"]["since"]), local_minute(f["period"]["until"])
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
        counts = [(word(EVENT_NAMES, e, lang), n) for e, n in timeline["routine"].items()]
        lines.append(
            "Among them: " + ", ".join(f"{name} {n}" for name, n in counts) + "."
            if en
            else "其中" + "、".join(f"{name} {n} 条" for name, n in counts) + "。"
        )
    for entry in timeline["entries"]:
        event = word(EVENT_NAMES, entry["event"], lang)
        # TODO: a timeline line's detail is the modules' own English shorthand (codes and
        # "a -> b"), so a Chinese report quotes it as written; readers see mixed languages.
        detail = f"{'：' if not en else ': '}{entry['detail']}" if entry["detail"] else ""
        lines.append(f"{'- ' if en else '· '}{local_minute(entry['at'])} {event}{detail}")
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
