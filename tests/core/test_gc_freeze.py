"""wsgi.py ends start-up with gc.freeze(): long-lived objects leave the collector's generations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FROZEN_AFTER_IMPORT = (
    "import gc; before = gc.get_freeze_count(); import wsgi; "
    "print(before, gc.get_freeze_count(), 'create_app' in dir(wsgi))"
)


def test_importing_wsgi_freezes_what_start_up_allocated(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "FLASK_SKIP_DOTENV": "1"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'app.db'}"
    result = subprocess.run(
        [sys.executable, "-c", FROZEN_AFTER_IMPORT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after, _ = result.stdout.split()

    assert int(before) == 0
    # The app, its modules, schemas and dumpers: tens of thousands of objects.
    assert int(after) > 10_000
