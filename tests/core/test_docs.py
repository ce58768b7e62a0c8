"""The newcomer's documents cannot drift from the code: every setting and make target is real."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Config, ProductionConfig, TestingConfig

ROOT = Path(__file__).resolve().parents[2]


class RecordingEnviron(dict[str, str]):
    """An empty environment that remembers every name a settings class asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return False


def _settings_read_by_config() -> set[str]:
    environ = RecordingEnviron()
    Config(environ)
    TestingConfig(environ)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        ProductionConfig(environ)
    # load_config() reads APP_ENV from os.environ itself.
    source = (ROOT / "config.py").read_text(encoding="utf-8")
    return environ.asked | set(re.findall(r'os\.environ\.get\("([A-Z0-9_]+)"', source))


SETTINGS = sorted(_settings_read_by_config())


def test_config_reads_the_settings_we_think_it_does() -> None:
    assert {"APP_ENV", "DATABASE_URL", "TEST_DATABASE_URL", "SLOW_QUERY_MS", "LOG_FORMAT"} <= set(SETTINGS)


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_has_a_row_in_the_readme_table(name: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert re.search(rf"^\| `{name}` \| .+ \| .+ \|$", readme, re.MULTILINE), name


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_is_in_env_example(name: str) -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")

    assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))


def _documented_make_commands() -> Iterator[str]:
    for document in ("README.md", "docs/architecture.md"):
        text = (ROOT / document).read_text(encoding="utf-8")
        # Commands, not prose ("make constraint errors surface"): in backticks or code lines.
        yield from re.findall(r"(?:`|^|\$\()make (?:-s )?([a-z][a-z-]*[a-z])(?![\w*-])", text, re.MULTILINE)


@pytest.mark.parametrize("target", sorted(set(_documented_make_commands())))
def test_every_make_command_in_the_docs_exists(target: str) -> None:
    assert target in _make_targets()
