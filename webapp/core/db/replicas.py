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

from sqlalchemy import Engine
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
# NULL (not a replica, or nothing replayed since it started) reads as "not usable".
_USABLE = (
    "SELECT COALESCE(pg_last_wal_replay_lsn() >= %(position)s::pg_lsn"
    " AND (pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn()"
    " OR now() - pg_last_xact_replay_timestamp() <= %(max_lag_ms)s * interval '1 millisecond'), false)"
)


def lsn_key(position: str) -> int:
    """A valid position as a number, to compare two of them."""
    high, low = position.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class _Replica:
    engine: Engine
    skip_until: float = 0.0


class ReplicaSet:
    """The replicas' autocommit read engines, and the choice among them for one request."""

    def __init__(self, engines: list[Engine], max_lag_ms: int) -> None:
        self._replicas = [_Replica(engine) for engine in engines]
        self._max_lag_ms = max(0, int(max_lag_ms))

    @property
    def engines(self) -> list[Engine]:
        return [replica.engine for replica in self._replicas]

    def choose(self, position: str | None) -> Engine | None:
        """A replica that has replayed ``position`` (validated by the caller) within the lag, or None."""
        count = len(self._replicas)
        start = random.randrange(count) if count > 1 else 0
        params = {"position": position or START_OF_WAL, "max_lag_ms": self._max_lag_ms}
        for offset in range(count):
            replica = self._replicas[(start + offset) % count]
            if replica.skip_until > time.monotonic():
                continue
            try:
                # Replay only moves forward, so a check that passed on any connection to
                # this server still holds for the connection the request then takes.
                with replica.engine.connect() as connection:
                    usable = bool(connection.exec_driver_sql(_USABLE, params).scalar())
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
                return replica.engine
        return None
