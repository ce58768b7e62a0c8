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


def storable_text(value: str) -> None:
    if _UNSTORABLE.search(value):
        raise ValidationError("Contains characters that cannot be stored (NUL or lone surrogates).")


class Text(fields.String):
    """A string field that rejects characters the database cannot store."""

    def __init__(self, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        validate = [storable_text]
        if validators is not None:
            validate.extend(validators if isinstance(validators, list) else [validators])
        super().__init__(validate=validate, **kwargs)


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


class UtcDateTime(fields.DateTime):
    """RFC 3339 in UTC with offset and microseconds; SQLite hands back naive UTC values."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat(timespec="microseconds")


class QueryBoolean(fields.Boolean):
    """A query-string boolean: exactly "true" or "false"."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(truthy={"true"}, falsy={"false"}, **kwargs)
