"""A bad setting stops the app at start-up with the variable named, never a traceback."""

import pytest

from app.config import ConfigError, from_environment


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BAOGONG_WORKERS", "abc"),
        ("BAOGONG_WORKERS", "1000"),
        ("BAOGONG_TIMEZONE", "Mars/Base"),
        ("BAOGONG_LOCALE", "fr"),
        ("BAOGONG_LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "foo://bar"),
        ("REDIS_URL", "garbage"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("BAOGONG_REGION", "/nonexistent"),
        ("BAOGONG_MAX_KM_OUTSIDE", "nan"),
        ("BAOGONG_MAX_KM_OUTSIDE", "-5"),
    ],
)
def test_bad_settings_are_refused_by_name(monkeypatch, tmp_path, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=name):
        from_environment(str(tmp_path))


def test_a_plain_postgresql_url_uses_psycopg(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")

    assert from_environment(str(tmp_path))["SQLALCHEMY_DATABASE_URI"].startswith(
        "postgresql+psycopg://"
    )
