"""Fail when the product reaches into another package's private names (`make lint` runs it).

    python scripts/check_private_names.py [PATH ...]    (default: webapp config.py wsgi.py)

A name with a leading underscore is a package's own business: its next minor release
may rename or remove it. This reads the code (it imports nothing) and reports:

- ``from pkg import _name`` and ``from pkg._module import name`` for a package not ours;
- ``getattr(obj, "_name")`` and its siblings, with a literal name;
- ``obj._name`` where ``_name`` is defined nowhere in our code (so it is someone
  else's), and for marshmallow's override points (below) anywhere but on ``self``,
  ``cls`` or ``super()``.

Our own underscored names are ours to use. Exit status 1 if anything is reported.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATHS = ("webapp", "config.py", "wsgi.py")
OUR_PACKAGES = frozenset({"webapp", "config", "wsgi", "tests", "bench", "migrations", "scripts"})

# Underscored, yet documented as public API: each with the reason it may be used.
DOCUMENTED = {
    # Werkzeug documents LocalProxy._get_current_object() as the way to the proxied object.
    "_get_current_object": "werkzeug LocalProxy, documented",
    # collections.namedtuple's documented methods and attributes; SQLAlchemy's Row
    # documents the same names (named-tuple API), plus _mapping and _tuple()/_t.
    "_asdict": "namedtuple and SQLAlchemy Row, documented",
    "_replace": "namedtuple, documented",
    "_fields": "namedtuple and SQLAlchemy Row, documented",
    "_make": "namedtuple, documented",
    "_mapping": "SQLAlchemy Row, documented",
    "_tuple": "SQLAlchemy Row, documented",
    "_t": "SQLAlchemy Row, documented",
}

# Modules that only type checkers read: typeshed documents _typeshed as importable under
# `if TYPE_CHECKING:` (it does not exist at run time, so no release can break a request).
TYPING_ONLY_MODULES = frozenset({"_typeshed"})

# marshmallow documents these as what a custom field overrides: fine on the field's own
# self or super(), not read off (or compared between) other fields.
OVERRIDE_POINTS = frozenset({"_serialize", "_deserialize"})

ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "hasattr", "setattr", "delattr"})


def is_private(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return name.startswith("_") and not dunder and name not in DOCUMENTED


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.rglob("*.py"))
        elif path.suffix == ".py":
            yield path


def names_we_define(trees: Iterable[ast.AST]) -> set[str]:
    """Every name our code binds: functions, classes, variables, attributes, arguments."""
    defined: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname:
                defined.add(node.asname)
    return defined


def is_own_object(node: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: the class's own attributes, not another object's."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def findings(tree: ast.AST, defined: set[str]) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            yield from private_imports(node)
        elif isinstance(node, ast.Call):
            yield from private_attribute_calls(node, defined)
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            if node.attr in OVERRIDE_POINTS:
                if not is_own_object(node.value):
                    yield node.lineno, f"reads the override point .{node.attr} of {ast.unparse(node.value)}"
            elif node.attr not in defined:
                yield node.lineno, f".{node.attr} of {ast.unparse(node.value)}"


def is_theirs(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return top not in OUR_PACKAGES and top not in TYPING_ONLY_MODULES


def private_imports(node: ast.ImportFrom | ast.Import) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if is_theirs(alias.name) and any(is_private(part) for part in alias.name.split(".")):
                yield node.lineno, f"imports the private module {alias.name}"
        return
    if node.level != 0 or not node.module or not is_theirs(node.module):
        return
    if any(is_private(part) for part in node.module.split(".")):
        yield node.lineno, f"imports from the private module {node.module}"
    for alias in node.names:
        if is_private(alias.name):
            yield node.lineno, f"imports {alias.name} from {node.module}"


def private_attribute_calls(node: ast.Call, defined: set[str]) -> Iterator[tuple[int, str]]:
    """``getattr(obj, "_name")`` and its siblings, with the name written out."""
    if not (isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_FUNCTIONS and len(node.args) >= 2):
        return
    name = node.args[1]
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str) and is_private(name.value)):
        return
    if name.value not in defined or name.value in OVERRIDE_POINTS:
        yield node.lineno, f"{node.func.id}(..., {name.value!r})"


def main(arguments: list[str]) -> int:
    targets = [Path(argument) for argument in arguments] or [ROOT / path for path in DEFAULT_PATHS]
    checked = list(python_files(path for path in targets if path.exists()))
    # Our names are those of the whole product, whichever part is being checked.
    ours = list(python_files(ROOT / path for path in DEFAULT_PATHS))
    trees = {path: ast.parse(path.read_text(), str(path)) for path in {*checked, *ours}}
    defined = names_we_define(trees.values())
    reported = 0
    for path in checked:
        for line, what in findings(trees[path], defined):
            shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
            print(f"{shown}:{line}: {what}")
            reported += 1
    if reported:
        print(f"{reported} use(s) of other packages' private names; find the public way", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
