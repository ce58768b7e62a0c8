"""Many result rows dumped at once: schema.dump of each, without an object per row.

core/dumpers.py compiles a schema into a function of one object; a bulk answer calls
it 1,000 times, reading each attribute of a Row by name and formatting two timestamps
per row (9 to 19 ms per 1,000 users here). When the rows are plain tuples of known columns
(``INSERT ... RETURNING``), one generated loop unpacks each row by position, and
formats each distinct timestamp once per call: the rows of one statement share their
``created_at``. The schema stays the contract: each value goes through what its
field's ``_serialize`` does (inlined for integers, strings and booleans, called and
remembered for UTC timestamps), any other field, or a field whose attribute is not a
column of the rows, leaves each row to schema.dump, and tests/core/test_row_dumpers.py
compares the two over real rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import Row

from webapp.core.fields import UtcDateTime

DumpRows = Callable[[Sequence[Sequence[Any]]], list[dict[str, Any]]]

_cache: dict[tuple[int, tuple[str, ...]], tuple[Schema, DumpRows]] = {}


def _ensure_text(value: Any) -> str:
    # marshmallow.utils.ensure_text_type, for what is not already a str.
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def compile_rows_dumper(schema: Schema, columns: Sequence[str]) -> DumpRows | None:
    """A function ``rows -> [schema.dump(row) ...]`` for rows of these columns, in this
    order; None when a field cannot be inlined exactly."""
    hooks = getattr(schema, "_hooks", {})
    if schema.many or any(hooks.get(name) for name in ("pre_dump", "post_dump")):
        return None
    position = {name: index for index, name in enumerate(columns)}
    namespace: dict[str, Any] = {"_ensure_text": _ensure_text, "_missing": fields.missing_}  # type: ignore[attr-defined]
    before: list[str] = []
    entries: list[str] = []
    for name, field in schema.dump_fields.items():
        attribute = field.attribute or name
        key = field.data_key or name
        if attribute not in position or field.dump_default is not fields.missing_:  # type: ignore[attr-defined]
            return None
        value = f"row[{position[attribute]}]"
        kind = type(field)
        if kind is fields.Integer and not field.as_string:  # type: ignore[attr-defined]
            expression = f"(None if (v := {value}) is None else int(v))"
        elif kind is fields.String:
            expression = f"(v if type(v := {value}) is str or v is None else _ensure_text(v))"
        elif kind is fields.Boolean:
            # What _serialize answers for True and False depends on truthy/falsy: asked once.
            namespace[f"_serialize_{name}"] = field._serialize
            namespace[f"_true_{name}"] = field._serialize(True, attribute, None)
            namespace[f"_false_{name}"] = field._serialize(False, attribute, None)
            expression = (
                f"(None if (v := {value}) is None else _true_{name} if v is True "
                f"else _false_{name} if v is False else _serialize_{name}(v, {attribute!r}, None))"
            )
        elif kind is UtcDateTime:
            # Equal datetimes are the same instant, so the same UTC text: formatted once.
            namespace[f"_serialize_{name}"] = field._serialize
            before.append(f"    seen_{name} = {{}}")
            expression = (
                f"(x if (x := seen_{name}.get(v := {value}, _missing)) is not _missing "
                f"else seen_{name}.setdefault(v, _serialize_{name}(v, {attribute!r}, None)))"
            )
        else:
            return None
        entries.append(f"        {key!r}: {expression},")
    source = "\n".join(
        [
            "def dump_rows(rows):",
            *before,
            "    return [",
            "        {",
            *entries,
            "        }",
            "        for row in rows",
            "    ]",
        ]
    )
    exec(compile(source, f"<rows dumper {type(schema).__name__}>", "exec"), namespace)
    dump_rows: DumpRows = namespace["dump_rows"]
    return dump_rows


def rows_dumper_for(schema: Schema, columns: Sequence[str]) -> DumpRows:
    """The generated rows dumper of this schema instance for these columns, compiled on
    first use; schema.dump of each row when it cannot be generated."""
    columns = tuple(columns)
    entry = _cache.get((id(schema), columns))
    if entry is None or entry[0] is not schema:
        generated = compile_rows_dumper(schema, columns)
        if generated is None:
            generated = lambda rows: [schema.dump(row) for row in rows]  # noqa: E731
        entry = (schema, generated)
        _cache[(id(schema), columns)] = entry
    return entry[1]


def dump_rows(schema: Schema, rows: Sequence[Row[*tuple[Any, ...]]]) -> list[dict[str, Any]]:
    """``[schema.dump(row) for row in rows]`` for the rows of one result (same columns)."""
    if not rows:
        return []
    return rows_dumper_for(schema, rows[0]._fields)(rows)
