"""Command-line entry points: `flask --app app <group> <command>`.

A command that prints JSON writes that one line to stdout; logs go to stderr. Refused
input exits 2 with the reason on stderr.
"""

import functools
import json
import logging
import math
import os
import re
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError, OperationalError

from app.alerts.cap import SEVERITIES
from app.errors import DomainError, InvalidInput
from app.extensions import db
from app.queue import redis_holder

log = logging.getLogger(__name__)


def _refuse(error):
    click.echo(f"refused: {error}", err=True)
    for field, messages in getattr(error, "errors", {}).items():
        click.echo(f"  {field}: {messages}", err=True)
    sys.exit(2)


def handles_errors(command):
    """Refused input exits 2 and an unreachable database 1, each with one line on stderr."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DomainError as error:
            _refuse(error)
        except RecursionError:
            click.echo("refused: the input is nested too deeply", err=True)
            sys.exit(2)
        except IntegrityError:
            click.echo("refused: another change to the same record came first; try again", err=True)
            sys.exit(2)
        except OperationalError as error:
            click.echo(f"database not reachable or not ready: {error.orig}", err=True)
            sys.exit(1)

    return wrapper


def _print_json(data):
    click.echo(json.dumps(data, ensure_ascii=False, sort_keys=True))


fixtures_cli = AppGroup("fixtures", help="The region pack.")
drill_cli = AppGroup("drill", help="Drills on a simulated clock.")
queue_cli = AppGroup("queue", help="The dispatch relay and reconciler.")
alerts_cli = AppGroup("alerts", help="CAP 1.2 alerts from alerting services.")
supply_cli = AppGroup("supply", help="Suppliers, kitchens and allocation.")
users_cli = AppGroup("users", help="Who signs in: users, their roles and API tokens.")
plans_cli = AppGroup("plans", help="Emergency plans and their versions.")
process_cli = AppGroup("process", help="Response levels from a plan's rule tables.")


@fixtures_cli.command("load")
@handles_errors
def fixtures_load():
    """Load the region pack (BAOGONG_REGION); loading it again changes nothing. Prints JSON."""
    from app.fixtures import configured_region_dir, load_all
    from app.schema import ensure_schema

    ensure_schema()
    try:
        summary = load_all(configured_region_dir(), plan_name=current_app.config["BAOGONG_PLAN"])
    except OSError as error:
        _refuse(error)
    _print_json(summary)


@drill_cli.command("run")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--workers", type=click.IntRange(1, 16), default=None)
@handles_errors
def drill_run(scenario, out_dir, workers):
    """Run a drill scenario end to end; writes OUT/report.json, report.html and map.html."""
    from app.drills.engine import DrillError
    from app.drills.services import run_drill

    _stop_on_signals()
    try:
        report, paths = run_drill(scenario, out_dir, workers=workers)
    except InvalidInput as error:
        _refuse(error)
    except DrillError as error:
        click.echo(f"drill failed: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("drill interrupted; workers stopped, the run is marked failed", err=True)
        sys.exit(130)
    except Exception as error:
        # The cause goes to the log at debug level; the controller gets one line.
        log.debug("drill failed", exc_info=True)
        click.echo(f"drill failed: {type(error).__name__}: {error}", err=True)
        sys.exit(1)
    finally:
        _release_redis()
    click.echo(f"report: {paths['report_json']}", err=True)
    click.echo(f"report page: {paths['report_html']}", err=True)
    click.echo(f"map: {paths['map']}", err=True)
    _print_json({"report": paths["report_json"], "map": paths["map"], "html": paths["report_html"]})


def _stop_on_signals():
    """SIGTERM (docker stop, timeout) and SIGINT, even when inherited as ignored, stop a
    drill at its next step: workers stopped, the run marked failed, exit 1."""
    import signal

    from app.drills.engine import STOP

    def interrupt(signum, frame):
        log.warning("drill: %s received, stopping", signal.Signals(signum).name)
        STOP.set()

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _release_redis():
    try:
        redis_holder(current_app).close()
    except Exception as error:  # the server may already be gone; nothing left to free
        log.debug("redis: release failed: %s", error)


@queue_cli.command("relay")
@click.option("--once", is_flag=True, help="relay and reconcile once, then stop")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=1.0)
@handles_errors
def queue_relay(once, interval):
    """Put pending supply tasks, due notification deliveries and due actions of live
    incidents on the queue."""
    import time
    from datetime import timedelta

    from app.clock.services import requeue_lost, tick
    from app.coordination import delivery
    from app.incidents.services import live_incident_ids
    from app.supply.dispatch import reconcile, relay
    from app.techsupport.risk import refresh_live_colours
    from app.types import utcnow

    stale = current_app.config["BAOGONG_RECONCILE_AFTER_SECONDS"]
    coloured = None
    while True:
        relay()
        reconcile(stale)
        delivery.relay()
        delivery.reconcile(stale)
        live = live_incident_ids()
        requeue_lost(live, stale)
        # A drill ticks its own simulated clock; only real incidents run on this one.
        tick(utcnow(), live)
        if coloured is None or utcnow() - coloured >= timedelta(hours=1):
            # Live risk colours age as their 30- and 90-day windows pass.
            coloured = utcnow()
            refresh_live_colours(at=coloured)
        # End the transaction: on SQLite even a read holds the write lock until then.
        db.session.commit()
        if once:
            return
        time.sleep(interval)


def _instant(text):
    """An ISO-8601 instant with its offset, within the years alerts may name; else None."""
    from datetime import UTC, datetime

    from app.alerts.cap import FIRST_YEAR, LAST_YEAR

    try:
        value = datetime.fromisoformat(text)
        year = value.astimezone(UTC).year
    except (ValueError, OverflowError):
        return None
    if value.tzinfo is None or not FIRST_YEAR <= year <= LAST_YEAR:
        return None
    return value


@alerts_cli.command("ingest")
@click.argument("path", metavar="FILE")
@click.option("--at", "at_text", metavar="ISO-TIME", help="judge expiry at this instant, not now")
@click.option("--lang", default="zh-CN", show_default=True, help="language shown first")
def alerts_ingest(path, at_text, lang):
    """Take one CAP 1.2 message (FILE, or - for stdin) and act on it. Prints JSON.

    Exit 0 for every outcome but a refused message, which exits 2 with the reason.
    """
    from app.alerts.cap import CapError
    from app.alerts.services import ingest_and_commit, read_limited
    from app.schema import ensure_schema
    from app.types import utcnow

    def refused(reason):
        _print_json({"action": "refused", "reason": reason, "file": path})
        click.echo(f"refused: {reason}", err=True)
        sys.exit(2)

    at = utcnow()
    if at_text is not None:
        at = _instant(at_text)
        if at is None:
            refused(f"--at {at_text!r} is not an ISO-8601 instant with its UTC offset")
    try:
        if path == "-":
            data = read_limited(click.get_binary_stream("stdin"), "stdin")
        else:
            with open(path, "rb") as stream:
                data = read_limited(stream, path)
        ensure_schema()
        outcome = ingest_and_commit(data, at=at, language=lang)
    except OSError as error:
        refused(f"cannot read {path}: {error.strerror or error}")
    except CapError as error:
        refused(str(error))
    except InvalidInput as error:
        details = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.errors.items())
        refused(f"{error}: {details}" if details else str(error))
    except OperationalError as error:
        click.echo(f"database not reachable or not ready: {error.orig}", err=True)
        sys.exit(1)
    except Exception as error:
        # Not the message's fault: one line for the operator, the cause in the debug log.
        log.debug("alert ingest failed", exc_info=True)
        click.echo(f"alert ingest failed: {type(error).__name__}: {error}", err=True)
        sys.exit(1)
    _print_json(outcome)


@supply_cli.command("solve-orlib")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--capacity",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="capacity of every kitchen (required for capa, capb, capc)",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=1, max=86400),
    default=60.0,
    show_default=True,
    help="seconds",
)
@handles_errors
def supply_solve_orlib(path, capacity, time_limit):
    """Choose kitchens to activate for an OR-Library "cap" instance. Prints JSON."""
    from app.supply.kitchens import MAX_FILE_BYTES, read_orlib, solve

    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        _refuse(f"cannot read {path}: {error.strerror or error}")
    if len(data) > MAX_FILE_BYTES:
        _refuse(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        _refuse(f"{path} is not a plain-text OR-Library file: {error}")
    if not math.isfinite(time_limit):
        _refuse("--time-limit must be a finite number of seconds")
    instance = read_orlib(text, capacity, name=path)
    solution = solve(instance, time_limit)
    _print_json(
        {
            "objective": round(solution.objective, 6),
            "bound": round(solution.bound, 6),
            "gap": solution.gap,
            "proven_optimal": solution.proven_optimal,
            "seconds": round(solution.seconds, 3),
            "open": [i + 1 for i in solution.open],
            "sites": instance.sites,
            "customers": instance.customers,
            "method": solution.method,
        }
    )


@supply_cli.command("import")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(("suppliers", "demand")), required=True)
@click.option(
    "--coords",
    type=click.Choice(("wgs84", "gcj02", "bd09")),
    default="wgs84",
    show_default=True,
    help="the datum of the file's coordinates; stored as WGS-84",
)
@handles_errors
def supply_import(path, kind, coords):
    """Import suppliers or demand points from a CSV or .xlsx file, all or nothing; rows
    are matched by code. Prints JSON counts."""
    from app.fixtures import configured_region, import_context
    from app.supply.imports import import_file

    context = import_context(configured_region(), coords)
    _import_whole(lambda: import_file(path, kind, context))


@supply_cli.command("travel-times")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@handles_errors
def supply_travel_times(path):
    """Load measured travel minutes (columns supplier, demand_point, minutes, source) from
    a CSV or .xlsx file; they replace the great-circle estimate for those pairs. Prints JSON."""
    from app.supply.imports import import_travel_times

    _import_whole(lambda: import_travel_times(path))


def _import_whole(load):
    """Run an import in one transaction of its own, committed whole or rolled back, and
    print its counts."""
    from app.schema import ensure_schema

    ensure_schema()
    db.session.commit()  # SQLite holds its write lock for a transaction: not while parsing
    try:
        summary = load()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    _print_json(summary)


@supply_cli.command("export")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(("suppliers", "demand")), required=True)
@click.option(
    "--headers",
    type=click.Choice(("zh", "en")),
    default="zh",
    show_default=True,
    help="Chinese headers, or the English field names",
)
@handles_errors
def supply_export(path, kind, headers):
    """Write every supplier or demand point to FILE (.csv or .xlsx, by its name). Prints
    JSON with the count."""
    from app.supply.imports import export_file

    try:
        rows = export_file(path, kind, language=headers)
    except OSError as error:
        _refuse(f"cannot write {path}: {error.strerror or error}")
    _print_json({"kind": kind, "rows": rows, "file": os.path.abspath(path)})


@users_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, help="commander, liaison, supplier, inspector, "
              "drill_controller or viewer")  # fmt: skip
@click.option("--department", "department_code", help="code of the department acted for")
@click.option("--supplier", "supplier_code", help="code of the supplier (supplier users)")
@click.option("--person", "person_code", help="code of the person this user is, when paged")
@click.option("--name", "display_name", help="the name shown; the person's by default")
@click.option("--password-stdin", is_flag=True, help="read a password from the first line of "
              "stdin; without it the user has API tokens only")  # fmt: skip
@handles_errors
def users_create(username, role, department_code, supplier_code, person_code, display_name,
                 password_stdin):  # fmt: skip
    """Create a user with a role and the organisation it acts for. Prints JSON."""
    from app.accounts.services import create_user
    from app.schema import ensure_schema

    ensure_schema()
    password = _password_from_stdin() if password_stdin else None
    user = create_user(
        username,
        role,
        department_code=department_code,
        supplier_code=supplier_code,
        person_code=person_code,
        password=password,
        display_name=display_name,
    )
    db.session.commit()
    _print_json({"username": user.username, "role": user.role, "id": user.id})


@users_cli.command("set-password")
@click.argument("username")
@handles_errors
def users_set_password(username):
    """Set a user's password from the first line of stdin. Prints JSON."""
    from app.accounts.services import set_password, user_by_username

    user = user_by_username(username)
    set_password(user, _password_from_stdin())
    db.session.commit()
    _print_json({"username": user.username, "password": "set"})


def _password_from_stdin():
    return sys.stdin.readline().rstrip("\r\n")


@users_cli.command("deactivate")
@click.argument("username")
@handles_errors
def users_deactivate(username):
    """Lock a user out: their sessions end and their tokens are revoked. Prints JSON."""
    from app.accounts.services import deactivate, user_by_username

    user = user_by_username(username)
    revoked = deactivate(user)
    db.session.commit()
    _print_json({"username": user.username, "active": False, "tokens_revoked": revoked})


@users_cli.command("set-role")
@click.argument("username")
@click.option("--role", required=True)
@click.option("--department", "department_code", help="the department acted for, if it changes")
@handles_errors
def users_set_role(username, role, department_code):
    """Give a user another role (and department). Prints JSON."""
    from app.accounts.services import change_role, describe, user_by_username

    user = user_by_username(username)
    change_role(user, role, department_code)
    db.session.commit()
    _print_json(describe(user))


@users_cli.command("token")
@click.argument("username")
@click.option("--name", default="api", show_default=True, help="what the token is for")
@handles_errors
def users_token(username, name):
    """Make an API token for a user. Prints JSON with the token: the only time it is shown,
    as only its hash is kept."""
    from app.accounts.services import issue_token, user_by_username

    user = user_by_username(username)
    _row, token = issue_token(user, name)
    db.session.commit()
    _print_json({"username": user.username, "token": token})


@users_cli.command("revoke-token")
@click.argument("prefix")
@handles_errors
def users_revoke_token(prefix):
    """Revoke the token starting with PREFIX (its first 8 characters, as `users list` shows
    them, or the whole token). Prints JSON."""
    from app.accounts.services import revoke_token

    row = revoke_token(prefix)
    db.session.commit()
    _print_json({"username": row.user.username, "prefix": row.prefix, "name": row.name})


@users_cli.command("list")
@handles_errors
def users_list():
    """Every user with its role, organisation and tokens (prefixes only). Prints JSON."""
    from sqlalchemy import select

    from app.accounts.models import User
    from app.accounts.services import describe
    from app.types import isoformat_utc

    users = []
    for user in db.session.scalars(select(User).order_by(User.username)):
        tokens = [
            {
                "prefix": token.prefix,
                "name": token.name,
                "created_at": isoformat_utc(token.created_at),
                "last_used_at": isoformat_utc(token.last_used_at),
                "revoked": token.revoked_at is not None,
            }
            for token in sorted(user.tokens, key=lambda token: token.id)
        ]
        users.append({**describe(user), "tokens": tokens})
    _print_json({"users": users})


@plans_cli.command("import")
@click.argument("path", metavar="FILE")
@handles_errors
def plans_import(path):
    """Import a plan from a YAML file: a new name is created, a changed plan gets a new
    version, the same plan changes nothing. Prints JSON."""
    from app.process.files import import_plan_text, read_plan_bytes
    from app.schema import ensure_schema
    from app.types import utcnow

    data = read_plan_bytes(path)
    ensure_schema()
    try:
        plan, outcome = import_plan_text(data, utcnow(), name=os.path.basename(path))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    _print_json({"plan": plan.name, "version": plan.version, "outcome": outcome})


@plans_cli.command("export")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), default=None, help="default: the current")
@handles_errors
def plans_export(name, version):
    """Write a version of a plan to stdout as YAML; importing it again changes nothing."""
    from app.process.files import dump_plan
    from app.process.services import plan_version

    click.echo(dump_plan(plan_version(name, version).document), nl=False)


@plans_cli.command("list")
@handles_errors
def plans_list():
    """The current version of every plan. Prints JSON."""
    from app.process.services import latest_plans

    plans = [{"name": p.name, "version": p.version, "title": p.title} for p in latest_plans()]
    _print_json({"plans": plans})


class Count(click.ParamType):
    """A count of people or places: ASCII digits only (int() would also take "1_000" and
    full-width digits), at most ten million."""

    name = "count"
    LIMIT = 10_000_000

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        if not re.fullmatch(r"[0-9]{1,9}", str(value)) or int(value) > self.LIMIT:
            self.fail(f"{value!r} is not a whole number from 0 to {self.LIMIT:,}", param, ctx)
        return int(value)


def _figure(option):
    """A click option taking a count of people or places."""
    return click.option(option, type=Count(), default=None)


@process_cli.command("suggest-level")
@click.option("--plan", "plan_name", required=True, help="the plan whose rule tables apply")
@_figure("--harmed")
@_figure("--deaths")
@_figure("--counties")
@_figure("--townships")
@click.option("--school", is_flag=True, help="people were harmed at a school")
@click.option("--major-event", is_flag=True, help="people were harmed at a major event")
@_figure("--evacuees")
@_figure("--towns")
@click.option("--severity", type=click.Choice(SEVERITIES), help="the CAP severity of the alert")
@handles_errors
def process_suggest_level(plan_name, **figures):
    """The response level the plan's rule tables give for the figures known. Prints JSON."""
    from app.process.services import latest_plan, level_suggestion

    plan = latest_plan(plan_name, required=False)
    if plan is None:
        raise InvalidInput("no such plan", {"--plan": [f"no plan named {plan_name!r}"]})
    known = {key: value for key, value in figures.items() if value is not None}
    _print_json(level_suggestion(plan, known))


def register(app):
    app.cli.add_command(fixtures_cli)
    app.cli.add_command(drill_cli)
    app.cli.add_command(queue_cli)
    app.cli.add_command(alerts_cli)
    app.cli.add_command(supply_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(plans_cli)
    app.cli.add_command(process_cli)

    from app.coordination.cli import notify_cli

    app.cli.add_command(notify_cli)

    from app.techsupport.cli import trace_command

    app.cli.add_command(trace_command)
