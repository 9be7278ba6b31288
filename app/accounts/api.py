"""The API's answer to who is calling."""

from flask.views import MethodView
from marshmallow import fields

from app.accounts.access import acting_user, require_roles
from app.accounts.services import describe
from app.api.routes import Blueprint, NoQuery, StrictSchema

blp = Blueprint("me", __name__, url_prefix="/api", description="The calling user")


class MeSchema(StrictSchema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String(allow_none=True)
    role = fields.String()
    department = fields.String(allow_none=True)
    supplier = fields.String(allow_none=True)
    person = fields.String(allow_none=True)
    active = fields.Boolean()


@blp.route("/me")
class Me(MethodView):
    @require_roles()
    @blp.arguments(NoQuery, location="query", as_kwargs=True)
    @blp.response(200, MeSchema)
    @blp.alt_response(401, description="No valid token")
    def get(self):
        """The user whose token the request carries: role, department and supplier codes."""
        return describe(acting_user())
