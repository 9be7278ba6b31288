"""Who may change plans: the one place to tighten when people sign in.

For now the holder of the API token (BAOGONG_API_TOKEN) may, over the API and on the edit
page alike.
"""

from app.api.routes import requires_token, token_matches

# TODO: anyone holding the shared API token may change a plan, and nothing records who did;
# changing plans should be the commander's alone.
requires_plan_writer = requires_token


def may_change_plans(token):
    """Whether the token typed into the edit page lets its holder import a plan version."""
    return token_matches("BAOGONG_API_TOKEN", token)
