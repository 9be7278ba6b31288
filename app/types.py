"""Column types shared by every module."""

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """An instant stored as UTC; refuses naive datetimes so no local time slips in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} has no offset")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow():
    """The real current instant, timezone-aware."""
    return datetime.now(UTC)


def isoformat_utc(value):
    """An instant as ISO-8601 in UTC with a Z suffix, for reports and JSON."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_iso(value, zone_name=None):
    """An instant in the configured zone (Asia/Shanghai by default), to the minute, with
    its offset: what people read in messages and timeline details."""
    from zoneinfo import ZoneInfo

    if value is None:
        return None
    if zone_name is None:
        from flask import current_app

        zone_name = current_app.config["BAOGONG_TIMEZONE"]
    return value.astimezone(ZoneInfo(zone_name)).isoformat(timespec="minutes")
