"""A real SMTP server for tests (aiosmtpd): mails are checked by what arrives."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.faults import free_port


class Inbox:
    """What the server received, in order; ``wait_for`` polls with a deadline.

    ``before_mail_from`` runs (in a thread) before a MAIL FROM is answered: a test holds a
    sender there, in the middle of its task. ``after_data`` runs once a message is stored,
    before the 250 that tells the sender so.
    """

    def __init__(
        self,
        before_mail_from: Callable[[], None] | None = None,
        after_data: Callable[[EmailMessage], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.accepted_at: list[float] = []  # time.monotonic() of each message, in order
        self.before_mail_from = before_mail_from
        self.after_data = after_data

    async def handle_MAIL(  # noqa: N802 -- aiosmtpd's handler name
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.before_mail_from is not None:
            await asyncio.to_thread(self.before_mail_from)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802 -- aiosmtpd's handler name
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
            self.accepted_at.append(time.monotonic())
        if self.after_data is not None:
            await asyncio.to_thread(self.after_data, message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [message for message in self.messages if message["To"] == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(
            f"{count} mail(s) to {address} did not arrive within {timeout} s: {self.to(address)}"
        )


@contextmanager
def smtp_server(inbox: Inbox | None = None) -> Iterator[tuple[str, Inbox]]:
    """A server on a free loopback port; yields its MAIL_URL and its inbox."""
    inbox = inbox or Inbox()
    controller: Any = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}", inbox
    finally:
        controller.stop()
