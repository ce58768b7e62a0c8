"""The tasks a job may name: registered by kind, at import, by the module that owns them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

# A task runs in a unit of work of its own: its writes and the job's "succeeded" are one
# commit, so a task redelivered after that commit finds the job finished and does nothing.
TaskFunction = Callable[[Session, dict[str, Any]], Any]


# What a finished job keeps of its payload (passwords a bulk create hashed, say).
Redact = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Task:
    kind: str
    run: TaskFunction
    max_attempts: int
    redact: Redact | None = None


TASKS: dict[str, Task] = {}


class PermanentFailure(Exception):
    """A task's answer that no retry can change (the job fails now, with ``error``, a problem
    document as the API would have answered it); its writes are rolled back."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(error.get("detail", "the job failed"))
        self.error = dict(error)


def task(
    kind: str, *, max_attempts: int = 5, redact: Redact | None = None
) -> Callable[[TaskFunction], TaskFunction]:
    """Register ``run(session, payload) -> result`` as the task named ``kind``.

    ``redact(payload)`` is what the job keeps of its payload once it has succeeded or
    failed for good: secrets needed to run it are not stored for longer. A DomainError
    the task raises fails the job with the problem a request would have answered.

    It must be idempotent: a job runs at least once, and a worker that dies after a side
    effect outside the database (a mail sent) but before the commit runs it again.
    """

    def register(run: TaskFunction) -> TaskFunction:
        declared = Task(kind, run, max_attempts, redact)
        if TASKS.setdefault(kind, declared) != declared:
            raise ValueError(f"task {kind!r} is registered twice")
        return run

    return register
