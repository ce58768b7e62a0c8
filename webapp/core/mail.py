"""Mail, sent only by a job (never inside a request): over SMTP when MAIL_URL is set,
else to the log and a folder of .eml files (the dev mailbox)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import current_app
from sqlalchemy.orm import Session

from webapp.core.jobs import Job, enqueue, task

log = logging.getLogger(__name__)

SEND_MAIL = "mail.send"


def send_mail_later(session: Session, *, to: str, subject: str, text: str) -> Job:
    """Queue a plain-text mail in ``session``'s transaction: sent after the commit, by a job."""
    return enqueue(session, SEND_MAIL, {"to": to, "subject": subject, "text": text})


@task(SEND_MAIL, max_attempts=8)
def send_mail(_session: Session, payload: dict[str, Any]) -> dict[str, str]:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    # Stable per job would let a receiver drop a redelivered copy; a fresh one per attempt
    # is what every SMTP client does, so duplicates stay visible in tests and logs.
    message["Message-ID"] = make_msgid(domain="webapp.local")
    text = payload["text"]
    # Plain ASCII goes as it is: quoted-printable would fold a long link with "=" soft
    # breaks and turn "token=" into "token=3D" for anyone reading the dev mailbox's files.
    plain = text.isascii() and all(len(line) <= 998 for line in text.splitlines())
    message.set_content(text, cte="7bit" if plain else "quoted-printable")
    url = current_app.config.get("MAIL_URL") or ""
    if url:
        _send_smtp(url, message, float(current_app.config.get("MAIL_TIMEOUT_SECONDS", 10.0)))
    else:
        _to_mailbox(Path(current_app.config["MAIL_DIR"]), message)
    return {"message_id": str(message["Message-ID"])}


def _send_smtp(url: str, message: EmailMessage, timeout: float) -> None:
    """MAIL_URL: smtp://[user:password@]host[:port][?starttls=true], or smtps:// for TLS from the start."""
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port
    query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(host, port or 465, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port or 25, timeout=timeout)
    with client:
        if parts.scheme == "smtp" and query.get("starttls", "").lower() in {"1", "true", "yes"}:
            client.starttls(context=context)
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def _to_mailbox(folder: Path, message: EmailMessage) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = str(message["Message-ID"]).strip("<>").replace("@", "_at_") + ".eml"
    (folder / name).write_bytes(message.as_bytes())
    log.info(
        "mail to %s: %s\n%s(saved in %s)",
        message["To"],
        message["Subject"],
        message.get_content(),
        folder / name,
    )
