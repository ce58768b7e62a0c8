"""Field types and validators shared by every schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields, validate

from webapp.core.db.base import MAX_ID

# psycopg2 refuses NUL and lone surrogates cannot be encoded as UTF-8: both would be
# a 500 at the database, so they are a 422 here.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")

# Characters that make a shown string lie about itself: C0 and C1 controls (ESC starts
# terminal escape sequences in logs and consoles), DEL, and the bidirectional overrides
# and marks that reorder what a reader sees (the "Trojan Source" trick).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_NOT_IN_NAMES = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")
# Free text keeps its line breaks and tabs; a CR only as half of CRLF (a lone CR
# rewrites the line it is printed on).
_NOT_IN_FREE_TEXT = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_BIDI}]|\\r(?!\\n)")


def is_storable_text(value: str) -> bool:
    """Whether the database can store ``value`` (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(value) is None


def storable_text(value: str) -> None:
    if not is_storable_text(value):
        raise ValidationError("Contains characters that cannot be stored (NUL or lone surrogates).")


def plain_name(value: str) -> None:
    """A name or title: printable on one line, in reading order, and not blank."""
    if _NOT_IN_NAMES.search(value):
        raise ValidationError("Contains control or bidirectional formatting characters.")
    if not value.strip():
        raise ValidationError("Must not be blank.")


def plain_free_text(value: str) -> None:
    """Free text: line breaks and tabs are fine, other control and bidi characters are not."""
    if _NOT_IN_FREE_TEXT.search(value):
        raise ValidationError("Contains control or bidirectional formatting characters.")


class Text(fields.String):
    """A string field that rejects characters the database cannot store."""

    def __init__(self, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        validate = [storable_text]
        if validators is not None:
            validate.extend(validators if isinstance(validators, list) else [validators])
        super().__init__(validate=validate, **kwargs)


class Name(Text):
    """A short human-readable label (a person's name, a title): one plain line, not blank."""

    def __init__(self, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        validate_ = [plain_name]
        if validators is not None:
            validate_.extend(validators if isinstance(validators, list) else [validators])
        super().__init__(validate=validate_, **kwargs)


class FreeText(Text):
    """Longer prose: keeps newlines and tabs, refuses other control and bidi characters."""

    def __init__(self, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        validate_ = [plain_free_text]
        if validators is not None:
            validate_.extend(validators if isinstance(validators, list) else [validators])
        super().__init__(validate=validate_, **kwargs)


class NormalizedEmail(fields.Email):
    """Email trimmed and lower-cased before validation, so lookups are case-insensitive."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        storable_text(value)
        return super()._deserialize(value.strip().lower(), attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true/false only; marshmallow's Boolean also takes "yes", 1, "on"..."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(truthy={True}, falsy={False}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        # 1 == True and hash(1) == hash(True): a set lookup alone lets 1 and 0.0 through.
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class EntityId(fields.Integer):
    """A reference to a row by id: a JSON integer in the id column's range.

    Beyond it PostgreSQL raises DataError and SQLite's driver OverflowError (a 500), so
    an out-of-range id is a validation error like any other.
    """

    def __init__(self, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        validate_ = [validate.Range(min=1, max=MAX_ID)]
        if validators is not None:
            validate_.extend(validators if isinstance(validators, list) else [validators])
        super().__init__(strict=True, validate=validate_, **kwargs)


def utc_text(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with offset and microseconds; a naive value (SQLite's) is taken as UTC."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="microseconds")


class UtcDateTime(fields.DateTime):
    """RFC 3339 in UTC with offset and microseconds (``utc_text``)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        assert value is None or isinstance(value, datetime)
        return utc_text(value)


class QueryBoolean(fields.Boolean):
    """A query-string boolean: exactly "true" or "false"."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(truthy={"true"}, falsy={"false"}, **kwargs)
