"""What the scaling design relies on, checked on a real primary, replica and PgBouncer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import errors

from tests.cluster.conftest import IDLE_TX_TIMEOUT, LOCK_TIMEOUT, STATEMENT_TIMEOUT, Cluster

pytestmark = pytest.mark.cluster


def scalar(connection: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


@pytest.fixture
def primary(cluster: Cluster) -> Iterator[Any]:
    connection = cluster.connect(cluster.primary_url)
    yield connection
    connection.close()


@pytest.fixture
def replica(cluster: Cluster) -> Iterator[Any]:
    connection = cluster.connect(cluster.replica_url)
    yield connection
    connection.close()


@pytest.fixture
def notes(primary: Any) -> Iterator[str]:
    """A table of the test's own, made on the primary (DDL replicates like any write)."""
    with primary.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS cluster_notes (id serial PRIMARY KEY, body text)")
    yield "cluster_notes"
    with primary.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS cluster_notes")


def write_and_read_lsn(primary: Any, body: str) -> tuple[int, str]:
    """Insert a row and return its id and the WAL position read after the COMMIT.

    Read inside the transaction, the position is before the commit record, and a replica
    that has replayed up to it may not show the row yet.
    """
    with primary.cursor() as cursor:
        cursor.execute("INSERT INTO cluster_notes (body) VALUES (%s) RETURNING id", (body,))
        row_id: int = cursor.fetchone()[0]
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        lsn: str = cursor.fetchone()[0]
    return row_id, lsn


def visible(connection: Any, row_id: int) -> bool:
    return bool(scalar(connection, "SELECT EXISTS (SELECT 1 FROM cluster_notes WHERE id = %s)", (row_id,)))


def replayed(replica: Any, lsn: str) -> bool:
    return bool(scalar(replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)))


def test_roles_primary_writes_replica_is_in_recovery(primary: Any, replica: Any) -> None:
    assert scalar(primary, "SELECT pg_is_in_recovery()") is False
    assert scalar(replica, "SELECT pg_is_in_recovery()") is True
    with pytest.raises(errors.ReadOnlySqlTransaction):
        scalar(replica, "CREATE TABLE never_made (id int)")


def test_a_row_written_on_the_primary_appears_on_the_replica(
    primary: Any, replica: Any, notes: str, wait_until: Callable[..., float]
) -> None:
    row_id, lsn = write_and_read_lsn(primary, "hello")

    wait_until(lambda: replayed(replica, lsn), timeout=5, what="the replica replaying the commit")
    # The check read-your-writes relies on: a replay position at or past the one read
    # after COMMIT means the row (and the table made before it) are visible there.
    assert visible(replica, row_id)


def test_an_apply_delay_makes_the_replica_lag_then_catch_up(
    cluster: Cluster, primary: Any, replica: Any, notes: str, wait_until: Callable[..., float]
) -> None:
    cluster.run("delay", "1s")
    try:
        row_id, lsn = write_and_read_lsn(primary, "late")

        # The WAL arrives at once; only its replay waits, so a router must compare the
        # replay position, never the receive position.
        wait_until(
            lambda: bool(scalar(replica, "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,))),
            timeout=5,
            what="the WAL reaching the replica",
        )
        assert not replayed(replica, lsn)
        assert not visible(replica, row_id)
        lag = scalar(replica, "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())", (lsn,))
        assert lag > 0

        waited = wait_until(lambda: replayed(replica, lsn), timeout=5, what="the replica catching up")
        assert visible(replica, row_id)
        assert waited > 0.5
    finally:
        cluster.run("delay", "0")


def test_timeouts_are_in_force_through_pgbouncer(cluster: Cluster) -> None:
    connection = cluster.connect(cluster.bouncer_url, autocommit=False)
    try:
        assert scalar(connection, "SHOW statement_timeout") == STATEMENT_TIMEOUT
        assert scalar(connection, "SHOW lock_timeout") == LOCK_TIMEOUT
        assert scalar(connection, "SHOW idle_in_transaction_session_timeout") == IDLE_TX_TIMEOUT
        connection.rollback()

        start = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            scalar(connection, "SELECT pg_sleep(3)")
        assert time.monotonic() - start < 2.5
        connection.rollback()
        assert scalar(connection, "SELECT 1") == 1
    finally:
        connection.close()


def test_the_replica_has_the_same_timeouts(replica: Any) -> None:
    # ALTER DATABASE ... SET is a catalog row, replicated like any other.
    assert scalar(replica, "SHOW statement_timeout") == STATEMENT_TIMEOUT


def test_pgbouncer_refuses_startup_options(cluster: Cluster) -> None:
    # Why the engine must stop sending `options` when DATABASE_URL goes through PgBouncer.
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter: options"):
        cluster.connect(cluster.bouncer_url, options="-c statement_timeout=5000")


def test_set_local_lasts_one_transaction_through_pgbouncer(cluster: Cluster) -> None:
    connection = cluster.connect(cluster.bouncer_url, autocommit=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '100ms'")
            with pytest.raises(errors.QueryCanceled):
                cursor.execute("SELECT pg_sleep(0.5)")
        connection.rollback()
        # The pooled server connection goes back with the database's setting, not ours.
        assert scalar(connection, "SHOW statement_timeout") == STATEMENT_TIMEOUT
        connection.rollback()
    finally:
        connection.close()


def test_transaction_scoped_advisory_locks_work_through_pgbouncer(cluster: Cluster) -> None:
    first = cluster.connect(cluster.bouncer_url, autocommit=False)
    second = cluster.connect(cluster.bouncer_url, autocommit=False)
    try:
        assert scalar(first, "SELECT pg_try_advisory_xact_lock(4242)") is True
        assert scalar(second, "SELECT pg_try_advisory_xact_lock(4242)") is False
        second.rollback()
        first.commit()
        assert scalar(second, "SELECT pg_try_advisory_xact_lock(4242)") is True
        second.commit()
    finally:
        first.close()
        second.close()


def test_the_replica_can_stop_and_start_again(
    cluster: Cluster, primary: Any, notes: str, wait_until: Callable[..., float]
) -> None:
    cluster.run("stop-replica")
    try:
        assert cluster.run("status", check=False).returncode == 3
        with pytest.raises(psycopg2.OperationalError):
            cluster.connect(cluster.replica_url)
        # Written while the replica is down: the slot keeps the WAL until it returns.
        row_id, lsn = write_and_read_lsn(primary, "while away")
    finally:
        cluster.run("start-replica")

    replica = cluster.connect(cluster.replica_url)
    try:
        wait_until(lambda: replayed(replica, lsn), timeout=10, what="the restarted replica catching up")
        assert visible(replica, row_id)
    finally:
        replica.close()
    assert cluster.run("status").returncode == 0


def test_up_again_leaves_the_running_cluster_alone(cluster: Cluster, primary: Any) -> None:
    started_at = scalar(primary, "SELECT pg_postmaster_start_time()")

    again = cluster.run("up")

    assert f"export DATABASE_URL={cluster.bouncer_url}" in again.stdout.splitlines()
    assert "already running" in again.stderr
    assert scalar(primary, "SELECT pg_postmaster_start_time()") == started_at


def test_a_primary_outage_through_pgbouncer_fails_in_seconds_and_heals(
    cluster: Cluster, wait_until: Callable[..., float]
) -> None:
    # Last in the file: the replica's WAL receiver takes a few seconds to reconnect after.
    cluster.run("stop-primary")
    try:
        # Connecting to PgBouncer succeeds; the query waits for a server login that keeps
        # failing, until query_wait_timeout (5 s), never the default 120 s. The error text
        # depends on whether PgBouncer still had the server's parameters cached.
        start = time.monotonic()
        with pytest.raises(psycopg2.OperationalError):
            connection = cluster.connect(cluster.bouncer_url)
            try:
                scalar(connection, "SELECT 1")
            finally:
                connection.close()
        assert time.monotonic() - start < 8
    finally:
        cluster.run("start-primary")

    # Until server_login_retry (1 s) has passed since the last failed login, PgBouncer
    # refuses clients at once; then the primary that is back is used again.
    def answers() -> bool:
        try:
            connection = cluster.connect(cluster.bouncer_url)
        except psycopg2.OperationalError:
            return False
        try:
            return bool(scalar(connection, "SELECT 1") == 1)
        except psycopg2.OperationalError:
            return False
        finally:
            connection.close()

    assert wait_until(answers, timeout=3, what="PgBouncer using the restarted primary") < 3
