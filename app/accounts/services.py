"""Creating users, checking passwords and issuing tokens; services flush, callers commit."""

import hashlib
import logging
import re
import secrets
from datetime import timedelta

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts.models import ROLES, ApiToken, User
from app.errors import Conflict, InvalidInput, NotFound
from app.extensions import db
from app.organisation.models import Department, Person
from app.supply.models import Supplier
from app.types import utcnow

log = logging.getLogger(__name__)

# Printable, no spaces: a username is typed at a prompt and on the command line.
USERNAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,64}")
MIN_PASSWORD = 8
PREFIX_LENGTH = 8
# Every token starts with this, so it never begins with "-" (which a shell command would
# take for an option) and a secret scanner can tell a Baogong token in a leaked file.
TOKEN_LEAD = "bg_"
USE_NOTED_EVERY = timedelta(minutes=1)

# Compared against when the username is unknown, so a wrong name takes as long as a
# wrong password and does not tell which names exist.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))

# Which organisation each role acts for: a liaison speaks for a department, a supplier
# user for one supplier; the others may name a department.
NEEDS_DEPARTMENT = ("liaison",)
NEEDS_SUPPLIER = ("supplier",)


def hash_token(token):
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(
    username,
    role,
    department_code=None,
    supplier_code=None,
    person_code=None,
    password=None,
    display_name=None,
):
    """A new user; refuses an unknown role, organisation or person, or a role without the
    organisation it acts for, naming the field."""
    username = (username or "").strip()
    errors = {}
    if not USERNAME.fullmatch(username):
        errors["username"] = ["1 to 64 characters, no spaces"]
    if role not in ROLES:
        errors["role"] = [f"must be one of {', '.join(ROLES)}"]

    person = _by_code(Person, person_code, "person", errors)
    department = _by_code(Department, department_code, "department", errors)
    supplier = _by_code(Supplier, supplier_code, "supplier", errors)
    if person is not None and department is None and not department_code:
        department = person.department if role not in NEEDS_SUPPLIER else None
    _check_organisation(role, department, supplier, department_code, supplier_code, errors)
    if person is not None and department is not None and person.department_id != department.id:
        errors["person"] = [f"{person.code} belongs to another department"]
    if person is not None and db.session.scalar(select(User.id).filter_by(person_id=person.id)):
        errors["person"] = [f"{person.code} already has a user"]
    if password is not None:
        _check_password(password, errors)
    if errors:
        raise InvalidInput("user refused", errors)

    taken = select(User.id).where(func.lower(User.username) == username.lower())
    if db.session.scalar(taken) is not None:
        raise Conflict(f"user {username} exists (user names ignore case)")
    user = User(
        username=username,
        display_name=display_name or (person.name if person else None),
        role=role,
        department=department,
        supplier=supplier,
        person=person,
        password_hash=generate_password_hash(password) if password is not None else None,
    )
    db.session.add(user)
    db.session.flush()
    log.info("user %s: created with role %s", username, role)
    return user


def _by_code(model, code, field, errors):
    if not code:
        return None
    row = db.session.scalar(select(model).filter_by(code=code))
    if row is None:
        errors[field] = [f"no {field} {code!r}"]
    return row


def _check_organisation(role, department, supplier, department_code, supplier_code, errors):
    """The organisation must fit the role; a field already refused is not named twice."""
    if role in NEEDS_DEPARTMENT and department is None and "department" not in errors:
        errors["department"] = [f"a {role} needs a department"]
    if role in NEEDS_SUPPLIER:
        if supplier is None and "supplier" not in errors:
            errors["supplier"] = [f"a {role} user needs a supplier"]
        if department_code:
            errors["department"] = [f"a {role} user acts for a supplier, not a department"]
    elif supplier_code and role in ROLES:
        errors["supplier"] = ["only a supplier user acts for a supplier"]


def _check_password(password, errors):
    if len(password) < MIN_PASSWORD:
        errors["password"] = [f"at least {MIN_PASSWORD} characters"]


def set_password(user, password):
    """Give the user a new password (or take it away with None: token-only)."""
    if password is not None:
        errors = {}
        _check_password(password, errors)
        if errors:
            raise InvalidInput("password refused", errors)
    user.password_hash = generate_password_hash(password) if password is not None else None
    db.session.flush()


def _named(username):
    """User names ignore case, as creating them does."""
    return select(User).where(func.lower(User.username) == (username or "").strip().lower())


def user_by_username(username):
    user = db.session.scalar(_named(username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def authenticate(username, password):
    """The active user with this username and password, or None: the caller cannot tell
    a wrong name from a wrong password, and neither can its timing."""
    user = db.session.scalar(_named(username))
    stored = user.password_hash if user is not None and user.password_hash else None
    matches = check_password_hash(stored or _DUMMY_HASH, password or "")
    if user is None or stored is None or not matches or not user.active:
        log.info("user %r: sign-in refused", (username or "")[:64])
        return None
    return user


def issue_token(user, name="api"):
    """Make a token for the user; returns (row, token). Only the hash is stored, so this
    is the one time the token can be shown."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("token refused", {"name": ["1 to 100 characters"]})
    if not user.active:
        raise InvalidInput("token refused", {"username": [f"{user.username} is deactivated"]})
    token = TOKEN_LEAD + secrets.token_urlsafe(32)
    row = ApiToken(user=user, name=name, token_hash=hash_token(token), prefix=token[:PREFIX_LENGTH])
    db.session.add(row)
    db.session.flush()
    log.info("user %s: token %s issued (%s)", user.username, row.prefix, name)
    return row, token


def revoke_token(prefix):
    """Revoke the one live token starting with `prefix`; refuses none or several."""
    prefix = (prefix or "").strip()
    if len(prefix) < PREFIX_LENGTH:
        message = f"give the token's first {PREFIX_LENGTH} characters, or all of it"
        raise InvalidInput("revoke refused", {"prefix": [message]})
    live = select(ApiToken).where(
        ApiToken.prefix == prefix[:PREFIX_LENGTH], ApiToken.revoked_at.is_(None)
    )
    rows = db.session.scalars(live).all()
    # The whole token picks one among tokens that share a prefix.
    if len(prefix) > PREFIX_LENGTH:
        rows = [row for row in rows if row.token_hash == hash_token(prefix)]
    if not rows:
        raise NotFound(f"no live token starting with {prefix[:PREFIX_LENGTH]!r}")
    if len(rows) > 1:
        raise Conflict(f"{len(rows)} live tokens start with {prefix!r}: give the whole token")
    rows[0].revoked_at = utcnow()
    db.session.flush()
    log.info("user %s: token %s revoked", rows[0].user.username, rows[0].prefix)
    return rows[0]


def user_for_token(token, at=None):
    """The active user holding this live token, or None; notes when the token was used."""
    if not token:
        return None
    row = db.session.scalar(select(ApiToken).filter_by(token_hash=hash_token(token)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    at = at or utcnow()
    # Noted once a minute at most, so busy clients do not write on every request.
    if row.last_used_at is None or at - row.last_used_at >= USE_NOTED_EVERY:
        row.last_used_at = at
    return row.user


# The people of the region pack who sign in, by their Person role; staff are paged only.
PERSON_ROLES_SIGNING_IN = ("commander", "liaison", "inspector")


def ensure_person_users(people):
    """A user named by the person's code for each commander, liaison and inspector among
    `people` who has none yet, with no password: a token, or a password set later, lets
    them in. Users already there are left as they are. Returns the counts."""
    counts = {"created": 0, "unchanged": 0}
    taken = set(db.session.scalars(select(User.username)))
    for person in people:
        if person.role not in PERSON_ROLES_SIGNING_IN:
            continue
        if person.code in taken:
            counts["unchanged"] += 1
            continue
        db.session.add(
            User(
                username=person.code,
                display_name=person.name,
                role=person.role,
                department_id=person.department_id,
                person=person,
            )
        )
        counts["created"] += 1
    db.session.flush()
    return counts


def describe(user):
    """A user as the API and the command line show them."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "department": user.department.code if user.department else None,
        "supplier": user.supplier.code if user.supplier else None,
        "person": user.person.code if user.person else None,
        "active": user.active,
    }


def deactivate(user):
    """Lock the user out: sessions are refused (an inactive user never loads) and every
    token is revoked. Returns how many tokens were revoked."""
    user.active = False
    revoked = 0
    for token in user.tokens:
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            revoked += 1
    db.session.flush()
    log.info("user %s: deactivated, %d tokens revoked", user.username, revoked)
    return revoked


def change_role(user, role, department_code=None):
    """Another role for the user, checked as a new user's would be."""
    errors = {}
    if role not in ROLES:
        errors["role"] = [f"must be one of {', '.join(ROLES)}"]
    department = _by_code(Department, department_code, "department", errors)
    department = department if department_code else user.department
    _check_organisation(role, department, user.supplier, department_code, None, errors)
    if errors:
        raise InvalidInput("role refused", errors)
    user.role, user.department = role, department
    db.session.flush()
    log.info("user %s: role now %s", user.username, role)
    return user
