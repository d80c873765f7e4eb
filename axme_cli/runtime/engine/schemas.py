"""The schema registry (AXME family d5): JSON Schemas registered per semantic type, and the check of an intent's
payload against the one that applies to it.

Which schema applies to an intent of type T sent to agent A: A's own (``scope: tenant``, registered by A's key or
for A by the workspace key or a person), else the workspace's (``scope: core``, the workspace key only), if it is
active. How strictly: the intent's ``schema_mode`` (none / warn / enforce), else the schema's default
(``protocol.semantic_schemas.schema_mode``).

A payload is validated outside any transaction (``judge``, on a worker thread: ``api/intents.check_payload``),
with the same inert-schema rules as a task's form_schema (``protocol/schemas.py``); its verdict is kept by (schema
hash, payload), so the same payload is not validated twice. The create operation only
confirms that the schema it was judged against is still the one that applies (``confirm``: one indexed read, made
only when a schema applied); otherwise ``SchemaChanged`` and the route judges again. An intent whose type has no
schema costs no query: ``Registry`` keeps every active schema's head in memory, dropped when a commit changed the
registry (``Notes.schemas``; other replicas hear of it through LISTEN/NOTIFY, and after a reconnect drop it too).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit, idempotency
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.errors import Conflict, Forbidden, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Reads, Row, Tx

CORE_OWNER = ""  # the owner_key of the runtime's default workspace's schemas (scope core)


def core_key(s: Settings) -> str:
    """The owner_key of the schemas (scope core) of the workspace of ``s``: another workspace's have their own, so
    each registers and reads its own (a tenant schema's key is its agent's address, already one workspace's)."""
    return f"core:{s.org}/{s.workspace}" if s.scoped else CORE_OWNER


def schema_hash(schema: dict[str, Any]) -> str:
    """sha256 of the schema's canonical JSON (keys sorted): the same schema always hashes the same."""
    return hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()


def default_ref(owner_agent: str | None, semantic_type: str, digest: str) -> str:
    """``registry://<owner>/<semantic type>@<hash prefix>`` as AXME writes it (``core`` for the workspace's)."""
    return f"registry://{owner_agent or 'core'}/{semantic_type}@{digest[:12]}"


def record_view(row: Row, *, with_json: bool) -> dict[str, Any]:
    """``api.schemas.get.response.v1``'s ``schema`` (``with_json``), or the upsert response's (without it)."""
    view: dict[str, Any] = {
        "semantic_type": row["semantic_type"], "schema_ref": row["schema_ref"], "schema_hash": row["schema_hash"],
        "compatibility_mode": row["compatibility_mode"], "scope": row["scope"], "owner_agent": row["owner_agent"],
        "active": bool(row["active"]),
    }
    if with_json:
        view["schema_json"] = loads(row["schema_json"])
    view["created_at"], view["updated_at"] = row["created_at"], row["updated_at"]
    return view


def applicable(rows: list[Row], owner: str | None, core: str = CORE_OWNER) -> Row | None:
    """Of a semantic type's active rows, the one that applies for ``owner``: its own, else the workspace's
    (``core``: its ``core_key``)."""
    active = {r["owner_key"]: r for r in rows if r["active"]}
    return (active.get(owner) if owner else None) or active.get(core)


# ---------------------------------------------------------------------------------------------
# registering


def op_upsert(tx: Tx, principal: Principal, req: dict[str, Any], owner: str | None, now: float,
              idem: idempotency.Key | None = None, core: str = CORE_OWNER) -> dict[str, Any]:
    """Register (or replace) the schema of ``req["semantic_type"]`` for ``owner`` (scope tenant; the route decided
    who that is and that the caller may act for it) or for the workspace (scope core: the admin key only; ``core``
    is the workspace's ``core_key``)."""
    return idempotency.once(tx, idem, now, lambda: _upsert(tx, principal, req, owner, now, core)).result


def _upsert(tx: Tx, principal: Principal, req: dict[str, Any], owner: str | None, now: float,
            core: str) -> dict[str, Any]:
    semantic_type = req["semantic_type"]
    if req["scope"] == "core":
        if not principal.is_admin:
            raise Forbidden("scope core: only the workspace admin key registers the workspace's schemas; register "
                            "your own with scope tenant", code="scope_forbidden",
                            details={"field": "scope", "allowed": ["tenant"]})
        owner_key, owner_agent = core, None
    else:
        assert owner is not None, "the route names the owner of a tenant schema"
        owner_key = owner_agent = owner
    digest = schema_hash(req["schema_json"])
    fields: Row = {
        "scope": req["scope"], "owner_agent": owner_agent, "schema_json": dumps(req["schema_json"]),
        "schema_hash": digest, "schema_ref": req.get("schema_ref") or default_ref(owner_agent, semantic_type, digest),
        "compatibility_mode": req["compatibility_mode"], "active": 1 if req.get("active", True) else 0,
    }
    row = tx.get_schema_record(semantic_type, owner_key)
    at = iso(now)
    created = row is None
    if row is None:
        row = {"semantic_type": semantic_type, "owner_key": owner_key, **fields, "created_at": at, "updated_at": at,
               "updated_by": principal.address}
        tx.insert_schema_record(row)
    elif any(row[k] != v for k, v in fields.items()):
        changes = {**fields, "updated_at": at, "updated_by": principal.address}
        tx.update_schema_record(semantic_type, owner_key, changes)
        row = {**row, **changes}
    else:  # the same registration again (a retry): nothing changes, nothing is recorded
        return {"ok": True, "schema": record_view(row, with_json=False)}
    tx.notes.schemas = True
    audit.by(tx, "schema.upserted", now, principal, owner_agent=owner_agent, target=("schema", semantic_type),
             scope=req["scope"], schema_hash=digest, compatibility_mode=req["compatibility_mode"],
             active=bool(fields["active"]), created=created)
    return {"ok": True, "schema": record_view(row, with_json=False)}


# ---------------------------------------------------------------------------------------------
# checking an intent's payload


@dataclass(frozen=True)
class Head:
    """What the in-memory index keeps of an active schema (no schema_json)."""

    semantic_type: str
    owner_key: str
    schema_hash: str
    schema_ref: str
    compatibility_mode: str


# Verdicts of payloads under schemas, by sha256 of (schema_hash, payload): a payload sent again (a retry, the same
# order twice) is not validated again. Filled on worker threads (``judge_and_keep``), read on the event loop.
_VERDICTS: OrderedDict[bytes, tuple[str, str] | None] = OrderedDict()
_VERDICTS_KEPT = 4096
_VERDICTS_LOCK = threading.Lock()
UNKNOWN = object()  # no verdict kept


def verdict_key(head: Head, payload: Any) -> bytes:
    return hashlib.sha256(head.schema_hash.encode() + dumps(payload).encode()).digest()


def known_verdict(key: bytes) -> Any:
    """The verdict kept for ``key`` (None: it fits), or ``UNKNOWN``."""
    with _VERDICTS_LOCK:
        if key not in _VERDICTS:
            return UNKNOWN
        _VERDICTS.move_to_end(key)
        return _VERDICTS[key]


def judge_and_keep(key: bytes, schema: dict[str, Any], payload: Any) -> tuple[str, str] | None:
    """``judge``, and keep the verdict under ``key`` (``verdict_key``)."""
    verdict = judge(schema, payload)
    with _VERDICTS_LOCK:
        _VERDICTS[key] = verdict
        while len(_VERDICTS) > _VERDICTS_KEPT:
            _VERDICTS.popitem(last=False)
    return verdict


def judge(schema: dict[str, Any], payload: Any) -> tuple[str, str] | None:
    """What is wrong with ``payload`` under ``schema``: (field, message) with the field's path from ``payload``,
    or None. Costly (the caller's schema times the payload, bounded by protocol/schemas.py): never inside a
    transaction."""
    from axme_cli.protocol import schemas as caller_schemas  # jsonschema and RE2: loaded when first needed

    try:
        found = caller_schemas.problem(schema, payload)
    except caller_schemas.SchemaRefused as exc:  # registered before a rule it breaks existed
        return ("payload", f"the registered schema is refused now ({exc}); register it again")
    if found is None:
        return None
    where, message = found
    return (f"payload.{where}" if where else "payload", message)


@dataclass(frozen=True)
class Check:
    """A payload judged against the schema that applied when it was judged (and how strictly)."""

    head: Head
    to_agent: str
    mode: str  # warn | enforce
    problem: tuple[str, str] | None
    core: str = CORE_OWNER  # the core_key of the sender's workspace

    def details(self) -> dict[str, Any]:
        """What ``intent.created`` records of the check (its ``details.schema_validation``)."""
        out: dict[str, Any] = {"semantic_type": self.head.semantic_type, "schema_ref": self.head.schema_ref,
                               "schema_hash": self.head.schema_hash, "mode": self.mode, "valid": self.problem is None}
        if self.problem is not None:
            out["problem"] = {"field": self.problem[0], "message": self.problem[1]}
        return out

    def refusal(self) -> Unprocessable:
        assert self.problem is not None
        field, message = self.problem
        return Unprocessable(f"{field}: {message} (schema {self.head.schema_ref})", code="schema_validation_failed",
                             details={"field": field, "semantic_type": self.head.semantic_type,
                                      "schema_ref": self.head.schema_ref, "schema_hash": self.head.schema_hash})


class SchemaChanged(Conflict):
    """The schema a payload was judged against is no longer the one that applies: judge again. Reaching a client
    (409), the registry changed twice while one intent was being sent."""

    def __init__(self) -> None:
        super().__init__("the schema registered for this intent type changed while the intent was checked against "
                         "it; send it again", code="schema_changed")


def confirm(tx: Tx, check: Check | None) -> None:
    """Inside the create: the schema ``check`` was judged against still applies (SchemaChanged otherwise). No
    check (no schema applied, or schema_mode none): nothing to confirm, no query."""
    if check is None:
        return
    head = check.head
    rows = tx.active_schema_heads(head.semantic_type, sorted({check.to_agent, check.core}))
    current = applicable([{**r, "active": 1} for r in rows], check.to_agent, check.core)
    if current is None or (current["owner_key"], current["schema_hash"], current["compatibility_mode"]) != (
            head.owner_key, head.schema_hash, head.compatibility_mode):
        raise SchemaChanged()


class Registry:
    """Every active schema's head in memory, so that creating an intent whose type has none asks the database
    nothing. Dropped (``invalidate``) after a commit that changed the registry, here or on another replica
    (``Notes.schemas`` through LISTEN/NOTIFY; ``Notes.everything`` after a reconnect); ``ttl`` (seconds, replicas
    only) bounds how long a notification lost anyway could leave it stale."""

    BODIES_KEPT = 64

    def __init__(self, ttl: float | None = None) -> None:
        self.ttl = ttl
        self._index: dict[str, dict[str, Head]] | None = None
        self._loaded_at = 0.0
        self._generation = 0  # one more per invalidate: a load that raced one is not kept
        self._lock: asyncio.Lock | None = None
        self._bodies: OrderedDict[str, dict[str, Any]] = OrderedDict()  # schema_hash -> schema_json

    def invalidate(self) -> None:
        self._index = None
        self._generation += 1

    def _fresh(self) -> dict[str, dict[str, Head]] | None:
        if self._index is not None and (self.ttl is None or time.monotonic() - self._loaded_at < self.ttl):
            return self._index
        return None

    async def head(self, reads: Reads, semantic_type: str, to_agent: str, core: str = CORE_OWNER) -> Head | None:
        """The schema that applies to an intent of ``semantic_type`` sent to ``to_agent`` from the workspace whose
        ``core_key`` is ``core``, if any."""
        index = self._fresh() or await self._load(reads)
        by_owner = index.get(semantic_type)
        if not by_owner:
            return None
        return by_owner.get(to_agent) or by_owner.get(core)

    async def _load(self, reads: Reads) -> dict[str, dict[str, Head]]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # many creates at once after an invalidate: one of them reads
            index = self._fresh()
            if index is not None:
                return index
            generation = self._generation
            index = {}
            for row in await reads.active_schema_index():
                index.setdefault(row["semantic_type"], {})[row["owner_key"]] = Head(**row)
            if generation == self._generation:
                self._index, self._loaded_at = index, time.monotonic()
            return index

    async def schema(self, reads: Reads, head: Head) -> dict[str, Any] | None:
        """The schema_json of ``head`` (kept by hash); None when the row no longer has that hash."""
        body = self._bodies.get(head.schema_hash)
        if body is not None:
            self._bodies.move_to_end(head.schema_hash)
            return body
        rows = await reads.schema_records(head.semantic_type, [head.owner_key])
        if not rows or rows[0]["schema_hash"] != head.schema_hash:
            return None
        body = loads(rows[0]["schema_json"])
        self._bodies[head.schema_hash] = body
        while len(self._bodies) > self.BODIES_KEPT:
            self._bodies.popitem(last=False)
        return body
