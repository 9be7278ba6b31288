"""Drill runs and their simulated clock."""

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime


class DrillRun(db.Model):
    """One run of a drill scenario (演练); `sim_now` is the simulated clock every job reads."""

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario: Mapped[str] = mapped_column(String(200))
    scenario_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="running")
    sim_start = mapped_column(UTCDateTime, nullable=False)
    sim_end = mapped_column(UTCDateTime, nullable=False)
    sim_now = mapped_column(UTCDateTime, nullable=False)
    started_at = mapped_column(UTCDateTime, nullable=False)
    finished_at = mapped_column(UTCDateTime)
    out_dir: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # The report as written at the end of the run; pages read it from here, not from the
    # output folder, which a later run may overwrite.
    report: Mapped[dict | None] = mapped_column(JSON)
    # Where this drill's notifications go besides the in-app inbox, by channel:
    # {"email": {"host", "port", ...}, "dingtalk": {"url", "secret"}, "sms": {"url", "token"}}.
    # A channel left out is skipped, never sent to a real address.
    notification_endpoints: Mapped[dict | None] = mapped_column(JSON)
