"""JSON Schemas written by callers (a human task's ``form_schema``, a registered ``schema_json``): the one place
that checks one and builds its validator.

A caller's schema is data from someone we do not trust, and jsonschema is built for schemas we do: left to
itself it fetches any ``$ref`` it cannot find in the document (``file://``, ``http://``) and runs ``pattern``
with Python's backtracking ``re``. So a schema is checked once, when the task is created (``check``), and
answers are validated by ``problem``, which builds the validator from a checked schema only:

- references: only ``$ref`` to a fragment of the same document (``#/$defs/x``, ``#anchor``) that exists; no
  ``$dynamicRef`` / ``$recursiveRef`` (their target depends on the dynamic scope, so the bounds below could
  not be checked), no recursion, no ``$id`` or ``$schema`` below the top (a nested ``$schema`` would switch
  jsonschema to another draft's validator, with Python's ``re``). The validator's registry cannot retrieve
  anything either, should a reference slip through.
- regular expressions (``pattern``, ``patternProperties``, and ``additionalProperties`` beside
  ``patternProperties``) run on RE2, which matches in linear time; a pattern RE2 cannot compile
  (backreferences, lookaround) is refused. ``unevaluatedProperties`` is refused beside ``patternProperties``
  (jsonschema evaluates those patterns with ``re`` in a helper that cannot be swapped). ``format`` is an
  annotation only (no format checker), as it was.
- size: at most MAX_BYTES serialized, MAX_DEPTH levels of subschemas and MAX_KEYWORDS keywords, both
  counted with every ``$ref`` expanded where it is used (so a small schema cannot reference its way to an
  exponential one).
- work: the cost of validating is the schema's size times the answer's, so ``problem`` gives up after
  MAX_EVALUATIONS keyword evaluations (an ``enum`` counts its values) and says so; ``uniqueItems`` runs in
  linear time (jsonschema's falls back to comparing every pair).
- it must be a valid JSON Schema 2020-12 (the metaschema), so a broken schema is refused at create time, not
  when somebody answers.
"""

from __future__ import annotations

import functools
import itertools
import threading
from typing import Any

import jsonschema
import orjson
import re2
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

MAX_BYTES = 65_536
MAX_DEPTH = 32
MAX_KEYWORDS = 1_000
# About a second of CPU in the worst case (~7 us each); a form of a few dozen fields needs a few hundred.
MAX_EVALUATIONS = 100_000

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DYNAMIC = ("$dynamicRef", "$recursiveRef", "$dynamicAnchor", "$recursiveAnchor")


class SchemaRefused(ValueError):
    """Why a caller's schema is not accepted; ``where`` is the keyword's path inside the schema (dotted)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


# ---------------------------------------------------------------------------------------------
# RE2 for every regular expression a schema holds

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 logs each refused pattern to stderr; the caller gets the reason instead
_OPTIONS.never_capture = True  # only ever searched, never asked for groups


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def _re2_error(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def _search(pattern: str, text: str) -> bool:
    return _regex(pattern).search(text) is not None


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for k, v in instance.items():
            if _search(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """jsonschema's ``find_additional_properties``, with the patterns searched one by one on RE2."""
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)]


# jsonschema's own keyword, through its public VALIDATORS table
_STANDARD_ADDITIONAL = jsonschema.Draft202012Validator.VALIDATORS["additionalProperties"]


def _additional_properties(validator: Any, aP: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    if "patternProperties" not in schema:  # no pattern involved: jsonschema's own keyword
        yield from _STANDARD_ADDITIONAL(validator, aP, instance, schema)
        return
    extras = _additional(instance, schema)
    if validator.is_type(aP, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], aP, path=extra)
    elif not aP and extras:
        joined = ", ".join(repr(each) for each in sorted(extras))
        patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
        yield ValidationError(f"{joined} {'does' if len(extras) == 1 else 'do'} not match any of the regexes: "
                              f"{patterns}")


def _unique_key(value: Any) -> Any:
    """Equal for values JSON Schema calls equal (1 and 1.0, not true and 1), hashable."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_unique_key(v) for v in value))
    return ("object", frozenset((k, _unique_key(v)) for k, v in value.items()))


def _unique_items(validator: Any, uI: Any, instance: Any, schema: Any) -> Any:
    if uI and validator.is_type(instance, "array"):
        seen: set[Any] = set()
        for i, item in enumerate(instance):
            key = _unique_key(item)
            if key in seen:
                yield ValidationError(f"item {i} repeats an earlier one: the items must be unique")
                return
            seen.add(key)


class _TooCostly(Exception):
    pass


_BUDGET = threading.local()  # evaluations left to the validation running on this thread (``problem``)


def _budgeted(keyword: str, check: Any) -> Any:
    def evaluate(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        left = getattr(_BUDGET, "left", None)
        if left is not None:
            left -= len(value) if keyword == "enum" and isinstance(value, list) else 1
            if left < 0:
                raise _TooCostly
            _BUDGET.left = left
        return check(validator, value, instance, schema)

    return evaluate


_KEYWORDS = {**jsonschema.Draft202012Validator.VALIDATORS, "pattern": _pattern,
             "patternProperties": _pattern_properties, "additionalProperties": _additional_properties,
             "uniqueItems": _unique_items}
VALIDATOR = jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                         {k: _budgeted(k, v) for k, v in _KEYWORDS.items()})

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("regex", raises=re2.error)
def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        _regex(instance)
    return True


def _refuse_retrieval(uri: str) -> Resource[Any]:
    raise LookupError(f"{uri}: a schema may only refer to its own parts")


# Nothing outside the schema itself can be found through this registry (jsonschema's default one fetches).
REGISTRY: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


# ---------------------------------------------------------------------------------------------
# the check


def _path(parts: tuple[str, ...]) -> str:
    path = ".".join(parts)
    return path if len(path) <= 200 else "..." + path[-200:]


class _Walk:
    """Every subschema, depth-first, following each ``$ref`` where it is used."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.resolver = REGISTRY.resolver_with_root(DRAFT202012.create_resource(root))
        self.root = root
        self.keywords = 0
        self.patterns = False
        self.unevaluated = False

    def schema(self, node: Any, at: tuple[str, ...], depth: int, refs: tuple[int, ...]) -> None:
        if not isinstance(node, dict):
            return  # true / false (the metaschema check refuses anything else)
        if depth > MAX_DEPTH:
            raise SchemaRefused(_path(at), f"nests subschemas more than {MAX_DEPTH} deep (counting through $ref)")
        self.keywords += len(node)
        if self.keywords > MAX_KEYWORDS:
            raise SchemaRefused(_path(at), f"more than {MAX_KEYWORDS} keywords (counting each $ref where it is "
                                "used)")
        for key in _DYNAMIC:
            if key in node:
                raise SchemaRefused(_path((*at, key)), "not supported here; use $ref to a #fragment")
        if node is not self.root:
            for key in ("$id", "$schema"):
                if key in node:
                    raise SchemaRefused(_path((*at, key)), "allowed only at the top of the schema")
        self.patterns = self.patterns or isinstance(node.get("patternProperties"), dict)
        self.unevaluated = self.unevaluated or "unevaluatedProperties" in node
        ref = node.get("$ref")
        if ref is not None:
            self.reference(ref, (*at, "$ref"), depth, refs)
        for child in DRAFT202012.create_resource(node).subresources():
            self.schema(child.contents, (*at, *_where(node, child.contents)), depth + 1, refs)

    def reference(self, ref: Any, at: tuple[str, ...], depth: int, refs: tuple[int, ...]) -> None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaRefused(_path(at), f"{str(ref)[:200]!r}: only references inside the schema (#...) are "
                                "allowed; nothing is fetched")
        try:
            target = self.resolver.lookup(ref).contents
        except Unresolvable:
            raise SchemaRefused(_path(at), f"{ref[:200]!r} points nowhere inside the schema") from None
        if id(target) in refs or target is self.root:
            raise SchemaRefused(_path(at), f"{ref[:200]!r} refers back to a schema that contains it; recursive "
                                "references are not supported")
        self.schema(target, at, depth + 1, (*refs, id(target)))


def _where(parent: dict[str, Any], child: Any) -> tuple[str, ...]:
    """The keys leading from ``parent`` to its subschema ``child`` (for messages)."""
    for key, value in parent.items():
        if value is child:
            return (key,)
        if isinstance(value, dict):
            for name, sub in value.items():
                if sub is child:
                    return (key, str(name))
        if isinstance(value, list):
            for i, sub in enumerate(value):
                if sub is child:
                    return (key, str(i))
    return ()


def _json_depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _error_path(error: ValidationError) -> str:
    return _path(tuple(str(p) for p in error.absolute_path))


@functools.lru_cache(maxsize=256)
def _compiled(text: bytes) -> Any:
    """The validator of the schema serialized as ``text`` (or SchemaRefused). A copy parsed from the text, so
    nobody else holds the dicts it validates with."""
    schema = orjson.loads(text)
    if not isinstance(schema, dict):
        raise SchemaRefused("", "must be a JSON object (a JSON Schema)")
    dialect = schema.get("$schema")
    if dialect is not None and (not isinstance(dialect, str) or dialect.rstrip("#") != DIALECT):
        raise SchemaRefused("$schema", f"the schema is JSON Schema 2020-12: use {DIALECT!r} or leave it out")
    if _json_depth(schema) > 2 * MAX_DEPTH + 2:  # before anything recursive looks at it
        raise SchemaRefused("", f"nests subschemas more than {MAX_DEPTH} deep")
    try:
        jsonschema.Draft202012Validator.check_schema(schema, format_checker=_FORMATS)
    except jsonschema.SchemaError as exc:
        if exc.validator == "format" and isinstance(exc.instance, str):
            try:
                _regex(exc.instance)
            except re2.error as refused:
                raise SchemaRefused(_error_path(exc), f"{exc.instance[:200]!r} is not a regular expression RE2 "
                                    f"accepts ({_re2_error(refused)}; RE2 has no backreferences or "
                                    "lookaround)") from None
        raise SchemaRefused(_error_path(exc), f"not a valid JSON Schema: {exc.message[:500]}") from None
    walk = _Walk(schema)
    walk.schema(schema, (), 1, ())
    if walk.patterns and walk.unevaluated:
        raise SchemaRefused("unevaluatedProperties", "not supported together with patternProperties")
    schema.pop("$schema", None)  # the validator is 2020-12 whatever it says (see the module's doc)
    return VALIDATOR(schema, registry=REGISTRY)


def _text(schema: Any) -> bytes:
    if not isinstance(schema, dict):
        raise SchemaRefused("", "must be a JSON object (a JSON Schema)")
    try:
        text = orjson.dumps(schema)
    except orjson.JSONEncodeError as exc:
        raise SchemaRefused("", f"cannot be serialized: {exc}") from None
    if len(text) > MAX_BYTES:
        raise SchemaRefused("", f"is {len(text)} bytes serialized; at most {MAX_BYTES}")
    return text


def check(schema: Any) -> None:
    """Raise SchemaRefused when ``schema`` is not one the runtime will evaluate (see the module's doc)."""
    _compiled(_text(schema))


def problem(schema: dict[str, Any], instance: Any) -> tuple[str, str] | None:
    """What is wrong with ``instance`` under ``schema``: (dotted path in the instance, message), or None.
    Raises SchemaRefused for a schema ``check`` refuses (one stored before these checks existed)."""
    validator = _compiled(_text(schema))
    _BUDGET.left = MAX_EVALUATIONS
    try:
        error = best_match(itertools.islice(validator.iter_errors(instance), 100))
    except _TooCostly:
        return ("", f"too large to check against this schema (more than {MAX_EVALUATIONS} evaluations); "
                "send less")
    finally:
        _BUDGET.left = None
    if error is None:
        return None
    message = error.message if len(error.message) <= 500 else error.message[:500] + "..."
    return _error_path(error), message
