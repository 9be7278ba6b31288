"""User accounts and their API tokens."""

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.organisation.models import Department, Person
from app.supply.models import Supplier
from app.types import UTCDateTime, utcnow

# commander: runs the response and may change supply data; liaison: a member department's
# contact; supplier: a supplier's own staff; inspector: food safety; drill_controller: runs
# drills; viewer: reads only.
ROLES = ("commander", "liaison", "supplier", "inspector", "drill_controller", "viewer")


class User(UserMixin, db.Model):
    """Someone who signs in (用户): a role, the organisation acting through them, and the
    paged Person they are, when they are one. Service users have tokens and no password."""

    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint(
            "role IN ('commander', 'liaison', 'supplier', 'inspector', 'drill_controller',"
            " 'viewer')",
            name="role_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(20))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("supplier.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    department: Mapped[Department | None] = relationship()
    supplier: Mapped[Supplier | None] = relationship()
    person: Mapped[Person | None] = relationship()
    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user")

    @property
    def is_active(self):
        return self.active

    def get_id(self):
        """What the session cookie keeps: the id and a fingerprint of the password, so a
        new password (or none) signs every earlier session out."""
        return f"{self.id}.{self.session_fingerprint()}"

    def session_fingerprint(self):
        import hashlib

        return hashlib.sha256((self.password_hash or "").encode()).hexdigest()[:16]


class ApiToken(db.Model):
    """A bearer token of one user for the API. Only the SHA-256 of the token is kept; the
    token itself is shown once, when it is made."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8), index=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at = mapped_column(UTCDateTime)
    revoked_at = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")
