"""scripts/check_private_names.py (in `make lint`) fails on another package's private names only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_private_names.py"


def check(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    module = tmp_path / "module.py"
    module.write_text(source)
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(module)], check=False, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("source", "reported"),
    [
        ("from werkzeug.security import _hash_internal\n", "imports _hash_internal"),
        ("from sqlalchemy.engine._row_cy import BaseRow\n", "private module"),
        ("import sqlalchemy.engine._row_cy\n", "private module"),
        ("def f(schema):\n    return getattr(schema, '_hooks', {})\n", "'_hooks'"),
        ("def f(connection):\n    return connection._cursor_execute\n", "._cursor_execute"),
        ("def f(field):\n    return field._serialize\n", "override point ._serialize"),
        ("def f(kind, base):\n    return kind._deserialize is base._deserialize\n", "._deserialize"),
    ],
)
def test_another_packages_private_name_fails_the_check(tmp_path: Path, source: str, reported: str) -> None:
    result = check(tmp_path, source)

    assert result.returncode == 1
    assert reported in result.stdout


def test_own_names_documented_ones_and_override_points_pass(tmp_path: Path) -> None:
    source = """
from typing import TYPE_CHECKING

from flask import current_app
from marshmallow import fields

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_cache = {}


def _helper(row):
    return row._mapping, row._asdict(), current_app._get_current_object()


class Loud(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).upper()


class Holder:
    def __init__(self):
        self._kept = 1

    def same(self, other):
        return other._kept == self._kept
"""
    result = check(tmp_path, source)

    assert result.returncode == 0, result.stdout
    assert result.stdout == ""
