"""Emergency plans: response levels, rule tables, duties and settings, versioned."""

from sqlalchemy import JSON, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime

LEVELS = ("I", "II", "III", "IV")


class Plan(db.Model):
    """One version of an emergency plan (应急预案); an incident keeps the version it used.

    The whole plan document is kept as imported; duties are also rows so assignments can
    point at them.
    """

    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(default=1)
    title: Mapped[str] = mapped_column(String(300))
    jurisdiction: Mapped[str] = mapped_column(String(12))
    document: Mapped[dict] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    imported_at = mapped_column(UTCDateTime, nullable=False)

    @property
    def title_en(self):
        return self.document.get("title_en")

    @property
    def settings(self):
        return self.document.get("settings", {})

    def level(self, code):
        """The plan's entry for response level `code` (I to IV)."""
        return self.document["levels"][code]


@event.listens_for(Plan, "before_update")
def _versions_are_kept(mapper, connection, plan):
    """A stored version is what incidents activated with it ran on: it never changes."""
    raise RuntimeError(f"plan {plan.name} version {plan.version} is stored; import a new version")
