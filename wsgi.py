"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``.

The ``flask`` command loads ``.flaskenv`` and ``.env`` by itself; gunicorn does not, so
``.env`` beside this file is loaded here as well. Variables already in the environment
win over the file, and ``FLASK_SKIP_DOTENV=1`` turns the file off, as it does for ``flask``.
"""

import os
from pathlib import Path

from dotenv import load_dotenv

from webapp import create_app

if os.environ.get("FLASK_SKIP_DOTENV", "").strip().lower() in {"", "0", "false", "no"}:
    load_dotenv(Path(__file__).resolve().parent / ".env", override=False, encoding="utf-8")

app = create_app()
