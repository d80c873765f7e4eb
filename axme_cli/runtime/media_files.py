"""Where an upload's bytes are kept: files beside a SQLite database, rows of a PostgreSQL database.

A *part* is the bytes of one PUT, named by a part id the runtime made (32 hex digits): never by anything a caller
sent. A part is written while the body streams in (at most ``CHUNK`` bytes are held in memory), hashed on the way,
and durable when ``close`` returns: the file and its folder fsynced (SQLite), every chunk committed (PostgreSQL).

- SQLite (``FileBlobs``): ``<database>.media/<part_id>``, the folder 0700 and each file 0600, opened with
  ``O_EXCL | O_NOFOLLOW``. One process holds a SQLite database, so its disk is the only one that needs them.
- PostgreSQL (``DbBlobs``): ``media_chunks`` rows of 1 MiB (``store/media_sql.py``), so every replica reads what
  any replica stored, with no shared folder to mount, and a backup of the database holds them. The price is the
  bytes going through the database (a 2 GiB file is 2,048 rows).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import AsyncIterator

from axme_cli.runtime.store.base import Store, Tx

CHUNK = 2**20  # bytes written (or committed) at once, and the size of a PostgreSQL chunk row
READ_CHUNK = 256 * 1024
_PART_ID = re.compile(r"^[0-9a-f]{32}$")


def _checked(part_id: str) -> str:
    """Part ids are the runtime's own (uuid4 hex); anything else never reaches the filesystem or a query."""
    if not _PART_ID.match(part_id):
        raise ValueError(f"not a part id: {part_id!r}")
    return part_id


class Part(abc.ABC):
    """The bytes of one PUT as they arrive."""

    def __init__(self, part_id: str) -> None:
        self.part_id = _checked(part_id)
        self.size = 0
        self._hash = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._buffered = 0

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        while self._buffered >= CHUNK:
            joined = b"".join(self._buffer)
            head, rest = joined[:CHUNK], joined[CHUNK:]
            self._buffer, self._buffered = ([rest] if rest else []), len(rest)
            await self._put(head)

    async def close(self) -> str:
        """Write what is left and make the part durable; returns its sha256 (hex)."""
        if self._buffered:
            joined = b"".join(self._buffer)
            self._buffer, self._buffered = [], 0
            await self._put(joined)
        await self._sync()
        return self._hash.hexdigest()

    @abc.abstractmethod
    async def _put(self, data: bytes) -> None:
        """Hash and keep ``data`` (CHUNK bytes, or the last piece), off the event loop (sha256 of a MiB: ~2 ms)."""

    @abc.abstractmethod
    async def _sync(self) -> None: ...

    def release(self) -> None:
        """Let go of what the part holds open (a PUT that failed, was refused or was cancelled); its bytes are
        deleted with ``Blobs.delete``."""
        self._buffer, self._buffered = [], 0


class Blobs(abc.ABC):
    @abc.abstractmethod
    def part(self, part_id: str) -> Part: ...

    @abc.abstractmethod
    def read(self, part_id: str) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def delete(self, part_id: str) -> None:
        """Delete a part's bytes (nothing happens if there are none)."""


# ---------------------------------------------------------------------------------------------
# SQLite: files


class _FilePart(Part):
    def __init__(self, blobs: FileBlobs, part_id: str) -> None:
        super().__init__(part_id)
        self._blobs = blobs
        self._fd: int | None = None

    def _put_sync(self, data: bytes) -> None:
        self._hash.update(data)
        if self._fd is None:
            self._fd = self._blobs.create(self.part_id)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def _put(self, data: bytes) -> None:
        await asyncio.to_thread(self._put_sync, data)

    def _sync_now(self) -> None:
        if self._fd is None:  # an empty body: an empty file
            self._fd = self._blobs.create(self.part_id)
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._blobs.sync_folder()

    async def _sync(self) -> None:
        await asyncio.to_thread(self._sync_now)

    def release(self) -> None:
        super().release()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class FileBlobs(Blobs):
    """Parts as files of one folder (0700), each 0600."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._made = False

    def _path(self, part_id: str) -> str:
        return os.path.join(self.folder, _checked(part_id))

    def _folder(self) -> None:
        if self._made:
            return
        from axme_cli.config.files import make_private

        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        make_private(self.folder, 0o700)
        self._made = True

    def create(self, part_id: str) -> int:
        self._folder()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        return os.open(self._path(part_id), flags, 0o600)

    def sync_folder(self) -> None:
        """The new file's name is durable too (a file fsynced in a folder that was not can vanish in a crash)."""
        fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def unlink(self, part_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(part_id))

    def part(self, part_id: str) -> Part:
        return _FilePart(self, part_id)

    async def read(self, part_id: str) -> AsyncIterator[bytes]:
        path = self._path(part_id)
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            while True:
                data = await asyncio.to_thread(os.read, fd, READ_CHUNK)
                if not data:
                    return
                yield data
        finally:
            os.close(fd)

    async def delete(self, part_id: str) -> None:
        await asyncio.to_thread(self.unlink, part_id)


# ---------------------------------------------------------------------------------------------
# PostgreSQL: rows


class _RowPart(Part):
    def __init__(self, store: Store, part_id: str) -> None:
        super().__init__(part_id)
        self._store = store
        self._n = 0

    async def _put(self, data: bytes) -> None:
        await asyncio.to_thread(self._hash.update, data)
        n, part_id = self._n, self.part_id
        await self._store.write(lambda tx: tx.insert_media_chunk(part_id, n, data))
        self._n += 1

    async def _sync(self) -> None:
        """Each chunk was committed when it was written."""


async def _delete_rows(store: Store, part_id: str) -> None:
    def op(tx: Tx) -> None:
        tx.delete_media_chunks(part_id)

    await store.write(op)


class DbBlobs(Blobs):
    def __init__(self, store: Store) -> None:
        self._store = store

    def part(self, part_id: str) -> Part:
        return _RowPart(self._store, part_id)

    async def read(self, part_id: str) -> AsyncIterator[bytes]:
        n = 0
        while True:
            data = await self._store.media_chunk(_checked(part_id), n)
            if data is None:
                return
            yield data
            n += 1

    async def delete(self, part_id: str) -> None:
        await _delete_rows(self._store, _checked(part_id))


def blobs_for(store: Store) -> Blobs:
    """Files beside a SQLite database (``<database>.media``), rows of a PostgreSQL one."""
    if store.kind == "sqlite":
        return FileBlobs(store.location + ".media")
    return DbBlobs(store)


def new_part_id() -> str:
    return os.urandom(16).hex()

