"""A situation report as people read it: the title, the sections of a version with the
meals table, the version and approval lines; as plain data for the pages, as plain text
for a notification, and as a Word document."""

import re

from app.coordination.sitrep_text import (
    DRILL_MARK,
    MEAL_NAMES,
    SECTION_KEYS,
    SECTION_TITLES,
    STATUS_NAMES,
    SYSTEM,
    generate_sections,
    local_minute,
    name_in,
    word,
)
from app.types import isoformat_utc


def title(report, lang="zh"):
    """The report's title, marked as a drill where it is one."""
    figures = report.figures
    drill = figures.get("incident", {}).get("drill")
    region = name_in(figures.get("region", {}), lang)
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
            word(MEAL_NAMES, row["meal"], lang),
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
    number = report.current_version if version_number is None else version_number
    version = next(v for v in report.versions if v.number == number)
    figures = report.figures
    office = figures.get("office")
    office_name = name_in(office, lang) if office else ""
    status = word(STATUS_NAMES, report.status, lang)
    issued = local_minute(isoformat_utc(report.sent_at or report.drafted_at))
    since, until = (
        local_minute(figures["period"]["since"]),
        local_minute(figures["period"]["until"]),
    )
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

    author = version.author_name
    author = (SYSTEM[1] if en else SYSTEM[0]) if author == "system" else author
    made = local_minute(isoformat_utc(version.created_at)) + (", " if en else "，") + author
    if en:
        version_line = f"Version {version.number} of {report.current_version} ({made})"
        approval = (
            f"Approved: version {report.approved_version} by {report.approved_by_name}, "
            f"{local_minute(isoformat_utc(report.approved_at))}"
            if report.approved_version
            else "Not approved"
        )
        sent = (
            f"Sent: version {report.sent_version} by {report.sent_by_name}, "
            f"{local_minute(isoformat_utc(report.sent_at))}"
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
            f"审核：{report.approved_by_name} 于 {local_minute(isoformat_utc(report.approved_at))} "
            f"批准第 {report.approved_version} 版"
            if report.approved_version
            else "未审核"
        )
        sent = (
            f"报送：{report.sent_by_name} 于 {local_minute(isoformat_utc(report.sent_at))} "
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
