"""Log lines: logfmt text by default, one JSON object per line with LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from config import Config
from webapp.core.observability import (
    TEXT_FORMAT,
    JsonFormatter,
    TextFormatter,
    log_event,
    logfmt,
    loggable_statement,
)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("tests.log_format")
    handler = _Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)


def test_logfmt_quotes_values_with_spaces_quotes_or_equals() -> None:
    text = logfmt({"path": "/a b", "status": 200, "q": 'say "hi"', "empty": "", "none": None})

    assert text == 'path="/a b" status=200 q="say \\"hi\\"" empty="" none=""'


def test_an_event_is_one_text_line_with_its_fields(kept: list[logging.LogRecord]) -> None:
    log_event(logging.getLogger("tests.log_format"), logging.INFO, "request", method="GET", status=200)

    assert kept[0].getMessage() == "request method=GET status=200"


def test_json_format_puts_each_field_under_its_own_key(kept: list[logging.LogRecord]) -> None:
    log_event(logging.getLogger("tests.log_format"), logging.INFO, "request", path="/x y", sql_count=3)

    line = json.loads(JsonFormatter().format(kept[0]))

    assert line["event"] == "request"
    assert line["path"] == "/x y"
    assert line["sql_count"] == 3
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.log_format"
    assert line["time"].endswith("+00:00")


def test_json_format_keeps_plain_messages_and_tracebacks(kept: list[logging.LogRecord]) -> None:
    logger = logging.getLogger("tests.log_format")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed: %s", "badly")

    line = json.loads(JsonFormatter().format(kept[0]))

    assert line["message"] == "it failed: badly"
    assert "ValueError: boom" in line["exc_info"]


def test_text_lines_are_the_standard_formatters_lines(kept: list[logging.LogRecord]) -> None:
    logger = logging.getLogger("tests.log_format")
    logger.info("first %s", "line")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed")
    kept[1].created += 1.5  # the next second: its time is formatted afresh
    kept[1].msecs = 7.0
    standard, ours = logging.Formatter(TEXT_FORMAT), TextFormatter()

    for record in (kept[0], kept[0], kept[1], kept[1]):  # each second: formatted, then cached
        record.exc_text = None
        expected = standard.format(record)
        record.exc_text = None
        assert ours.format(record) == expected
    assert "ValueError: boom" in ours.format(kept[1])


def test_log_format_is_text_json_or_an_error() -> None:
    assert Config({}).LOG_FORMAT == "text"
    assert Config({"LOG_FORMAT": "JSON"}).LOG_FORMAT == "json"
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        Config({"LOG_FORMAT": "xml"})


def test_a_multi_row_insert_is_logged_by_its_first_row() -> None:
    statement = (
        "INSERT INTO posts (a, b)\n VALUES (%(a__0)s, %(b__0)s), (%(a__1)s, %(b__1)s), (%(a__2)s, %(b__2)s)"
    )

    assert (
        loggable_statement(statement) == "INSERT INTO posts (a, b) VALUES (%(a__0)s, %(b__0)s), ... (3 rows)"
    )


def test_a_long_statement_is_cut() -> None:
    logged = loggable_statement("SELECT " + ", ".join(f"column_{n}" for n in range(1000)) + " FROM t")

    assert len(logged) == 2003
    assert logged.endswith("...")


@pytest.mark.parametrize("unsafe", ["\x1b[31m", "\x07", "\x9b2J", "\u202e", "\r"])
def test_control_and_bidi_characters_never_reach_a_log_line_raw(
    kept: list[logging.LogRecord], unsafe: str
) -> None:
    logger = logging.getLogger("tests.log_format")
    logger.info("path %s", f"/a{unsafe}b")
    log_event(logger, logging.INFO, "request", path=f"/a{unsafe}b")

    for record in kept:
        for line in (TextFormatter().format(record), JsonFormatter().format(record)):
            assert unsafe not in line
    # Still the same value for a reader of the JSON line.
    assert json.loads(JsonFormatter().format(kept[1]))["path"] == f"/a{unsafe}b"


def test_a_multi_line_message_keeps_its_line_breaks_and_tabs(kept: list[logging.LogRecord]) -> None:
    logging.getLogger("tests.log_format").info("one\n\ttwo")

    assert TextFormatter().format(kept[0]).endswith("one\n\ttwo")
