"""Read replicas: which one may serve a GET, decided by one statement on it.

A replica serves a read when it has replayed the WAL up to the position the client must
see (its last write, if it carries one) and is not further behind than the allowed lag;
else the read goes to the primary. docs/scaling.md explains the rule and its cost.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

# pg_lsn's text form. Anything else would make the ::pg_lsn cast raise DataError (a 500).
LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
START_OF_WAL = "0/0"

# A replica that refused a connection or failed the check is left alone this long, so a
# host that is down costs one connect timeout per interval, not one per GET.
REPLICA_BACKOFF_S = 5.0

# Lag is the age of the last transaction the replica replayed, or 0 once it has replayed
# everything it received (an idle primary sends nothing, and then nothing is missing).
# NULL (not a replica, or nothing replayed since it started) reads as "not usable". The
# replayed position comes back too: a check that passed may be reused (ReplicaSet).
_USABLE = (
    "SELECT pg_last_wal_replay_lsn()::text, COALESCE(pg_last_wal_replay_lsn() >= %(position)s::pg_lsn"
    " AND (pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn()"
    " OR now() - pg_last_xact_replay_timestamp() <= %(max_lag_ms)s * interval '1 millisecond'), false)"
)


# The lag as the check above judges it, in seconds (NULL when that check would read it as
# "not usable"), and the replayed position, for the replica lag gauges (core/metrics).
# Kept beside _USABLE so that the figure an operator watches is the one routing acts on.
_LAG = (
    "SELECT pg_last_wal_replay_lsn()::text AS replayed,"
    " CASE WHEN pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn() THEN 0"
    " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag_seconds"
)


@dataclass(frozen=True)
class ReplicaLag:
    """What one replica says of itself: how far behind it is and the position it has replayed."""

    seconds: float
    replayed: str


def replica_lag(connection: Connection) -> ReplicaLag | None:
    """The lag of the replica ``connection`` is on, or None if the routing would not use it
    (not a replica, nothing replayed since it started)."""
    row = connection.exec_driver_sql(_LAG).one()
    if row.replayed is None or row.lag_seconds is None:
        return None
    return ReplicaLag(max(0.0, float(row.lag_seconds)), str(row.replayed))


def replica_label(engine: Engine) -> str:
    """host:port of a replica's engine: a bounded label that carries no credentials."""
    url = engine.url
    return f"{url.host or 'local'}:{url.port or 5432}"


def lsn_key(position: str) -> int:
    """A valid position as a number, to compare two of them."""
    high, low = position.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class _Replica:
    engine: Engine
    skip_until: float = 0.0
    # What the last check that passed proved, reused until ``fresh_until``: the replica had
    # replayed up to ``replayed`` (a lsn_key), within the lag bound less the reuse window.
    replayed: int = -1
    fresh_until: float = 0.0


class ReplicaSet:
    """The replicas' autocommit read engines, and the choice among them for one request.

    A check that passed is reused for ``reuse_ms`` by requests whose position the replica
    had already replayed: replay only moves forward, and the check demanded a lag within
    the bound less that window, so the data such a request reads is still within the
    bound. A routed GET then costs what a GET on the primary costs (one statement, one
    checkout) instead of two of each (bench/README.md). A position beyond what the last
    check saw is checked again.
    """

    def __init__(self, engines: list[Engine], max_lag_ms: int, reuse_ms: int = 0) -> None:
        self._replicas = [_Replica(engine) for engine in engines]
        max_lag_ms = max(0, int(max_lag_ms))
        # Never longer than the bound itself: with 0 (only a replica that applied all it
        # received) every request is checked.
        self._reuse_s = min(max(0, int(reuse_ms)), max_lag_ms) / 1000
        self._checked_lag_ms = max_lag_ms - int(self._reuse_s * 1000)

    @property
    def engines(self) -> list[Engine]:
        return [replica.engine for replica in self._replicas]

    def choose(self, position: str | None) -> Engine | None:
        """A replica that has replayed ``position`` (validated by the caller) within the lag, or None."""
        connection = self.connect(position)
        if connection is None:
            return None
        engine = connection.engine
        # Replay only moves forward, so a check that passed on any connection to this
        # server still holds for the connection the session then takes.
        connection.close()
        return engine

    def connect(self, position: str | None) -> Connection | None:
        """A connection to a replica that has replayed ``position`` (validated by the
        caller) within the lag, checked out for the caller to read on and close; or None."""
        count = len(self._replicas)
        start = random.randrange(count) if count > 1 else 0
        wanted = lsn_key(position) if position else 0
        for offset in range(count):
            replica = self._replicas[(start + offset) % count]
            now = time.monotonic()
            if replica.skip_until > now:
                continue
            try:
                connection = replica.engine.connect()
                if replica.fresh_until > now and replica.replayed >= wanted:
                    return connection
                try:
                    replayed, usable = connection.exec_driver_sql(
                        _USABLE,
                        {"position": position or START_OF_WAL, "max_lag_ms": self._checked_lag_ms},
                    ).one()
                except BaseException:
                    connection.close()
                    raise
            except DBAPIError:
                replica.skip_until = time.monotonic() + REPLICA_BACKOFF_S
                log.warning(
                    "replica %s unavailable; reads go elsewhere for %.0f s",
                    replica.engine.url.render_as_string(hide_password=True),
                    REPLICA_BACKOFF_S,
                    exc_info=True,
                )
                continue
            if usable:
                if self._reuse_s and replayed is not None:
                    replica.replayed = lsn_key(replayed)
                    replica.fresh_until = now + self._reuse_s
                return connection
            connection.close()
        return None
