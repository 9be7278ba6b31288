"""The shape of a plan document, checked key by key before it is stored.

Every mapping refuses keys it does not know, so a misspelt key is named instead of being
ignored; `note` (and `<section>_note`) keys of free text are allowed wherever a value
needs saying where it comes from. `settings` is open: the modules that read it check it.
"""

import math
import numbers

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.alerts.cap import SEVERITIES
from app.process.models import LEVELS

PHASES = ("warning", "response", "recovery", "closure")
COMMANDED_BY = ("national", "provincial", "municipal", "county")
# When a duty is assigned: while a level asks for it, or on a suspected food poisoning.
DUTY_TRIGGERS = ("level", "suspected_poisoning")
RULE_TABLES = ("food_safety", "supply_emergency")
# The conditions a rule may hold, and the figure each one reads.
CONDITIONS = {
    "harmed_min": "harmed",
    "deaths_min": "deaths",
    "counties_min": "counties",
    "townships_min": "townships",
    "evacuees_min": "evacuees",
    "towns_min": "towns",
}
CODE = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", error="a code of letters, digits, '_', '-' or '.'"
)
# A week: a deadline longer than that is a typo, not a plan.
MAX_MINUTES = 7 * 24 * 60


class Whole(fields.Integer):
    """A whole number as YAML or JSON writes one: not a boolean, not a string, not 30.0."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValidationError(f"must be a whole number, got {value!r}")
        return super()._deserialize(value, attr, data, **kwargs)


class Figure(fields.Number):
    """A finite number, not a boolean or a string."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValidationError(f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValidationError("must be a finite number")
        return value


class Flag(fields.Boolean):
    """true or false, as YAML or JSON writes them; not 1, "yes" or "on" in quotes."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, got {value!r}")
        return value


def Text(length=300, **kwargs):
    return fields.String(validate=validate.Length(1, length), **kwargs)


def Codes(**kwargs):
    return fields.List(fields.String(validate=CODE), **kwargs)


class Strict(Schema):
    class Meta:
        unknown = RAISE

    error_messages = {"type": "must be a mapping", "unknown": "unknown key"}

    note = fields.String()


class ChecklistItemSchema(Strict):
    """One thing to do; the code is stable across levels and versions, so a level change
    can tell which items carry over."""

    code = fields.String(required=True, validate=CODE)
    text = Text(1000, required=True)
    text_en = Text(1000)
    measure = fields.String(validate=CODE)


class ChecklistItem(fields.Field):
    """A checklist item: a mapping with its code, or (the older form) a line of text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not value.strip():
                raise ValidationError("must not be empty")
            return value
        if not isinstance(value, dict):
            raise ValidationError("must be a mapping with code and text, or a line of text")
        return ChecklistItemSchema().load(value)


class PhaseSchema(Strict):
    measures = Codes(load_default=list)
    checklist = fields.List(ChecklistItem(), load_default=list)


class PhasesSchema(Strict):
    warning = fields.Nested(PhaseSchema, required=True)
    response = fields.Nested(PhaseSchema, required=True)
    recovery = fields.Nested(PhaseSchema, required=True)
    closure = fields.Nested(PhaseSchema, required=True)


class LevelSchema(Strict):
    name = Text(required=True)
    name_en = Text()
    commanded_by = fields.String(required=True, validate=validate.OneOf(COMMANDED_BY))
    declared_by_higher = Flag(required=True)
    measures = Codes(required=True)
    # The older form: one checklist of lines for the whole level, read as the response's.
    checklist = fields.List(ChecklistItem())
    phases = fields.Nested(PhasesSchema)

    @validates_schema
    def check_one_checklist(self, data, **kwargs):
        if "phases" in data and "checklist" in data:
            raise ValidationError("give the checklist per phase under phases", "checklist")


class LevelsSchema(Strict):
    """The four response levels, by their codes."""

    error_messages = {
        "type": "must be a mapping of I, II, III and IV to their levels",
        "unknown": "not a response level: the levels are I, II, III and IV",
    }
    I = fields.Nested(LevelSchema, required=True)  # noqa: E741
    II = fields.Nested(LevelSchema, required=True)
    III = fields.Nested(LevelSchema, required=True)
    IV = fields.Nested(LevelSchema, required=True)


class MeasureSchema(Strict):
    code = fields.String(required=True, validate=CODE)
    name = Text(required=True)
    name_en = Text()


class ConditionsSchema(Strict):
    harmed_min = Figure(validate=validate.Range(min=0))
    deaths_min = Figure(validate=validate.Range(min=0))
    counties_min = Figure(validate=validate.Range(min=0))
    townships_min = Figure(validate=validate.Range(min=0))
    evacuees_min = Figure(validate=validate.Range(min=0))
    towns_min = Figure(validate=validate.Range(min=0))
    school_or_major_event = Flag()
    severity = fields.List(
        fields.String(validate=validate.OneOf(SEVERITIES)), validate=validate.Length(min=1)
    )

    @validates_schema
    def check_not_empty(self, data, **kwargs):
        if not set(data) - {"note"}:
            raise ValidationError("a rule needs at least one condition")


class RuleSchema(Strict):
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    when = fields.Nested(ConditionsSchema, required=True)


class RulesSchema(Strict):
    food_safety = fields.List(fields.Nested(RuleSchema), load_default=list)
    supply_emergency = fields.List(fields.Nested(RuleSchema), load_default=list)
    food_safety_note = fields.String()
    supply_emergency_note = fields.String()


class DutySchema(Strict):
    code = fields.String(required=True, validate=CODE)
    department = fields.String(required=True, validate=CODE)
    title = Text(required=True)
    title_en = Text()
    legal_basis = Text(required=True)
    levels = fields.List(
        fields.String(validate=validate.OneOf(LEVELS)), required=True, validate=validate.Length(1)
    )
    confirm_within_minutes = Whole(required=True, validate=validate.Range(1, MAX_MINUTES))
    # "level": assigned while a level in `levels` holds; "suspected_poisoning": assigned
    # when a suspected food poisoning is reported, before a level is confirmed.
    trigger = fields.String(validate=validate.OneOf(DUTY_TRIGGERS))
    measure = fields.String(validate=CODE)


class CommandSchema(Strict):
    commander_department = fields.String(validate=CODE)
    office_department = fields.String(validate=CODE)


class WorkingGroupSchema(Strict):
    code = fields.String(required=True, validate=CODE)
    name = Text(required=True)
    name_en = Text()
    lead = fields.String(validate=CODE)
    members = Codes(load_default=list)


class EscalationSchema(Strict):
    remind_at_deadline = Flag()
    escalate_after_minutes = Whole(validate=validate.Range(1, MAX_MINUTES))
    chain = fields.List(fields.String(validate=validate.OneOf(("office", "commander"))))


class SitrepsSchema(Strict):
    every_hours = Whole(validate=validate.Range(1, 24 * 7))


class PlanDocumentSchema(Strict):
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z0-9][a-z0-9_-]{0,99}$",
            error="lower-case letters, digits, '_' and '-', at most 100 (it is part of URLs)",
        ),
    )
    title = Text(required=True)
    title_en = Text()
    jurisdiction = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[0-9]{2,12}$", error='an administrative division code in quotes, e.g. "330211"'
        ),
    )
    levels = fields.Nested(LevelsSchema, required=True)
    measures = fields.List(fields.Nested(MeasureSchema), required=True)
    rules = fields.Nested(RulesSchema, required=True)
    command = fields.Nested(CommandSchema)
    working_groups = fields.List(fields.Nested(WorkingGroupSchema))
    duties = fields.List(fields.Nested(DutySchema), required=True)
    escalation = fields.Nested(EscalationSchema)
    sitreps = fields.Nested(SitrepsSchema)
    settings = fields.Dict(keys=fields.String(), required=True)
