"""Who may change plans: a signed-in commander, over the API and on the edit page."""

from app.accounts.access import require_roles

PLAN_WRITERS = ("commander",)

requires_plan_writer = require_roles(*PLAN_WRITERS)
