"""Loaders generated once per input schema: schema.load's result for valid input, at a
fraction of its cost, and marshmallow's own errors for anything else.

marshmallow's load walks every field generically for every item: a closure and an
error store per field, ``deserialize``'s checks, an ``And`` of the validators built on
each call. For a batch of 1,000 items that machinery cost more than the INSERT of the
rows (bench/README.md, bulk create). The work a schema asks for is fixed by its fields,
so it is compiled once into one Python function that only accepts. It is built from
marshmallow's public surface alone: the declared fields (``load_fields``), their public
attributes, and field and validator classes compared by exact type. Strings, lists and
nested schemas of known classes are inlined, with the validators whose rule is
documented (``Length``, ``Email``); any other field is called through its public
``deserialize``. The first thing it does not accept (an invalid value, a missing or
unknown key, a type it does not expect) hands the whole input to marshmallow, whose
result or ValidationError is the answer: error messages and keys come from marshmallow
alone. A schema that defines any method (so any hook), or a field whose loading cannot
be reproduced exactly (load defaults, field-level pre/post-load, dotted attributes),
is not compiled: its loader is marshmallow's.

tests/core/test_loaders.py compares the two on valid and invalid input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate

from webapp.core.fields import FreeText, Name, NormalizedEmail, Text

Load = Callable[[Any], Any]


class Declined(Exception):
    """The generated check does not accept the input: marshmallow decides."""


# String fields whose conversion is known (String's own, their rules being validators, or
# NormalizedEmail.normalize): compared by exact class, so a subclass that converts
# differently goes through its own public deserialize.
_STRINGS = frozenset({fields.String, fields.Email, Text, Name, FreeText, NormalizedEmail})

# Domains an email field remembers as valid: a bound, since every request may bring new ones.
_REMEMBERED_DOMAINS = 1000


class _Compiler:
    """The source of one function per schema (and per list item), sharing one namespace.

    Each field's checks are inlined into its schema's function. The functions raise
    Declined, or let a validator's ValidationError out, for anything they do not
    accept; the caller then asks marshmallow.
    """

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"Declined": Declined, "_missing": missing}
        self.functions: list[str] = []

    def name(self, prefix: str, value: Any = None) -> str:
        name = f"_{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def schema(self, schema: Schema) -> str | None:
        """The name of a function ``data -> loaded``, or None if it cannot be made exact."""
        if (
            schema.many
            or schema.partial
            or schema.unknown != RAISE
            or not _declares_fields_only(type(schema))
        ):
            return None
        keys: list[str] = []
        required: list[str] = []
        lines: list[str] = []
        for attr_name, field in schema.load_fields.items():
            key = field.data_key if field.data_key is not None else attr_name
            target = field.attribute or attr_name
            if "." in target or field.load_default is not missing:
                return None
            check = self.field(field, key, "data")
            if check is None:
                return None
            keys.append(key)
            if field.required:
                required.append(key)
                lines += [f"v = data[{key!r}]", *check, f"body[{target!r}] = out"]
            else:
                lines += [
                    f"if (v := data.get({key!r}, _missing)) is not _missing:",
                    *_indent([*check, f"body[{target!r}] = out"]),
                ]
        known = self.name("keys", frozenset(keys))
        needed = self.name("required", frozenset(required))
        function = self.name("load")
        self.functions.append(
            "\n".join(
                [
                    f"def {function}(data):",
                    # JSON objects are dicts; anything else (even a Mapping) goes the long way.
                    "    if type(data) is not dict:",
                    "        raise Declined",
                    "    given = data.keys()",
                    f"    if not (given <= {known} and {needed} <= given):",  # unknown=RAISE, required
                    "        raise Declined",
                    "    body = {}",
                    *_indent(lines),
                    "    return body",
                ]
            )
        )
        return function

    def field(self, field: fields.Field[Any], key: str | None, data: str) -> list[str] | None:
        """Statements turning the raw value ``v`` into the loaded ``out``, or None if this
        field cannot be compiled exactly. ``data`` names the parent object."""
        if field.pre_load or field.post_load:
            return None
        kind = type(field)
        if kind not in _STRINGS and kind is not fields.List and kind is not fields.Nested:
            # Any other field: its own public deserialize (None, conversion, validators).
            deserialize = self.name("deserialize", field.deserialize)
            return [f"out = {deserialize}(v, {key!r}, {data})"]
        conversion = self.conversion(field)
        if conversion is None:
            return None
        lines = conversion + self.validation(field)
        # Field.deserialize: None is None if allowed (no validators run), else invalid.
        if field.allow_none:
            return ["if v is None:", "    out = None", "else:", *_indent(lines)]
        return ["if v is None:", "    raise Declined", *lines]

    def conversion(self, field: fields.Field[Any]) -> list[str] | None:
        """What a plain string, list or nested field makes of ``v`` (not None), as statements."""
        if isinstance(field, fields.List):
            item = self.item(field.inner)
            # is_collection() also admits tuples, sets, generators; JSON has lists only.
            return (
                None
                if item is None
                else ["if type(v) is not list:", "    raise Declined", f"out = [{item}(x) for x in v]"]
            )
        if isinstance(field, fields.Nested):
            nested = _plain_nested(field)
            load = None if nested is None else self.schema(nested)
            return None if load is None else [f"out = {load}(v)"]
        # What these fields make of what JSON gives: a str is itself, or normalized.
        if type(field) is NormalizedEmail:
            normalize = self.name("normalize", NormalizedEmail.normalize)
            return ["if type(v) is not str:", "    raise Declined", f"out = {normalize}(v)"]
        return ["if type(v) is not str:", "    raise Declined", "out = v"]

    def validation(self, field: fields.Field[Any]) -> list[str]:
        """The field's validators on ``out``, in order; a failure raises."""
        lines: list[str] = []
        for validator in field.validators:
            if type(validator) is validate.Length and validator.equal is None:
                # Length.__call__, inlined: the length against each bound given.
                bounds = [f"n < {validator.min}"] if validator.min is not None else []
                bounds += [f"n > {validator.max}"] if validator.max is not None else []
                lines += (
                    ["n = len(out)", f"if {' or '.join(bounds)}:", "    raise Declined"] if bounds else []
                )
                continue
            if type(validator) is validate.Email and "{" not in validator.error:
                lines += self.email(validator)
                continue
            name = self.name("validator", validator)
            if isinstance(validator, validate.Validator):
                lines.append(f"{name}(out)")
            else:  # validate.And's rule: a plain function also fails by returning False
                lines += [f"if {name}(out) is False:", "    raise Declined"]
        return lines

    def email(self, validator: validate.Email) -> list[str]:
        """Email.__call__, inlined, on ``out``: the same two patterns on the same parts.

        Without the error message it formats on every call (its template has no field
        here, so formatting cannot fail). A domain that matched once is remembered, up
        to a bound: a batch's emails share a few domains, and the domain pattern, with
        its backtracking, was a third of loading an item.
        """
        user = self.name("user_pattern", validator.USER_REGEX)
        domain = self.name("domain_pattern", validator.DOMAIN_REGEX)
        allowed = self.name("domains", set(validator.DOMAIN_WHITELIST))
        return [
            'if not out or "@" not in out:',
            "    raise Declined",
            'user_part, domain_part = out.rsplit("@", 1)',
            f"if not {user}.match(user_part):",
            "    raise Declined",
            f"if domain_part not in {allowed}:",
            f"    if not {domain}.match(domain_part):",
            "        raise Declined",
            f"    if len({allowed}) < {_REMEMBERED_DOMAINS}:",
            f"        {allowed}.add(domain_part)",
        ]

    def item(self, field: fields.Field[Any]) -> str | None:
        """The name of a function ``raw item -> loaded item`` for a list's items."""
        nested = _plain_nested(field)
        if nested is not None and not (
            field.allow_none or field.validators or field.pre_load or field.post_load
        ):
            # The schema's function refuses None, and whatever is not a dict, itself.
            return self.schema(nested)
        check = self.field(field, None, "None")  # List passes neither attr nor data on
        if check is None:
            return None
        function = self.name("item")
        self.functions.append("\n".join([f"def {function}(v):", *_indent([*check, "return out"])]))
        return function


def _plain_nested(field: fields.Field[Any]) -> Schema | None:
    """The schema of a Nested field that loads one object as its schema's load() does."""
    if type(field) is not fields.Nested:
        return None
    nested = field.schema
    if (
        field.many
        or field.unknown is not None
        or type(nested).load not in _PLAIN_LOADS
        or not _declares_fields_only(type(nested))
    ):
        return None
    return nested


def _declares_fields_only(schema_class: type[Schema]) -> bool:
    """Whether the schema's own classes declare fields and Meta only: no method, so no
    hook (pre_load, post_load, validates, validates_schema) and no override."""
    for cls in schema_class.__mro__:
        if cls in _BASES:
            return True
        for name, value in vars(cls).items():
            if name == "Meta" or (name.startswith("__") and name.endswith("__")):
                continue
            if callable(value) or isinstance(value, staticmethod | classmethod | property):
                return False
    return True


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def compile_acceptor(schema: Schema) -> Load | None:
    """The generated function alone, None if the schema cannot be compiled exactly.

    It answers ``Schema.load(schema, data)`` for input it accepts and raises for any
    other (so tests can tell the two apart); compile_loader adds marshmallow's answer.
    """
    compiler = _Compiler()
    entry = compiler.schema(schema)
    if entry is None:
        return None
    source = "\n\n".join(compiler.functions)
    exec(compile(source, f"<loader {type(schema).__name__}>", "exec"), compiler.namespace)
    accept: Load = compiler.namespace[entry]
    return accept


def compile_loader(schema: Schema) -> Load:
    """One function ``data -> loaded`` equal to ``Schema.load(schema, data)``."""

    def marshmallow_load(data: Any) -> Any:
        return Schema.load(schema, data)

    accept = compile_acceptor(schema)
    if accept is None:
        return marshmallow_load

    def load(data: Any) -> Any:
        try:
            return accept(data)
        except (Declined, ValidationError):
            return marshmallow_load(data)

    return load


_cache: dict[int, tuple[Schema, Load]] = {}


def loader_for(schema: Schema) -> Load:
    """The generated loader of this schema instance, compiled on first use."""
    entry = _cache.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, compile_loader(schema))
        _cache[id(schema)] = entry
    return entry[1]


class CompiledLoadSchema(Schema):
    """A schema whose plain ``load(data)`` runs its generated loader (see the module).

    For request bodies of many items (bulk create); any other call is marshmallow's.
    """

    def load(
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: bool | Any | None = None,
        unknown: str | None = None,
    ) -> Any:
        if many is None and partial is None and unknown is None:
            return loader_for(self)(data)
        return super().load(data, many=many, partial=partial, unknown=unknown)  # type: ignore[arg-type]


# Nested schemas whose load() is marshmallow's own, or ours (equal to it).
_PLAIN_LOADS = (Schema.load, CompiledLoadSchema.load)
# Where a schema's own declarations end and marshmallow's (or ours, which add no hook) begin.
_BASES = (Schema, CompiledLoadSchema, object)
