"""`flask trace`: the trace of what reached a demand point, as one JSON line."""

import re

import click

from app.api.routes import MAX_ID
from app.cli import _instant, _print_json, handles_errors
from app.errors import InvalidInput
from app.extensions import db


def _point(text):
    from app.supply.models import DemandPoint

    if not re.fullmatch(r"[0-9]{1,10}", text) or not 1 <= int(text) <= MAX_ID:
        raise InvalidInput(
            "trace refused", {"--demand-point": [f"{text!r} is not a positive whole number"]}
        )
    point = db.session.get(DemandPoint, int(text))
    if point is None:
        raise InvalidInput("trace refused", {"--demand-point": [f"no demand point {text}"]})
    return point


def _time(text, option):
    if text is None:
        return None
    value = _instant(text)
    if value is None:
        raise InvalidInput(
            "trace refused",
            {option: [f"{text!r} is not an ISO-8601 instant with its UTC offset"]},
        )
    return value


@click.command("trace")
@click.option("--demand-point", "point_text", required=True, metavar="ID",
              help="the demand point's database id")  # fmt: skip
@click.option("--from", "start_text", metavar="ISO-TIME",
              help="delivered at or after this instant")  # fmt: skip
@click.option("--to", "end_text", metavar="ISO-TIME", help="delivered at or before this instant")
@handles_errors
def trace_command(point_text, start_text, end_text):
    """Every batch delivered to a demand point, real and drill alike, oldest first, with
    its supplier, retained samples and tests. Prints JSON.

    Times need their UTC offset (2026-09-14T08:00:00+08:00 or ...Z); a time without one
    is refused, not read as local time. Without --from or --to the trace is open at that
    end. Flagged batches (delivered but not served) are included.
    """
    from app.techsupport.trace import trace_demand_point

    point = _point(point_text)
    start, end = _time(start_text, "--from"), _time(end_text, "--to")
    if start is not None and end is not None and start > end:
        raise InvalidInput("trace refused", {"--from": ["must not be after --to"]})
    _print_json(trace_demand_point(point, start, end))
