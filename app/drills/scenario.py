"""Drill scenario files: a YAML mapping of timed injects, checked field by field."""

import hashlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from app.alerts.cap import SEVERITIES
from app.errors import InvalidInput
from app.process.models import LEVELS
from app.supply.models import MEALS
from app.yamlfiles import UniqueKeyLoader

OFFSET = re.compile(r"^\+(\d+):([0-5]\d)$")
# A host name of dot-separated labels, or an IPv4 address (IPv6 in brackets is not taken).
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST = re.compile(rf"^(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*$")
INJECT_KINDS = (
    "receive_alert",
    "confirm_level",
    "confirm_duties",
    "open_points",
    "rapid_test",
    "change_level",
    "end_response",
    "assign_task",
    "accept_task",
    "finish_task",
    "post_inspectors",
    "lab_request",
    "lab_result",
    "inspect",
    "reinstate",
    "discard_samples",
    "report_poisoning",
)
TEST_PURPOSES = ("routine", "reinspection")
TASK_PRIORITIES = ("urgent", "routine", "low")
TASK_KINDS = ("task", "joint_inspection")


class AwareDateTime(fields.AwareDateTime):
    """An ISO-8601 instant that must carry its offset."""


class PointOpeningSchema(Schema):
    class Meta:
        unknown = RAISE

    point = fields.String(required=True)
    headcount = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    halal = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    vegetarian = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    infant = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    soft_diet = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))

    @validates_schema
    def check_diets(self, data, **kwargs):
        special = sum(data.get(k, 0) for k in ("halal", "vegetarian", "infant", "soft_diet"))
        if special > data.get("headcount", 0):
            raise ValidationError("special diets add up to more than the headcount", "headcount")


class PostingSchema(Schema):
    """An inspector (a person's code) posted on site at a supplier."""

    class Meta:
        unknown = RAISE

    inspector = fields.String(required=True, validate=validate.Length(1, 64))
    supplier = fields.String(required=True, validate=validate.Length(1, 40))


class ResultSchema(Schema):
    """One analyte's result: a routine rapid test, or a lab's answer to a request."""

    class Meta:
        unknown = RAISE

    analyte = fields.String(required=True, validate=validate.Length(1, 200))
    method = fields.String(required=True, validate=validate.Length(1, 200))
    value = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=0))
    limit = fields.Float(
        required=True, allow_nan=False, validate=validate.Range(min=0, min_inclusive=False)
    )
    unit = fields.String(required=True, validate=validate.Length(1, 20))


class PoisoningFiguresSchema(Schema):
    class Meta:
        unknown = RAISE

    harmed = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 10**6))
    deaths = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 10**6))
    counties = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 1000))
    townships = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 10**4))
    school = fields.Boolean(load_default=False)
    major_event = fields.Boolean(load_default=False)


class InjectSchema(Schema):
    """One timed event of the scenario; `at` is "+HH:MM" from the start."""

    class Meta:
        unknown = RAISE

    at = fields.String(required=True, validate=validate.Regexp(OFFSET, error="use +HH:MM"))
    do = fields.String(required=True, validate=validate.OneOf(INJECT_KINDS))
    note = fields.String()
    level = fields.String(validate=validate.OneOf(LEVELS))
    reason = fields.String()
    departments = fields.Raw()
    except_ = fields.List(fields.String(), data_key="except", load_default=list)
    points = fields.List(fields.Nested(PointOpeningSchema))

    @validates_schema
    def check_points_once(self, data, **kwargs):
        codes = [entry["point"] for entry in data.get("points", [])]
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            raise ValidationError(f"each point once per inject: {', '.join(repeated)}", "points")

    supplier = fields.String()
    analyte = fields.String()
    method = fields.String()
    value = fields.Float(allow_nan=False, validate=validate.Range(min=0))
    limit = fields.Float(allow_nan=False, validate=validate.Range(min=0, min_inclusive=False))
    unit = fields.String()
    tested_by = fields.String()
    # A coordination task the command centre sets, and what its departments then do; a
    # task is named by its title in the injects that follow.
    task = fields.String(validate=validate.Length(1, 200))
    priority = fields.String(validate=validate.OneOf(TASK_PRIORITIES))
    kind = fields.String(validate=validate.OneOf(TASK_KINDS), load_default="task")
    due = fields.String(validate=validate.Regexp(OFFSET, error="use +HH:MM"))
    details = fields.String(validate=validate.Length(max=2000))
    # Technical support: inspectors posted, tests and lab results, re-inspections and
    # reinstatement, samples discarded, a suspected poisoning reported at a point.
    postings = fields.List(fields.Nested(PostingSchema), validate=validate.Length(min=1))
    purpose = fields.String(validate=validate.OneOf(TEST_PURPOSES), load_default="routine")
    lab = fields.String(validate=validate.Length(1, 40))
    analytes = fields.List(
        fields.String(validate=validate.Length(1, 200)), validate=validate.Length(min=1)
    )
    results = fields.List(fields.Nested(ResultSchema), validate=validate.Length(min=1))
    inspector = fields.String(validate=validate.Length(1, 64))
    failed_items = fields.List(fields.String(validate=validate.Length(1, 40)), load_default=list)
    retained_before = fields.String(validate=validate.Regexp(OFFSET, error="use +HH:MM"))
    point = fields.String(validate=validate.Length(1, 40))
    title = fields.String(validate=validate.Length(1, 300))
    harm = fields.Nested(PoisoningFiguresSchema)

    @validates_schema
    def check_kind(self, data, **kwargs):
        needs = {
            "confirm_duties": ("departments",),
            "open_points": ("points",),
            "rapid_test": ("supplier", "analyte", "method", "value", "limit", "unit", "tested_by"),
            "change_level": ("level", "reason"),
            "end_response": ("reason",),
            "assign_task": ("task", "departments", "priority", "due"),
            "accept_task": ("task", "departments"),
            "finish_task": ("task", "departments"),
            "post_inspectors": ("postings",),
            "lab_request": ("supplier", "lab", "analytes"),
            "lab_result": ("supplier", "results"),
            "inspect": ("supplier", "inspector"),
            "reinstate": ("supplier", "reason"),
            "discard_samples": ("retained_before",),
            "report_poisoning": ("point", "title", "harm"),
        }
        missing = [k for k in needs.get(data.get("do"), ()) if k not in data]
        if missing:
            raise ValidationError({k: ["required for " + data["do"]] for k in missing})


MINUTES = validate.Range(0, 24 * 60)


class SupplierBehaviourSchema(Schema):
    """When simulated suppliers act, in minutes before the meal is served."""

    class Meta:
        unknown = RAISE

    accept_after_minutes = fields.Integer(strict=True, load_default=10, validate=MINUTES)
    cook_before_serving_minutes = fields.Integer(strict=True, load_default=120, validate=MINUTES)
    cooked_before_serving_minutes = fields.Integer(strict=True, load_default=60, validate=MINUTES)
    leave_before_serving_minutes = fields.Integer(strict=True, load_default=55, validate=MINUTES)
    # The catering code asks at least 125 g of every dish to be kept.
    sample_grams = fields.Integer(
        strict=True,
        load_default=150,
        validate=validate.Range(125, 5000, error="a retained sample weighs 125 to 5000 g"),
    )
    sample_kept_at = fields.String(load_default="留样冰箱")
    hot_temp_c = fields.Float(load_default=66.0, allow_nan=False, validate=validate.Range(-30, 120))
    ambient_temp_c = fields.Float(
        load_default=40.0, allow_nan=False, validate=validate.Range(-30, 120)
    )

    @validates_schema
    def check_order(self, data, **kwargs):
        cook = data.get("cook_before_serving_minutes", 120)
        cooked = data.get("cooked_before_serving_minutes", 60)
        leave = data.get("leave_before_serving_minutes", 55)
        if not cook > cooked >= leave > 5:
            raise ValidationError(
                "kitchens start cooking, finish, then leave, before the meal: need "
                "cook_before > cooked_before >= leave_before > 5 minutes"
            )


class FoodSafetyBehaviourSchema(Schema):
    """What inspectors posted at a supplier do without being told: every batch of theirs
    gets these rapid tests when its samples are sealed."""

    class Meta:
        unknown = RAISE

    routine_tests = fields.List(fields.Nested(ResultSchema), load_default=list)
    sample_discarded_by = fields.String(
        load_default="保供单位留样管理员", validate=validate.Length(1, 100)
    )


class FiguresSchema(Schema):
    """What the commander knows when the alert arrives; the level is suggested from it."""

    class Meta:
        unknown = RAISE

    evacuees = fields.Integer(strict=True, validate=validate.Range(0, 10**8))
    towns = fields.Integer(strict=True, validate=validate.Range(0, 10**4))
    harmed = fields.Integer(strict=True, validate=validate.Range(0, 10**8))
    deaths = fields.Integer(strict=True, validate=validate.Range(0, 10**8))
    counties = fields.Integer(strict=True, validate=validate.Range(0, 10**4))
    townships = fields.Integer(strict=True, validate=validate.Range(0, 10**5))
    school = fields.Boolean()
    major_event = fields.Boolean()
    severity = fields.String(validate=validate.OneOf(SEVERITIES))


class EndpointSchema(Schema):
    """Where a drill sends one channel: the drill's own local receiver, or an address the
    drill controller owns (a test group's robot, a test mailbox, a gateway's sandbox).

    Secrets are never written in the scenario: `secret_env` and `token_env` name the
    environment variables that hold them.
    """

    class Meta:
        unknown = RAISE

    receiver = fields.String(validate=validate.OneOf(["local"]))
    # A local receiver can rehearse a flaky one: refuse the first N messages outright, or
    # take the first N and lose its answer, so the sender tries again.
    fail_first = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 10))
    lose_reply_first = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 10))
    url = fields.Url(schemes={"http", "https"}, require_tld=False)
    host = fields.String(validate=validate.Length(1, 255))
    port = fields.Integer(strict=True, validate=validate.Range(1, 65535))
    # The one mailbox every drill email goes to.
    to = fields.Email()
    secret_env = fields.String(validate=validate.Regexp(r"^[A-Z_][A-Z0-9_]*$"))
    token_env = fields.String(validate=validate.Regexp(r"^[A-Z_][A-Z0-9_]*$"))

    @validates_schema
    def check_where(self, data, **kwargs):
        local = data.get("receiver") == "local"
        given = [k for k in ("url", "host") if k in data]
        if local == bool(given):
            raise ValidationError("give either receiver: local, or the url (host for email)")
        if not local and (data.get("fail_first") or data.get("lose_reply_first")):
            raise ValidationError("only a local receiver can be told to fail", "fail_first")
        if local and ("secret_env" in data or "token_env" in data):
            raise ValidationError("a local receiver makes its own secret", "secret_env")
        if "url" in data:
            try:
                port = urlsplit(data["url"]).port
            except ValueError:
                raise ValidationError("the url's port is not a port", "url") from None
            if port == 0:
                raise ValidationError("the url's port is not a port", "url")
        if "host" in data and not HOST.match(data["host"]):
            raise ValidationError("a host name or an IP address", "host")


DRILL_RETRY = {"max_attempts": 4, "backoff_seconds": 0.2}


class RetrySchema(Schema):
    """How a drill retries a failed delivery, in wall-clock time: a receiver lives in
    real time, and a drill should not wait out minutes of production backoff."""

    class Meta:
        unknown = RAISE

    max_attempts = fields.Integer(
        strict=True, load_default=DRILL_RETRY["max_attempts"], validate=validate.Range(1, 10)
    )
    backoff_seconds = fields.Float(
        load_default=DRILL_RETRY["backoff_seconds"],
        allow_nan=False,
        validate=validate.Range(0, 10),
    )


class NotificationEndpointsSchema(Schema):
    """The channels a drill delivers to besides the in-app inbox; the others are skipped."""

    class Meta:
        unknown = RAISE

    email = fields.Nested(EndpointSchema)
    dingtalk = fields.Nested(EndpointSchema)
    sms = fields.Nested(EndpointSchema)
    retry = fields.Nested(RetrySchema, load_default=lambda: dict(DRILL_RETRY))

    @validates_schema
    def check_kinds(self, data, **kwargs):
        errors = {}
        if "host" in data.get("dingtalk", {}) or "host" in data.get("sms", {}):
            for channel in ("dingtalk", "sms"):
                if "host" in data.get(channel, {}):
                    errors[channel] = ["a webhook or gateway takes a url, not a host"]
        email = data.get("email", {})
        if "url" in email:
            errors["email"] = ["email takes host and port, not a url"]
        elif "host" in email and "port" not in email:
            errors["email"] = ["give the port of the mail server"]
        elif "host" in email and "to" not in email:
            # A drill's own mail server still delivers onward: without one mailbox named,
            # drill mail would reach people's real addresses.
            errors["email"] = ["give the one mailbox (to) every drill email goes to"]
        elif "secret_env" in email:
            errors["email"] = ["email takes token_env for the server's password"]
        if "token_env" in data.get("dingtalk", {}):
            errors["dingtalk"] = ["a robot takes secret_env, not token_env"]
        if "secret_env" in data.get("sms", {}):
            errors["sms"] = ["a gateway takes token_env, not secret_env"]
        for channel in ("dingtalk", "sms"):
            if "to" in data.get(channel, {}):
                errors[channel] = ["only email takes a to address"]
        if errors:
            raise ValidationError(errors)


class SitrepBehaviourSchema(Schema):
    """How the simulated commander treats each drafted situation report."""

    class Meta:
        unknown = RAISE

    approve_after_minutes = fields.Integer(strict=True, load_default=20, validate=MINUTES)


EVERY_MEAL = "give the dishes of every meal: " + ", ".join(MEALS)


def _raise(message):
    raise ValidationError(message)


def _relative_file(value):
    if os.path.isabs(value) or ".." in value.replace("\\", "/").split("/"):
        raise ValidationError("a file beside the scenario, without / at the start or ..")


class ScenarioSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True)
    title = fields.String(required=True)
    title_en = fields.String()
    note = fields.String()
    plan = fields.String(required=True)
    region = fields.String(required=True)
    start = AwareDateTime(
        required=True,
        format="iso",
        validate=validate.Range(
            datetime(2000, 1, 1, tzinfo=UTC),
            datetime(2100, 1, 1, tzinfo=UTC),
            error="the drill must start between 2000 and 2100",
        ),
    )
    duration_hours = fields.Integer(strict=True, required=True, validate=validate.Range(1, 24 * 30))
    alert = fields.String(required=True, validate=_relative_file)
    figures = fields.Nested(FiguresSchema, load_default=lambda: {})
    plan_meals_ahead_minutes = fields.Integer(
        strict=True, load_default=180, validate=validate.Range(60, 24 * 60)
    )
    suppliers = fields.Nested(SupplierBehaviourSchema, load_default=lambda: {})
    dishes = fields.Dict(
        keys=fields.String(validate=validate.OneOf(MEALS)),
        values=fields.List(
            fields.String(validate=validate.Length(1, 200)), validate=validate.Length(min=1)
        ),
        required=True,
        validate=lambda d: set(d) == set(MEALS) or _raise(EVERY_MEAL),
    )
    notifications = fields.Nested(
        NotificationEndpointsSchema, load_default=lambda: {"retry": dict(DRILL_RETRY)}
    )
    sitreps = fields.Nested(SitrepBehaviourSchema, load_default=lambda: {})
    food_safety = fields.Nested(FoodSafetyBehaviourSchema, load_default=lambda: {})
    injects = fields.List(fields.Nested(InjectSchema), required=True)

    @validates_schema
    def check_timetable(self, data, **kwargs):
        """The story must be playable: one alert first, the level confirmed once before
        anything acts on the incident, and every inject inside the drill window."""
        injects = data.get("injects") or []
        errors = {}
        window = timedelta(hours=data.get("duration_hours", 0))
        for n, inject in enumerate(injects):
            if offset(inject["at"]) > window:
                errors[f"injects[{n}].at"] = [f"{inject['at']} is after the drill window ends"]
        ordered = sorted(injects, key=lambda i: offset(i["at"]))
        kinds = [i["do"] for i in ordered]
        if kinds.count("receive_alert") != 1 or kinds[0] != "receive_alert":
            errors["injects"] = ["exactly one receive_alert, before every other inject"]
        elif kinds.count("confirm_level") != 1:
            errors["injects"] = ["exactly one confirm_level"]
        elif set(kinds[: kinds.index("confirm_level")]) != {"receive_alert"}:
            errors["injects"] = ["nothing acts on the incident before confirm_level"]
        elif kinds.count("end_response") > 1 or (
            "end_response" in kinds and kinds[-1] != "end_response"
        ):
            errors["injects"] = ["end_response at most once, and last"]
        numbers = {id(i): n for n, i in enumerate(injects)}
        errors.update(_check_tasks(ordered, numbers, window))
        behaviour = data.get("suppliers") or {}
        ahead = data.get("plan_meals_ahead_minutes", 180)
        if ahead - behaviour.get("accept_after_minutes", 10) < behaviour.get(
            "cook_before_serving_minutes", 120
        ):
            errors["plan_meals_ahead_minutes"] = [
                "meals must be planned early enough to be accepted before cooking starts"
            ]
        if errors:
            raise ValidationError(errors)


def _check_tasks(ordered, numbers, window):
    """A task is set once, before anything is done to it, and due after it is set and
    inside the drill; its departments are a list, later injects name only departments it
    was set for, and each department accepts once and finishes once, in that order."""
    errors = {}
    set_for, accepted, finished = {}, {}, {}
    for inject in ordered:
        n = numbers[id(inject)]
        if inject["do"] not in ("assign_task", "accept_task", "finish_task"):
            continue
        title, departments = inject["task"], inject["departments"]
        if (
            not isinstance(departments, list)
            or not departments
            or not all(isinstance(code, str) for code in departments)
        ):
            errors[f"injects[{n}].departments"] = ["a list of one or more department codes"]
            continue
        if inject["do"] == "assign_task":
            if title in set_for:
                errors[f"injects[{n}].task"] = [f"task {title!r} is set twice"]
            elif len(set(departments)) != len(departments):
                errors[f"injects[{n}].departments"] = ["each department once"]
            elif inject["kind"] == "task" and len(departments) != 1:
                errors[f"injects[{n}].departments"] = ["a task goes to one department"]
            elif inject["kind"] == "joint_inspection" and len(departments) < 2:
                errors[f"injects[{n}].departments"] = ["a joint inspection takes two or more"]
            elif offset(inject["due"]) <= offset(inject["at"]):
                errors[f"injects[{n}].due"] = ["a task is due after it is set"]
            elif offset(inject["due"]) > window:
                errors[f"injects[{n}].due"] = ["a task is due inside the drill window"]
            set_for[title] = set(departments)
            accepted[title], finished[title] = set(), set()
            continue
        extra_fields = sorted(k for k in ("priority", "due", "details", "supplier") if k in inject)
        if extra_fields:
            errors[f"injects[{n}]"] = [f"{', '.join(extra_fields)}: only for assign_task"]
        elif title not in set_for:
            errors[f"injects[{n}].task"] = [f"no earlier assign_task sets {title!r}"]
        elif not set(departments) <= set_for[title]:
            extra = ", ".join(sorted(set(departments) - set_for[title]))
            errors[f"injects[{n}].departments"] = [f"task {title!r} was not set for {extra}"]
        else:
            done = sorted(set(departments) & finished[title])
            again = sorted(set(departments) & accepted[title])
            if done:
                errors[f"injects[{n}].departments"] = [f"{', '.join(done)} already finished"]
            elif inject["do"] == "accept_task" and again:
                errors[f"injects[{n}].departments"] = [f"{', '.join(again)} already accepted"]
            (accepted if inject["do"] == "accept_task" else finished)[title].update(departments)
    return errors


class Scenario:
    """A loaded, checked scenario with its injects resolved to instants."""

    def __init__(self, path, data, digest):
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))
        self.digest = digest
        self.data = data
        self.start = data["start"]
        self.end = self.start + timedelta(hours=data["duration_hours"])
        for number, inject in enumerate(data["injects"]):
            inject["when"] = self.start + offset(inject["at"])
            inject["number"] = number  # its place in the file, for messages
        self.injects = sorted(data["injects"], key=lambda i: i["when"])

    def __getattr__(self, name):
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    def alert_bytes(self):
        with open(os.path.join(self.folder, self.data["alert"]), "rb") as handle:
            return handle.read()


def offset(text):
    hours, minutes = OFFSET.match(text).groups()
    return timedelta(hours=int(hours), minutes=int(minutes))


def load_scenario(path):
    """Read and check a scenario file; refuse it with every bad field named."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise InvalidInput("scenario not readable", {"file": [str(error)]}) from None
    try:
        document = yaml.load(raw.decode("utf-8-sig"), Loader=UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InvalidInput("scenario is not valid YAML", {"file": [str(error)]}) from None
    if not isinstance(document, dict):
        raise InvalidInput("scenario refused", {"file": ["expected one mapping"]})
    if isinstance(document.get("start"), datetime):
        document["start"] = document["start"].isoformat()
    try:
        data = ScenarioSchema().load(document)
    except ValidationError as error:
        # marshmallow nests defaultdicts; plain dicts print cleanly.
        raise InvalidInput("scenario refused", json.loads(json.dumps(error.messages))) from None
    if not os.path.exists(os.path.join(os.path.dirname(os.path.abspath(path)), data["alert"])):
        raise InvalidInput("scenario refused", {"alert": [f"no file {data['alert']}"]})
    return Scenario(path, data, hashlib.sha256(raw).hexdigest())
