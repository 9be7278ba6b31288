"""The shape of a plan document, checked key by key before it is stored.

Every mapping refuses keys it does not know, so a misspelt key is named instead of being
ignored; `note` (and `<section>_note`) keys of free text are allowed wherever a value
needs saying where it comes from. `settings` is checked too: the allocation, the drills
and the serving-time check read it, and a wrong value there would fail only later.
"""

import math
import numbers

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.alerts.cap import SEVERITIES
from app.process.models import LEVELS
from app.supply.models import DEMAND_POINT_TYPES, DIETS, RATINGS

PHASES = ("warning", "response", "recovery", "closure")
COMMANDED_BY = ("national", "provincial", "municipal", "county")
# When a duty is assigned: while a level asks for it, or on a suspected food poisoning.
DUTY_TRIGGERS = ("level", "suspected_poisoning")
INCIDENT_KINDS = ("supply_emergency", "food_safety", "major_event")
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
# People and places are counted in whole numbers, and no incident touches a billion.
COUNT = validate.Range(0, 10**9)
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
    # Only for these kinds of incident; all kinds when left out.
    incident_kinds = fields.List(
        fields.String(validate=validate.OneOf(INCIDENT_KINDS)), validate=validate.Length(1)
    )


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
    harmed_min = Whole(validate=COUNT)
    deaths_min = Whole(validate=COUNT)
    counties_min = Whole(validate=COUNT)
    townships_min = Whole(validate=COUNT)
    evacuees_min = Whole(validate=COUNT)
    towns_min = Whole(validate=COUNT)
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
    # Only for these kinds of incident; all kinds when left out.
    incident_kinds = fields.List(
        fields.String(validate=validate.OneOf(INCIDENT_KINDS)), validate=validate.Length(1)
    )


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
    # Urgent coordination tasks climb the chain this often; escalate_after_minutes when
    # left out.
    urgent_escalate_after_minutes = Whole(validate=validate.Range(1, MAX_MINUTES))
    chain = fields.List(fields.String(validate=validate.OneOf(("office", "commander"))))

    @validates_schema
    def check_urgent_sooner(self, data, **kwargs):
        urgent = data.get("urgent_escalate_after_minutes")
        usual = data.get("escalate_after_minutes", 30)
        if urgent is not None and urgent > usual:
            raise ValidationError(
                f"urgent tasks escalate no later than the others ({usual} minutes)",
                "urgent_escalate_after_minutes",
            )


class SitrepsSchema(Strict):
    every_hours = Whole(validate=validate.Range(1, 24 * 7))
    # Departments whose liaison on duty receives each report sent, besides the commander
    # and the command's office.
    recipients = Codes()


class Minutes(Whole):
    def __init__(self, low=0, high=MAX_MINUTES, **kwargs):
        super().__init__(validate=validate.Range(low, high), **kwargs)


class MealTimesSchema(Strict):
    """When each meal is served, "HH:MM" in the command's zone, in quotes."""

    breakfast = fields.String(validate=validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))
    lunch = fields.String(validate=validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))
    dinner = fields.String(validate=validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))

    def handle_error(self, error, data, **kwargs):
        for key, value in (data or {}).items() if isinstance(data, dict) else ():
            if not isinstance(value, str) and key in self.fields:
                # YAML reads 11:30 unquoted as a number of minutes (690).
                error.messages[key] = [f'write the time in quotes, e.g. "11:30", not {value!r}']
        raise error


class SettingsSchema(Strict):
    """The values the allocation, drills and checks read, each within what makes sense."""

    holding_window_minutes = Minutes(1, 24 * 60)
    holding_band_c = fields.List(
        Figure(validate=validate.Range(-30, 100)), validate=validate.Length(2, 2)
    )
    hot_holding_window_minutes = Minutes(1, 24 * 60)
    chilled_window_minutes = Minutes(1, 72 * 60)
    dispatch_minutes = Minutes(0, 24 * 60)
    cooking_minutes = Minutes(0, 24 * 60)
    serving_minutes = Minutes(0, 24 * 60)
    speed_kmh = Figure(validate=validate.Range(1, 200))
    detour_factor = Figure(validate=validate.Range(1, 5))
    # The catering operating code: at least 125 g of every dish, kept at least 48 hours.
    sample_min_grams = Whole(validate=validate.Range(125, 10_000))
    sample_keep_hours = Whole(validate=validate.Range(48, 24 * 30))
    rating_floor = fields.Dict(
        keys=fields.String(validate=validate.OneOf(DEMAND_POINT_TYPES)),
        values=fields.String(validate=validate.OneOf(RATINGS)),
    )
    priority_types = fields.List(fields.String(validate=validate.OneOf(DEMAND_POINT_TYPES)))
    priority_diets = fields.List(fields.String(validate=validate.OneOf(DIETS)))
    meal_times = fields.Nested(MealTimesSchema)
    order_cutoff = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("breakfast", "lunch", "dinner"))),
        values=Text(100),
    )
    risk_weights = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("green", "yellow", "orange", "red"))),
        values=Figure(validate=validate.Range(0.1, 100)),
    )
    # Trace: hours of deliveries before a suspected poisoning that its trace covers.
    poisoning_trace_hours = Whole(validate=validate.Range(1, 24 * 60))

    @validates_schema
    def check_band(self, data, **kwargs):
        band = data.get("holding_band_c")
        if band and len(band) == 2 and band[0] >= band[1]:
            raise ValidationError("the low end comes first: [8, 60]", "holding_band_c")

    # Technical support, experts and inspections: the checklist an inspection answers.
    class InspectionItemSchema(Strict):
        """One thing an inspector checks at a supplier; a failed `serious` item fails the
        inspection. `basis` says where the item comes from (a law, a code, or ours)."""

        code = fields.String(required=True, validate=CODE)
        text = Text(1000, required=True)
        text_en = Text(1000)
        serious = Flag(required=True)
        basis = Text(300)
        # Asked only in incidents of these kinds (the menu of a major event); always when
        # left out.
        incident_kinds = fields.List(
            fields.String(validate=validate.OneOf(INCIDENT_KINDS)), validate=validate.Length(1)
        )

    inspection_checklist = fields.List(
        fields.Nested(InspectionItemSchema), validate=validate.Length(1, 100)
    )

    @validates_schema
    def check_inspection_codes(self, data, **kwargs):
        codes = [item.get("code") for item in data.get("inspection_checklist") or ()]
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            raise ValidationError(
                f"each item code once; repeated: {', '.join(repeated)}", "inspection_checklist"
            )


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
            r"^(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[12])[0-9]{4}([0-9]{3}){0,2}$",
            error='an administrative division code of 6, 9 or 12 digits in quotes, e.g. "330211"',
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
    settings = fields.Nested(SettingsSchema, required=True)
