"""Field types and validators shared by every schema."""

from __future__ import annotations

import re
import unicodedata
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


def _with(first: Any, validators: Any) -> list[Any]:
    extra = [] if validators is None else validators if isinstance(validators, list) else [validators]
    return [first, *extra]


class Secret(fields.String):
    """A password: only what the database cannot store is refused. It is never shown or
    logged, and refusing characters would lock out whoever chose them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=_with(storable_text, kwargs.pop("validate", None)), **kwargs)


class Text(fields.String):
    """Every string a client sends that anyone may read back (the one rule for text):
    storable, and no control or bidirectional formatting characters but tabs and line breaks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=_with(_storable_free_text, kwargs.pop("validate", None)), **kwargs)


def _storable_free_text(value: str) -> None:
    storable_text(value)
    plain_free_text(value)


class Name(Text):
    """A short human-readable label (a person's name, a title): one plain line, not blank."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=_with(plain_name, kwargs.pop("validate", None)), **kwargs)


# Longer prose: the same rule as every Text (kept as a name that says what the field holds).
FreeText = Text


def normalize_email(value: str) -> str:
    """The one form of an address that uniqueness, sign-in and rate limits compare:
    NFKC (fullwidth letters, ligatures such as U+FB00 become plain ones) and case-folded."""
    return unicodedata.normalize("NFKC", value.strip()).casefold()


class NormalizedEmail(fields.Email):
    """An address in its normal form (normalize_email) before validation, so that look-alike
    spellings of one address are one account; control characters are refused."""

    @staticmethod
    def normalize(value: str) -> str:
        """The address as it is validated and stored (bulk loading calls this too)."""
        storable_text(value)
        if _NOT_IN_NAMES.search(value):
            raise ValidationError("Contains control or bidirectional formatting characters.")
        return normalize_email(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return super()._deserialize(self.normalize(value), attr, data, **kwargs)


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
