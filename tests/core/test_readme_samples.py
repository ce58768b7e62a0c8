"""The README's "Calling the API" samples, run as written against a live server.

Every ```sh block of that section runs, in order, in one bash process (variables such as
TOKEN and ADA carry over, as in the reader's shell) with the real curl and jq. A shell
function wraps curl to dump each answer's headers and body to files, so the test knows the
status of every request. The convention the README follows, checked here:

- every curl command ends with ``# -> STATUS`` (and optionally the problem ``type`` after
  it, e.g. ``# -> 409 /problems/email-taken``);
- a ```http block right after an sh block shows the answer to that block's last curl:
  its status line, headers (names must be present; a few values must match) and a JSON
  body whose keys (nested ones included) must be exactly those of the real answer.

A sample that drifts from the code fails here. Needs bash, curl and jq (skipped, except in
CI, where one is missing).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Calling the API"
# The samples name the server once, as a default of $BASE; the test exports BASE.
SERVER_ADDRESS = re.compile(r"https?://(?:127\.0\.0\.1|localhost)(?::\d+)?")
EXPECT = re.compile(r"#\s*->\s*(\d{3})(?:\s*,?\s*(/problems/[a-z-]+))?")
# Header values that do not depend on ids, clocks or randomness: compared exactly.
EXACT_HEADERS = {"content-type", "etag", "idempotent-replayed", "cache-control"}


@dataclass
class Command:
    text: str
    status: int
    problem_type: str | None


@dataclass
class ShownAnswer:
    """A ```http block: what the README says the last command of the block before answers."""

    status: int
    headers: dict[str, str]
    body: Any
    after_command: int  # index of the command it shows


@dataclass
class Samples:
    script: str
    commands: list[Command] = field(default_factory=list)
    answers: list[ShownAnswer] = field(default_factory=list)


def _section(readme: str) -> str:
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    return readme[start : end if end != -1 else len(readme)]


def _logical_lines(block: str) -> list[str]:
    """Commands as the shell reads them: continuations joined, quoted newlines kept inside."""
    commands: list[str] = []
    pending = ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        commands.append(pending)
        pending = ""
    assert not pending, f"an unclosed quote in a README sample: {pending}"
    return commands


def _calls_curl(line: str) -> bool:
    code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
    return re.search(r"(^|[\s$(])curl\s", code) is not None


def parse_samples(readme: str) -> Samples:
    section = _section(readme)
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    samples = Samples(script="")
    scripts: list[str] = []
    for language, body in blocks:
        if language == "sh":
            scripts.append(body)
            for line in _logical_lines(body):
                if not _calls_curl(line):
                    continue
                expected = EXPECT.search(line)
                assert expected, f"a README curl sample without '# -> STATUS': {line.strip()}"
                samples.commands.append(Command(line.strip(), int(expected.group(1)), expected.group(2)))
        elif language == "http":
            assert samples.commands, "a ```http block must follow an sh block with a curl command"
            samples.answers.append(_parse_answer(body, len(samples.commands) - 1))
    samples.script = "\n".join(scripts)
    return samples


def _parse_answer(block: str, after_command: int) -> ShownAnswer:
    head, _, body = block.partition("\n\n")
    status_line, *header_lines = head.splitlines()
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return ShownAnswer(status, headers, json.loads(body) if body.strip() else None, after_command)


def shape(value: Any) -> Any:
    """Keys, not values: a dict's keys with their shapes, a list's first item's shape."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


# Each call dumps its headers and body to numbered files; the count lives in a file so
# that calls inside $(...) subshells are counted too.
CURL_WRAPPER = r"""
set -eu -o pipefail
curl() {
  local n
  n=$(( $(cat "$SAMPLES_DIR/count") + 1 ))
  echo "$n" > "$SAMPLES_DIR/count"
  command curl -D "$SAMPLES_DIR/$n.headers" "$@" | tee "$SAMPLES_DIR/$n.out"
}
"""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _read_answer(directory: Path, number: int) -> Answer:
    raw = (directory / f"{number}.headers").read_bytes().decode("latin-1")
    # With -i the headers are also on stdout: the body is what follows them.
    head = raw.strip().split("\r\n\r\n")[-1]
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    out = (directory / f"{number}.out").read_bytes()
    if out.startswith(b"HTTP/"):
        out = out.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in out else b""
    return Answer(int(status_line.split()[1]), headers, out)


def _tools_missing() -> list[str]:
    return [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]


def test_the_readme_follows_the_sample_conventions() -> None:
    samples = parse_samples((ROOT / "README.md").read_text(encoding="utf-8"))

    assert len(samples.commands) >= 40
    assert samples.answers
    assert all(answer.status == samples.commands[answer.after_command].status for answer in samples.answers)


def test_every_readme_sample_answers_as_shown(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    missing = _tools_missing()
    if missing:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"the README samples need {', '.join(missing)}")
        pytest.skip(f"the README samples need {', '.join(missing)}")
    samples = parse_samples((ROOT / "README.md").read_text(encoding="utf-8"))
    script = samples.script
    # README_SAMPLES_DIR=/some/folder keeps every answer there, to read after the run.
    kept = os.environ.get("README_SAMPLES_DIR")
    if kept:
        tmp_path = Path(kept)
        tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "count").write_text("0")
    env = {
        **os.environ,
        "SAMPLES_DIR": str(tmp_path),
        "BASE": live_server.url,
        # `.venv/bin/flask users promote ...` must act on the database the live server uses.
        "APP_ENV": "testing",
        "TEST_DATABASE_URL": database_url,
        "FLASK_APP": "wsgi",
        "FLASK_SKIP_DOTENV": "1",
    }

    run = subprocess.run(
        ["bash", "-c", CURL_WRAPPER + script],
        check=False,  # the return code is asserted below, with a report of every call
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    calls = int((tmp_path / "count").read_text())
    answers = [_read_answer(tmp_path, number) for number in range(1, calls + 1)]
    report = "\n".join(
        f"{command.status} {answer.status if answer else '---'}  {command.text[:110]}"
        for command, answer in zip(
            samples.commands, [*answers, *[None] * len(samples.commands)], strict=False
        )
    )
    assert run.returncode == 0, f"the samples stopped: {run.stderr[-2000:]}\n{report}"
    assert calls == len(samples.commands), f"{calls} curl calls ran, the README shows {len(samples.commands)}"
    for command, answer in zip(samples.commands, answers, strict=True):
        assert answer.status == command.status, (
            f"{command.text}\n answered {answer.status}: {answer.body[:500]!r}"
        )
        if command.problem_type is not None:
            assert json.loads(answer.body)["type"] == command.problem_type, command.text
    for shown in samples.answers:
        real = answers[shown.after_command]
        sample = samples.commands[shown.after_command].text
        for name, value in shown.headers.items():
            assert name in real.headers, f"{sample}: no {name} header in {real.headers}"
            if name in EXACT_HEADERS:
                assert real.headers[name] == value, f"{sample}: {name}: {real.headers[name]}"
        if shown.body is not None:
            assert shape(json.loads(real.body)) == shape(shown.body), sample


def test_the_samples_name_the_server_in_one_place() -> None:
    samples = parse_samples((ROOT / "README.md").read_text(encoding="utf-8"))

    # One line to change for another port: BASE's default; every other sample uses $BASE or $API.
    addresses = [line for line in samples.script.splitlines() if SERVER_ADDRESS.search(line)]
    assert len(addresses) == 1, addresses
    assert addresses[0].startswith("BASE=${BASE:-")


def test_shape_compares_keys_not_values() -> None:
    assert shape({"id": 1, "author": {"id": 2}, "items": [{"a": 1}]}) == shape(
        {"id": 9, "author": {"id": 3}, "items": [{"a": 5}, {"a": 6}]}
    )
    assert shape({"id": 1, "email": "x"}) != shape({"id": 1})


def test_a_curl_sample_without_its_status_is_refused() -> None:
    readme = f"{SECTION}\n\n```sh\ncurl -s $API/users\n```\n"

    with pytest.raises(AssertionError, match="without"):
        parse_samples(readme)


def test_a_quoted_body_over_several_lines_is_one_command() -> None:
    readme = f"{SECTION}\n\n```sh\ncurl -s -d '{{\"a\": [\n  1]}}' $API/x   # -> 201\n```\n"

    assert [command.status for command in parse_samples(readme).commands] == [201]
