"""/v1/media over a real runtime (on both backends): an upload created, its bytes PUT to the URL the runtime
answered, finalized with size and sha256 checked, read back (metadata, download, preview) by those who may; the
bytes kept durably (SQLite: 0600 files in a 0700 folder named by the runtime; PostgreSQL: rows every replica reads)
and deleted when replaced or expired; oversized bodies refused before anything is stored, mismatched finalizes
refused leaving the upload unusable; attachments on intents and inbox replies; and the official SDK's three
media methods."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig

from tests.conftest import ADMIN_KEY, make_agent, new_intent, unique
from tests.protocol.test_conformance import schema_errors
from tests.receiver import poll
from tests.runtime.api.test_intents import assert_error
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

MIB = 2**20


def spec(name: str, body: dict[str, Any]) -> None:
    errors = schema_errors(f"public_api/api.media.{name}.v1.json", body)
    assert not errors, f"{name}: {errors}"


def as_key(rt: RuntimeProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=rt.url, headers={"x-api-key": key}, timeout=30, verify=TLS)


def create(client: httpx.Client, data: bytes, *, status: int = 200, **extra: Any) -> dict[str, Any]:
    body = {"filename": "report.pdf", "mime_type": "application/pdf", "size_bytes": len(data), **extra}
    r = client.post("/v1/media/create-upload", json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


def put(url: str, data: bytes | Iterator[bytes], **kwargs: Any) -> httpx.Response:
    return httpx.put(url, content=data, timeout=30, **kwargs, verify=TLS)


def finalize(client: httpx.Client, upload_id: str, data: bytes, **extra: Any) -> httpx.Response:
    return client.post("/v1/media/finalize-upload", json={"upload_id": upload_id, "size_bytes": len(data), **extra})


def uploaded(client: httpx.Client, data: bytes, **extra: Any) -> str:
    """A ready upload of ``data``: its id."""
    created = create(client, data, **extra)
    assert put(created["upload_url"], data).status_code == 200
    r = finalize(client, created["upload_id"], data, sha256=hashlib.sha256(data).hexdigest())
    assert r.status_code == 200, r.text
    return str(created["upload_id"])


def stored_parts(rt: RuntimeProcess) -> list[str]:
    """The parts whose bytes the runtime keeps: files in <db>.media (SQLite), media_chunks rows (PostgreSQL)."""
    if rt.database_url is None:
        folder = Path(str(rt.db) + ".media")
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    import psycopg

    with psycopg.connect(rt.database_url) as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT part_id FROM media_chunks ORDER BY 1").fetchall()]


def test_an_upload_round_trip_keeps_the_bytes_durably_and_privately(quiet: RuntimeProcess, api: httpx.Client) -> None:
    data = os.urandom(2 * MIB + 3)  # three chunks, the last one short
    digest = hashlib.sha256(data).hexdigest()
    before = stored_parts(quiet)
    created = create(api, data, owner_agent="archivist", filename="Q3 report.pdf", sha256=digest)
    spec("create_upload.response", created)
    assert created["owner_agent"].endswith("/archivist") and created["max_size_bytes"] == len(data)
    url = urlsplit(created["upload_url"])
    assert f"{url.scheme}://{url.netloc}" == quiet.url  # served by the runtime itself
    assert url.path == f"/v1/media/upload/{created['upload_id']}" and url.query.startswith("token=axme_up_")

    r = put(created["upload_url"], data, headers={"content-type": "application/pdf"})  # no API key: the URL is one
    assert r.status_code == 200, r.text
    assert r.json()["received_bytes"] == len(data) and r.json()["sha256"] == digest
    [part] = sorted(set(stored_parts(quiet)) - set(before))
    assert created["upload_id"].replace("-", "") not in part and "report" not in part  # named by the runtime
    if quiet.database_url is None:
        folder = Path(str(quiet.db) + ".media")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / part).stat().st_mode) == 0o600
        assert (folder / part).read_bytes() == data

    done = finalize(api, created["upload_id"], data, sha256=digest)
    assert done.status_code == 200, done.text
    spec("finalize_upload.response", done.json())
    assert (done.json()["status"], done.json()["sha256"]) == ("ready", digest)
    again = finalize(api, created["upload_id"], data)  # the same facts again: the same answer
    assert again.status_code == 200 and again.json() == done.json()

    got = api.get(f"/v1/media/{created['upload_id']}").json()
    spec("get.response", got)
    upload = got["upload"]
    assert (upload["status"], upload["filename"], upload["size_bytes"]) == ("ready", "Q3 report.pdf", len(data))
    assert upload["download_url"] == f"{quiet.url}/v1/media/download/{created['upload_id']}"
    assert upload["preview_url"] is None  # not an image

    r = api.get(upload["download_url"])
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "application/pdf" and r.headers["content-length"] == str(len(data))
    assert r.headers["content-disposition"] == ("attachment; filename=\"Q3 report.pdf\"; "
                                                "filename*=UTF-8''Q3%20report.pdf")
    assert r.headers["x-content-type-options"] == "nosniff"
    # finalized: the bytes cannot change any more
    assert_error(put(created["upload_url"], b"other"), 409, "upload_not_pending")


def test_a_new_put_replaces_the_bytes_and_the_old_part_is_deleted(quiet: RuntimeProcess, api: httpx.Client) -> None:
    first, second = b"a" * 10, b"b" * 10
    created = create(api, first)
    before = stored_parts(quiet)
    assert put(created["upload_url"], first).status_code == 200
    [old] = sorted(set(stored_parts(quiet)) - set(before))
    assert put(created["upload_url"], second).status_code == 200
    [new] = sorted(set(stored_parts(quiet)) - set(before))
    assert new != old
    assert finalize(api, created["upload_id"], second, sha256=hashlib.sha256(second).hexdigest()).status_code == 200
    assert api.get(f"/v1/media/download/{created['upload_id']}").content == second


def test_an_oversized_body_is_refused_before_anything_is_stored(quiet: RuntimeProcess, api: httpx.Client) -> None:
    data = b"x" * 1000
    created = create(api, data)
    before = stored_parts(quiet)
    # Content-Length says too much: 413 at once, the body unread, the connection closed
    r = put(created["upload_url"], data + b"!")
    assert_error(r, 413, "media_too_large")
    assert r.headers["connection"] == "close"
    # no Content-Length (chunked): cut as soon as it goes past size_bytes, and what came is deleted
    r = put(created["upload_url"], iter([data[:600], data[600:], b"more"]))
    assert_error(r, 413, "media_too_large")
    assert stored_parts(quiet) == before
    assert_error(finalize(api, created["upload_id"], data), 409, "upload_incomplete")
    assert api.get(f"/v1/media/{created['upload_id']}").json()["upload"]["status"] == "pending"


def test_a_finalize_that_differs_is_refused_and_the_upload_stays_unusable(quiet: RuntimeProcess,
                                                                          api: httpx.Client) -> None:
    data = b"hello media"
    created = create(api, data, sha256=hashlib.sha256(b"something else").hexdigest())
    upload_id = created["upload_id"]
    assert put(created["upload_url"], data).status_code == 200
    body = assert_error(finalize(api, upload_id, data[:-1]), 422, "size_mismatch", names="size_bytes")
    assert body["error"]["details"]["field"] == "size_bytes"
    body = assert_error(finalize(api, upload_id, data, sha256="0" * 64), 422, "sha256_mismatch", names="sha256")
    assert body["error"]["details"]["field"] == "sha256"
    # the bytes match what finalize says, but not the sha256 create-upload declared
    assert_error(finalize(api, upload_id, data, sha256=hashlib.sha256(data).hexdigest()), 422, "sha256_mismatch")
    assert api.get(f"/v1/media/{upload_id}").json()["upload"]["status"] == "pending"
    assert_error(api.get(f"/v1/media/download/{upload_id}"), 409, "upload_not_ready")
    r = api.post("/v1/intents", json=new_intent("inventory", attachments=[{"upload_id": upload_id}]))
    assert_error(r, 422, "invalid_attachment", names="attachments[0].upload_id")


def test_the_upload_url_is_a_capability(quiet: RuntimeProcess, api: httpx.Client) -> None:
    data = b"secret bytes"
    created = create(api, data)
    url = created["upload_url"]
    base, token = url.split("?token=")
    for wrong in (f"{base}?token=axme_up_{'A' * 43}", base, f"{base}?token=", f"{base}?token={token}x"):
        assert_error(put(wrong, data), 404, "upload_not_found")
    other = create(api, data)["upload_url"].split("?")[0]
    assert_error(put(f"{other}?token={token}", data), 404, "upload_not_found")  # one upload's token only
    assert_error(put(f"{quiet.url}/v1/media/upload/not-a-uuid?token={token}", data), 404)
    assert put(url, data).status_code == 200
    # the token is never kept in clear: not in the database, not in a GET
    assert token not in api.get(f"/v1/media/{created['upload_id']}").text
    if quiet.database_url is None:
        assert token.encode() not in Path(quiet.db).read_bytes() + Path(str(quiet.db) + "-wal").read_bytes()


def test_an_idempotent_create_answers_the_same_upload_with_a_new_url(api: httpx.Client) -> None:
    body = {"filename": "a.txt", "mime_type": "text/plain", "size_bytes": 3}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/v1/media/create-upload", json=body, headers=key).json()
    second = api.post("/v1/media/create-upload", json=body, headers=key).json()
    assert first["upload_id"] == second["upload_id"] and first["upload_url"] != second["upload_url"]
    assert_error(put(first["upload_url"], b"abc"), 404)  # only the newest URL works
    assert put(second["upload_url"], b"abc").status_code == 200
    assert_error(api.post("/v1/media/create-upload", json={**body, "size_bytes": 4}, headers=key), 409,
                 "idempotency_conflict")


def test_who_may_read_finalize_and_attach_an_upload(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, owner_key = make_agent(api, unique("owner"))
    peer, peer_key = make_agent(api, unique("peer"))
    watcher, watcher_key = make_agent(api, unique("watcher"))
    stranger, stranger_key = make_agent(api, unique("stranger"))
    mine, theirs, outsider = as_key(quiet, owner_key), as_key(quiet, peer_key), as_key(quiet, stranger_key)
    # an agent key creates uploads for itself only; the admin key for anyone
    assert_error(mine.post("/v1/media/create-upload", json={"owner_agent": peer, "filename": "x.bin",
                                                            "mime_type": "application/octet-stream",
                                                            "size_bytes": 1}), 403, "actor_mismatch")
    data = b"contract v1"
    created = create(mine, data)
    upload_id = created["upload_id"]
    assert created["owner_agent"] == owner
    assert put(created["upload_url"], data).status_code == 200
    assert_error(finalize(theirs, upload_id, data), 404, "upload_not_found")  # not visible to it
    assert finalize(mine, upload_id, data).status_code == 200
    for path in (f"/v1/media/{upload_id}", f"/v1/media/download/{upload_id}", f"/v1/media/preview/{upload_id}"):
        assert_error(theirs.get(path), 404, "upload_not_found")
    # someone else cannot attach it ...
    r = theirs.post("/v1/intents", json=new_intent(owner, attachments=[{"upload_id": upload_id}]))
    assert_error(r, 422, "invalid_attachment")
    # ... its owner can: the addressee and reply_to may read it from then on, nobody else
    r = mine.post("/v1/intents", json=new_intent(peer, reply_to=watcher,
                                                 attachments=[{"upload_id": upload_id, "mime_type": "text/x-lie"}]))
    assert r.status_code == 200, r.text
    intent = theirs.get(f"/v1/intents/{r.json()['intent_id']}").json()["intent"]
    assert intent["attachments"] == [{"upload_id": upload_id, "filename": "report.pdf", "mime_type": "application/pdf",
                                      "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}]
    assert theirs.get(f"/v1/media/download/{upload_id}").content == data
    assert as_key(quiet, watcher_key).get(f"/v1/media/{upload_id}").status_code == 200
    assert_error(outsider.get(f"/v1/media/download/{upload_id}"), 404)
    # the addressee may pass it on; it cannot finalize it
    r = theirs.post("/v1/intents", json=new_intent(stranger, attachments=[{"upload_id": upload_id}]))
    assert r.status_code == 200, r.text
    assert outsider.get(f"/v1/media/{upload_id}").status_code == 200
    assert_error(finalize(theirs, upload_id, data), 403, "policy_denied")


def test_an_inbox_reply_carries_attachments_to_every_holder_of_the_thread(quiet: RuntimeProcess,
                                                                          api: httpx.Client) -> None:
    owner, owner_key = make_agent(api, unique("inbox-owner"))
    delegate, delegate_key = make_agent(api, unique("delegate"))
    sender, sender_key = make_agent(api, unique("sender"))
    intent_id = api.post("/v1/intents", json=new_intent(sender, reply_to=owner)).json()["intent_id"]
    r = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {}})
    assert r.status_code == 200, r.text
    inbox = as_key(quiet, owner_key)
    data = b"\x89PNG\r\n\x1a\n fake image"
    upload_id = uploaded(inbox, data, filename="chart.png", mime_type="image/png")
    r = inbox.post(f"/v1/inbox/{intent_id}/reply", json={"message": "see the chart",
                                                        "attachments": [{"upload_id": upload_id}]})
    assert r.status_code == 200, r.text
    [message] = [m for m in r.json()["thread"]["messages"] if m["message_id"] == r.json()["message_id"]]
    assert [a["upload_id"] for a in message["attachments"]] == [upload_id]
    assert_error(as_key(quiet, delegate_key).get(f"/v1/media/{upload_id}"), 404)
    r = inbox.post(f"/v1/inbox/{intent_id}/delegate", json={"delegate_to": delegate})
    assert r.status_code == 200, r.text
    r = as_key(quiet, delegate_key).get(f"/v1/media/preview/{upload_id}")  # delegated later: it may read it now
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "image/png" and r.headers["content-disposition"].startswith("inline;")
    assert_error(as_key(quiet, sender_key).get(f"/v1/media/{upload_id}"), 404)  # not a holder of the thread
    r = inbox.post(f"/v1/inbox/{intent_id}/reply",
                   json={"message": "x", "attachments": [{"upload_id": str(uuid.uuid4())}]})
    assert_error(r, 422, "invalid_attachment", names="attachments[0].upload_id")


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("mime_type", "filename", "served", "preview"), [
    ("text/html", "page.html", "application/octet-stream", "attachment"),
    ("image/svg+xml", "logo.svg", "application/octet-stream", "attachment"),
    ("application/javascript", "x.js", "application/octet-stream", "attachment"),
    ("text/plain; charset=utf-8", 'say "hi"\u00e9.txt', "text/plain", "attachment"),
    ("image/gif", "a.gif", "image/gif", "inline"),
])
def test_a_file_is_served_with_a_type_no_browser_runs(api: httpx.Client, mime_type: str, filename: str, served: str,
                                                      preview: str) -> None:
    data = b"<script>alert(1)</script>"
    upload_id = uploaded(api, data, mime_type=mime_type, filename=filename)
    r = api.get(f"/v1/media/download/{upload_id}")
    assert r.headers["content-type"] == served and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment; filename=\"")
    assert "sandbox" in r.headers["content-security-policy"]
    if '"' in filename:
        assert r.headers["content-disposition"].count('"') == 2  # the name's own quotes never end the parameter
    r = api.get(f"/v1/media/preview/{upload_id}")
    assert r.headers["content-disposition"].split(";")[0] == preview and r.content == data


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("body", "field"), [
    ({"filename": "a/b.pdf"}, "filename"),
    ({"filename": "..\\b.pdf"}, "filename"),
    ({"filename": "a\nb.pdf"}, "filename"),
    ({"filename": ""}, "filename"),
    ({"filename": "x" * 256}, "filename"),
    ({"mime_type": "pdf"}, "mime_type"),
    ({"mime_type": "text/html\r\nx: y"}, "mime_type"),
    ({"size_bytes": 0}, "size_bytes"),
    ({"size_bytes": 2**31 + 1}, "size_bytes"),
    ({"size_bytes": "10"}, "size_bytes"),
    ({"sha256": "ABC"}, "sha256"),
    ({"sha256": "A" * 64}, "sha256"),
    ({"ttl_seconds": 59}, "ttl_seconds"),
    ({"ttl_seconds": 604801}, "ttl_seconds"),
    ({"owner_agent": "bad address"}, "owner_agent"),
    ({"colour": "red"}, "colour"),
])
def test_a_hostile_create_is_refused_naming_the_field(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    good = {"filename": "a.pdf", "mime_type": "application/pdf", "size_bytes": 10}
    assert_error(api.post("/v1/media/create-upload", json={**good, **body}), 422, names=field)


@pytest.mark.backends("sqlite")
def test_hostile_finalizes_and_ids_are_refused(api: httpx.Client) -> None:
    assert_error(api.post("/v1/media/finalize-upload", json={"upload_id": "nope", "size_bytes": 1}), 422,
                 names="upload_id")
    assert_error(api.post("/v1/media/finalize-upload", json={"upload_id": str(uuid.uuid4())}), 422,
                 names="size_bytes")
    assert_error(api.post("/v1/media/finalize-upload", json=[1]), 422)
    assert_error(api.post("/v1/media/finalize-upload", json={"upload_id": str(uuid.uuid4()), "size_bytes": 1}), 404,
                 "upload_not_found")
    for path in ("/v1/media/x", "/v1/media/download/..%2F..%2Fetc%2Fpasswd", f"/v1/media/preview/{uuid.uuid4()}"):
        assert_error(api.get(path), 404)
    assert_error(httpx.get(str(api.base_url) + f"/v1/media/{uuid.uuid4()}", verify=TLS), 401)  # reads need a key


# ---------------------------------------------------------------------------------------------
# limits and expiry: a runtime of their own (a 1000-byte limit, a sweep after each create or finalize)


@pytest.fixture(scope="module")
def short(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    rt = RuntimeThread(tmp_path_factory.mktemp("media-short"), backend=backend,
                       settings={"media_max_bytes": 1000, "media_sweep_seconds": 0.0})
    rt.start()
    yield rt
    rt.retire()


def test_a_file_larger_than_the_runtime_takes_is_refused_at_create(short: RuntimeProcess) -> None:
    with short.client() as api:
        r = api.post("/v1/media/create-upload", json={"filename": "a", "mime_type": "a/b", "size_bytes": 1001})
        body = assert_error(r, 413, "media_too_large", names="size_bytes")
        assert body["error"]["details"] == {"field": "size_bytes", "limit_bytes": 1000}


def _expire(rt: RuntimeProcess, upload_id: str) -> None:
    """Move an upload's end into the past, as time would (the shortest ttl_seconds is a minute): the database is
    changed beside the runtime, which reads expires_ts on every call (no cache of uploads)."""
    sql = "UPDATE media_uploads SET expires_ts = expires_ts - 86400 WHERE upload_id = ?"
    if rt.database_url is None:
        conn = sqlite3.connect(str(rt.db), timeout=10)
        try:
            with conn:
                conn.execute(sql, (upload_id,))
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(rt.database_url) as pg:
        pg.execute(sql.replace("?", "%s"), (upload_id,))


def test_an_expired_upload_takes_nothing_and_its_bytes_are_deleted(short: RuntimeProcess) -> None:
    with short.client() as api:
        data = b"late"
        created = create(api, data)
        assert put(created["upload_url"], data).status_code == 200
        assert stored_parts(short)
        _expire(short, created["upload_id"])
        assert_error(put(created["upload_url"], data), 410, "upload_expired")
        assert_error(finalize(api, created["upload_id"], data), 410, "upload_expired")
        assert api.get(f"/v1/media/{created['upload_id']}").json()["upload"]["status"] == "expired"
        create(api, b"x")  # a write: the sweep runs after it
        poll(lambda: stored_parts(short), lambda parts: parts == [])
        assert api.get(f"/v1/media/{created['upload_id']}").json()["upload"]["status"] == "expired"


def test_wrong_upload_tokens_count_as_guesses(short: RuntimeProcess) -> None:
    """The runtime of these tests keeps the default limit on checks of a secret per address (10 a minute)."""
    with short.client() as api:
        base = create(api, b"x")["upload_url"].split("?")[0]
        assert [put(f"{base}?token=axme_up_{n:043d}", b"x").status_code for n in range(10)] == [404] * 10
        r = put(f"{base}?token=guess", b"x")
        assert_error(r, 429, "rate_limit_exceeded")
        assert int(r.headers["retry-after"]) >= 1


# ---------------------------------------------------------------------------------------------
# the official SDK


def test_the_official_sdk_uploads_finalizes_and_reads(quiet: RuntimeProcess) -> None:
    sdk = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY))
    data = os.urandom(50_000)
    digest = hashlib.sha256(data).hexdigest()
    created = sdk.create_media_upload({"owner_agent": "agent://local/dev/sdk-user", "filename": "photo.jpg",
                                       "mime_type": "image/jpeg", "size_bytes": len(data), "sha256": digest},
                                      idempotency_key=uuid.uuid4().hex)
    assert created["status"] == "pending"
    r = httpx.put(created["upload_url"], content=data, headers={"content-type": "image/jpeg"}, timeout=30, verify=TLS)
    assert r.status_code == 200, r.text
    done = sdk.finalize_media_upload({"upload_id": created["upload_id"], "size_bytes": len(data), "sha256": digest})
    assert done["status"] == "ready" and done["sha256"] == digest
    got = sdk.get_media_upload(created["upload_id"])
    spec("get.response", got)
    assert got["upload"]["preview_url"].endswith(f"/v1/media/preview/{created['upload_id']}")
    r = httpx.get(got["upload"]["download_url"], headers={"x-api-key": ADMIN_KEY}, timeout=30, verify=TLS)
    assert r.content == data

