"""gunicorn's path (wsgi.py) honours .env like the flask command does, and never overrides."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PRINT_SETTING = "import wsgi; print(wsgi.app.config['SLOW_QUERY_MS'], wsgi.app.config['DATABASE_URL'])"


@pytest.fixture
def wsgi_dir(tmp_path: Path) -> Path:
    """A copy of wsgi.py with a .env of its own beside it (the real .env is never touched)."""
    shutil.copy(PROJECT_ROOT / "wsgi.py", tmp_path / "wsgi.py")
    (tmp_path / ".env").write_text(
        "SLOW_QUERY_MS=123\nDATABASE_URL=postgres://u@db.invalid:5432/from_dotenv\n", encoding="utf-8"
    )
    return tmp_path


def _settings_seen_by_wsgi(directory: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in {"SLOW_QUERY_MS", "DATABASE_URL", "APP_ENV"}}
    clean.update(env, PYTHONPATH=str(PROJECT_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTING],
        cwd=directory,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_wsgi_loads_the_env_file_beside_it(wsgi_dir: Path) -> None:
    # The URL providers hand out is mapped to our driver, also when it comes from .env.
    assert _settings_seen_by_wsgi(wsgi_dir) == "123.0 postgresql+psycopg2://u@db.invalid:5432/from_dotenv"


def test_the_real_environment_wins_over_the_env_file(wsgi_dir: Path) -> None:
    assert _settings_seen_by_wsgi(wsgi_dir, SLOW_QUERY_MS="7").startswith("7.0 ")


def test_flask_skip_dotenv_turns_the_file_off(wsgi_dir: Path) -> None:
    assert _settings_seen_by_wsgi(wsgi_dir, FLASK_SKIP_DOTENV="1").startswith("200.0 sqlite:///")
