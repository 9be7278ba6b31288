"""Sign-in and who is who: passwords on the pages, hashed tokens on the API, roles checked
before anything is done, and the users commands."""

import hashlib
import json

import pytest
from sqlalchemy import func, select

from app.accounts.models import ApiToken, User
from app.errors import InvalidInput
from app.extensions import db
from tests.helpers import bearer, csrf_token, make_user, sign_in

PASSWORD = "correct horse battery"
SIGNED_IN = 'action="/logout"'


@pytest.fixture
def commander(app, region):
    return make_user("commander", department="government", password=PASSWORD,
                     username="chen")  # fmt: skip


def test_a_password_signs_in_and_out_with_csrf(client, commander):
    signed_in = sign_in(client, "chen", PASSWORD)
    home = client.get("/").get_data(as_text=True)
    forged = client.post("/logout", data={"csrf_token": "forged"})
    still = client.get("/").get_data(as_text=True)
    token = csrf_token(still)
    signed_out = client.post("/logout", data={"csrf_token": token})
    after = client.get("/").get_data(as_text=True)

    assert signed_in.status_code == 302 and signed_in.location == "/"
    assert "chen" in home and 'action="/logout"' in home
    assert forged.status_code == 400 and "chen" in still
    assert signed_out.status_code == 302
    assert 'action="/logout"' not in after and "/login" in after


def test_a_wrong_password_and_an_unknown_name_get_one_message(client, commander):
    wrong = sign_in(client, "chen", "not the password")
    nobody = sign_in(client, "nobody", PASSWORD)

    assert wrong.status_code == nobody.status_code == 401
    assert "用户名或密码错误" in wrong.get_data(as_text=True)
    assert wrong.get_data(as_text=True) == nobody.get_data(as_text=True).replace(
        'value="nobody"', 'value="chen"'
    )
    assert SIGNED_IN not in client.get("/").get_data(as_text=True)


def test_signing_in_needs_the_forms_csrf_token(client, commander):
    response = client.post("/login", data={"username": "chen", "password": PASSWORD})

    assert response.status_code == 422
    assert SIGNED_IN not in client.get("/").get_data(as_text=True)


def test_a_token_only_user_cannot_sign_in_with_a_password(client, region):
    make_user("liaison", department="government", username="li")

    assert sign_in(client, "li", "").status_code == 422
    assert sign_in(client, "li", "anything at all").status_code == 401


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        ("/supply?lang=en", "/supply?lang=en"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_signing_in_goes_back_only_to_a_page_of_this_site(client, commander, target, lands):
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "username": "chen", "password": PASSWORD,
            "next": target}  # fmt: skip

    assert client.post("/login", data=data).location == lands


def test_the_login_page_speaks_chinese_and_english(client):
    from flask_babel import refresh

    zh = client.get("/login").get_data(as_text=True)
    refresh()
    en = client.get("/login?lang=en").get_data(as_text=True)

    assert "登录" in zh and "用户名" in zh and "密码" in zh
    assert "Sign in" in en and "Username" in en


def test_a_token_says_who_is_calling(client, commander):
    user, token = commander

    me = client.get("/api/me", headers=bearer(token))

    assert me.status_code == 200
    assert me.get_json() | {"id": 0} == {
        "id": 0, "username": "chen", "display_name": None, "role": "commander",
        "department": "government", "supplier": None, "person": None, "active": True,
    }  # fmt: skip
    assert db.session.get(ApiToken, user.tokens[0].id).last_used_at is not None


def test_without_a_token_the_api_answers_401_in_json(client, commander):
    response = client.get("/api/me")

    assert response.status_code == 401 and response.mimetype == "application/json"
    assert response.get_json()["code"] == 401 and "Bearer" in response.get_json()["message"]


def test_a_revoked_token_is_refused(app, client, commander):
    from app.accounts.services import revoke_token

    _user, token = commander
    assert client.get("/api/me", headers=bearer(token)).status_code == 200

    revoke_token(token[:8])
    db.session.commit()

    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_a_disabled_user_is_refused_by_token_and_password(client, commander):
    user, token = commander
    user.active = False
    db.session.commit()

    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert sign_in(client, "chen", PASSWORD).status_code == 401


def test_the_api_does_not_take_the_page_session(client, commander):
    """A browser sends the cookie along on its own, so another site's page could use it."""
    sign_in(client, "chen", PASSWORD)

    assert client.get("/api/me").status_code == 401


def test_a_token_is_stored_only_as_its_hash(commander):
    user, token = commander

    row = db.session.scalars(select(ApiToken).filter_by(user_id=user.id)).one()

    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:8] and len(token) >= 43
    # A fixed lead: a token never starts with "-", which the CLI would read as an option.
    assert token.startswith("bg_")
    stored = [str(value) for value in db.session.execute(select(ApiToken.__table__)).one()]
    assert token not in stored


def test_a_password_is_stored_only_as_its_hash(commander):
    user, _token = commander

    assert PASSWORD not in user.password_hash and user.password_hash.startswith(
        ("scrypt:", "pbkdf2:")
    )


def test_a_page_for_commanders_sends_the_others_to_sign_in_or_away(client, region):
    make_user("viewer", password=PASSWORD, username="wang")

    anonymous = client.post("/supply", data={})
    sign_in(client, "wang", PASSWORD)
    viewer = client.post("/supply", data={})

    assert anonymous.status_code == 302 and anonymous.location.startswith("/login?next=")
    assert viewer.status_code == 403 and viewer.mimetype == "text/html"
    assert "指挥长" in viewer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("role", "organisation", "field"),
    [
        ("liaison", {}, "department"),
        ("supplier", {}, "supplier"),
        ("supplier", {"supplier_code": "ZH-SUP-001", "department_code": "government"},
         "department"),
        ("viewer", {"supplier_code": "ZH-SUP-001"}, "supplier"),
        ("chef", {}, "role"),
        ("liaison", {"department_code": "no-such"}, "department"),
        ("inspector", {"person_code": "no-such"}, "person"),
    ],
)  # fmt: skip
def test_an_organisation_that_does_not_fit_the_role_is_refused(region, role, organisation, field):
    from app.accounts.services import create_user

    with pytest.raises(InvalidInput) as refused:
        create_user("someone", role, **organisation)

    assert field in refused.value.errors
    assert db.session.scalar(select(func.count(User.id)).filter_by(username="someone")) == 0


def test_a_person_lends_a_user_their_department_and_name(region):
    from app.accounts.services import create_user

    user = create_user("wu", "liaison", person_code="gov-staff-1")

    assert user.department.code == "government" and user.display_name == "吴佳怡"


def test_a_person_is_one_user_of_their_own_department(region):
    from app.accounts.services import create_user
    from app.errors import Conflict

    with pytest.raises(InvalidInput) as other:
        create_user("lin", "liaison", department_code="health", person_code="ms-staff-1")
    with pytest.raises(InvalidInput) as twice:
        create_user("zhou2", "liaison", person_code="gov-liaison-1")  # the pack made one
    with pytest.raises(Conflict):
        create_user("GOV-COMMANDER-1", "viewer", department_code="government")

    assert "another department" in other.value.errors["person"][0]
    assert "already has a user" in twice.value.errors["person"][0]


def test_a_new_password_ends_earlier_sessions_and_deactivation_ends_all(app, client, commander):
    user, token = commander
    sign_in(client, "chen", PASSWORD)
    assert client.get("/incidents").status_code == 200

    changed = _cli(app, "set-password", "chen", stdin="another long password\n")
    assert changed.exit_code == 0
    assert client.get("/incidents").status_code in (302, 303)  # signed out

    sign_in(client, "chen", "another long password")
    assert client.get("/incidents").status_code == 200
    gone = _cli(app, "deactivate", "chen")
    assert gone.exit_code == 0 and json.loads(gone.stdout)["tokens_revoked"] == 1
    assert client.get("/incidents").status_code in (302, 303)
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_the_cli_changes_a_role(app, region):
    make_user("viewer", department="health", username="xu")
    moved = _cli(app, "set-role", "xu", "--role", "liaison")
    refused = _cli(app, "set-role", "xu", "--role", "supplier")

    assert moved.exit_code == 0 and json.loads(moved.stdout)["role"] == "liaison"
    assert refused.exit_code == 2 and "supplier" in refused.stderr


def test_the_region_pack_gives_its_commanders_liaisons_and_inspectors_users(region):
    users = {user.username: user for user in db.session.scalars(select(User))}

    assert users["gov-commander-1"].role == "commander"
    assert users["gov-liaison-1"].department.code == "government"
    assert users["gov-liaison-1"].password_hash is None
    assert "gov-staff-1" not in users
    assert region["users"]["created"] == len(users)


def _cli(app, *args, stdin=None):
    return app.test_cli_runner().invoke(args=["users", *args], input=stdin)


def test_the_cli_creates_a_user_and_a_token_that_works(app, client, region):
    created = _cli(app, "create", "boss", "--role", "commander", "--department", "government",
                   "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    issued = _cli(app, "token", "boss", "--name", "laptop")

    assert created.exit_code == 0 and len(created.stdout.splitlines()) == 1
    assert json.loads(created.stdout) | {"id": 0} == {"username": "boss", "role": "commander",
                                                      "id": 0}  # fmt: skip
    assert issued.exit_code == 0 and len(issued.stdout.splitlines()) == 1
    token = json.loads(issued.stdout)["token"]
    assert json.loads(issued.stdout) == {"username": "boss", "token": token}
    assert client.get("/api/me", headers=bearer(token)).get_json()["username"] == "boss"
    assert sign_in(client, "boss", PASSWORD).status_code == 302


def test_the_cli_revokes_a_token_by_its_prefix(app, client, region):
    _cli(app, "create", "boss", "--role", "commander")
    token = json.loads(_cli(app, "token", "boss").stdout)["token"]

    revoked = _cli(app, "revoke-token", token[:8])
    again = _cli(app, "revoke-token", token[:8])
    listed = _cli(app, "list")

    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["prefix"] == token[:8]
    assert again.exit_code == 2 and "no live token" in again.stderr
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert len(listed.stdout.splitlines()) == 1
    boss = next(u for u in json.loads(listed.stdout)["users"] if u["username"] == "boss")
    assert boss["tokens"][0]["revoked"] is True and token not in listed.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["create", "x", "--role", "chef"], "role"),
        (["create", "x", "--role", "liaison", "--department", "nowhere"], "department"),
        (["create", "x", "--role", "liaison"], "department"),
        (["create", "x", "--role", "supplier"], "supplier"),
        (["token", "nobody"], "nobody"),
        (["revoke-token", "short"], "prefix"),
    ],
)
def test_the_cli_refuses_bad_input_with_exit_2_naming_the_field(app, region, args, field):
    result = _cli(app, *args)

    assert result.exit_code == 2, result.output
    assert result.stdout == "" and field in result.stderr


def test_the_cli_refuses_a_short_password_and_a_taken_name(app, region):
    short = _cli(app, "create", "x", "--role", "viewer", "--password-stdin", stdin="short\n")
    _cli(app, "create", "y", "--role", "viewer")
    taken = _cli(app, "create", "y", "--role", "viewer")

    assert short.exit_code == 2 and "password" in short.stderr
    assert taken.exit_code == 2 and "exists" in taken.stderr


def test_names_ignore_case_and_a_deactivated_user_gets_no_token(app, client, commander):
    assert sign_in(client, "CHEN", PASSWORD).status_code == 302
    _cli(app, "deactivate", "chen")
    refused = _cli(app, "token", "chen")

    assert refused.exit_code == 2 and "deactivated" in refused.stderr and refused.stdout == ""
