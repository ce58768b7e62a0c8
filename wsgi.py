"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``.

The ``flask`` command loads ``.flaskenv`` and ``.env`` by itself; gunicorn does not, so
``.env`` beside this file is loaded here as well. Variables already in the environment
win over the file, and ``FLASK_SKIP_DOTENV=1`` turns the file off, as it does for ``flask``.
Start-up ends with ``gc.freeze()``.
"""

import gc
import os
from pathlib import Path

from dotenv import load_dotenv

from webapp import create_app

if os.environ.get("FLASK_SKIP_DOTENV", "").strip().lower() in {"", "0", "false", "no"}:
    load_dotenv(Path(__file__).resolve().parent / ".env", override=False, encoding="utf-8")

app = create_app()

# Everything allocated so far (modules, the app, its schemas, dumpers and routes) lives as
# long as the process: moved out of the collector's generations, a full collection no
# longer walks it (one every ~7,700 requests took 73 ms, 9.5 us a request on average).
# gunicorn imports this module in each worker after the fork (no --preload), so the
# frozen objects are the worker's own.
gc.freeze()


def __getattr__(name: str) -> object:
    # `celery --app wsgi:celery_app worker`: built on first access, so web processes
    # without a broker never import Celery.
    if name == "celery_app":
        from webapp.core.jobs.celery_app import celery_app_for

        return celery_app_for(app)
    raise AttributeError(name)
