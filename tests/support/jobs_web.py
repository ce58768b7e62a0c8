"""A web process for the jobs tests: the real app (settings from the environment) plus one
route that queues a mail and then commits, fails, or SIGKILLs its own process right
after the commit, before the hand-off to the broker.

``python -m tests.support.jobs_web PORT`` serves it on 127.0.0.1:PORT.
"""

from __future__ import annotations

import os
import signal
import sys

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from webapp import create_app
from webapp.core.auth import public
from webapp.core.db import Database, get_session
from webapp.core.mail import send_mail_later

DIE_AFTER_COMMIT = "tests.die_after_commit"

routes = Blueprint("jobs_testing", __name__, url_prefix="/_test/jobs")


@routes.post("/mail")
@public
def queue_a_mail() -> tuple[Response, int]:
    body = request.get_json()
    session = get_session()
    job = send_mail_later(session, to=body["to"], subject=body.get("subject", "Hello"), text="A body.\n")
    if body.get("then") == "fail":
        return jsonify(error="the view failed after queueing the mail"), 409
    if body.get("then") == "die":
        session.info[DIE_AFTER_COMMIT] = True
    return jsonify(id=job.id), 201


def build() -> Flask:
    app = create_app()
    app.register_blueprint(routes)
    database: Database = app.extensions["database"]

    # First among the after-commit listeners: the commit is durable, the hand-off to the
    # broker has not happened, and the process ends as a power cut would end it.
    @event.listens_for(database.session_factory, "after_commit", insert=True)
    def _die(session: Session) -> None:
        if session.info.get(DIE_AFTER_COMMIT):
            os.kill(os.getpid(), signal.SIGKILL)

    return app


if __name__ == "__main__":
    build().run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True, use_reloader=False)
