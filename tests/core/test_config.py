"""Settings come from the environment; URLs are mapped to the driver we ship."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Config, TestingConfig, normalize_database_url
from webapp.core.db.engine import _postgresql_connect_args, build_engine


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg2://u@h:5432/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_map_to_psycopg2(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_pool_settings_are_read_from_the_environment() -> None:
    config = Config(
        {
            "DATABASE_URL": "postgresql://u@127.0.0.1/db",
            "DB_POOL_SIZE": "7",
            "DB_MAX_OVERFLOW": "3",
            "DB_POOL_TIMEOUT": "2.5",
            "DB_POOL_PRE_PING": "false",
        }
    )

    engine = build_engine(config.as_dict())

    assert engine.pool.size() == 7  # type: ignore[attr-defined]
    assert engine.pool._max_overflow == 3  # type: ignore[attr-defined]
    assert engine.pool._timeout == 2.5  # type: ignore[attr-defined]
    assert engine.pool._pre_ping is False
    assert engine.url.drivername == "postgresql+psycopg2"


def test_pool_size_is_not_forced_on_a_pool_that_does_not_take_it() -> None:
    engine = build_engine(Config({"DATABASE_URL": "sqlite://", "DB_POOL_SIZE": "7"}).as_dict())
    assert type(engine.pool).__name__ != "QueuePool"


def test_bad_values_fail_loudly() -> None:
    with pytest.raises(ValueError, match="DB_POOL_SIZE"):
        Config({"DB_POOL_SIZE": "many"})
    with pytest.raises(ValueError, match="SQL_ECHO"):
        Config({"SQL_ECHO": "maybe"})


def test_testing_config_prefers_test_database_url() -> None:
    config = TestingConfig({"TEST_DATABASE_URL": "postgres://h/t", "DATABASE_URL": "sqlite:///dev.db"})
    assert config.DATABASE_URL == "postgresql+psycopg2://h/t"


def test_every_postgresql_wait_is_bounded() -> None:
    args = _postgresql_connect_args(
        Config({"DB_CONNECT_TIMEOUT": "4", "DB_STATEMENT_TIMEOUT_MS": "1500"}).as_dict()
    )

    assert args["connect_timeout"] == 4
    assert "-c statement_timeout=1500" in args["options"]
    assert "-c lock_timeout=" in args["options"]
    assert "-c idle_in_transaction_session_timeout=" in args["options"]
    assert args["keepalives"] == 1  # a server gone without a TCP reset is noticed


def test_a_connect_timeout_of_zero_does_not_mean_wait_forever() -> None:
    # libpq reads connect_timeout=0 as "no timeout".
    assert _postgresql_connect_args(Config({"DB_CONNECT_TIMEOUT": "0"}).as_dict())["connect_timeout"] >= 1


def test_the_default_database_is_the_sqlite_file_the_readme_names() -> None:
    # A restructure once renamed it instance/webapp.core.db by rewriting module paths.
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")

    assert f"sqlite:///{root / 'instance' / 'webapp.db'}" == Config({}).DATABASE_URL
    assert "instance/webapp.db" in readme
