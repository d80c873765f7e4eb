"""`axme media upload|get`: files for intents and inbox messages (create-upload, PUT, finalize; read, download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

app = typer.Typer(help="Upload files to the runtime and read them back (attach them to intents with their id).",
                  no_args_is_help=True, rich_markup_mode=None)

_PIECE = 256 * 1024  # bytes read from the file at a time while it is sent


def _file_to_send(path: Path) -> int:
    """The size of a regular, readable, non-empty file (a usage error naming it otherwise)."""
    import os
    import stat

    from axme_cli.errors import UsageError

    try:
        info = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", fix="check the path") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path}: not a regular file", fix="name a file, not a folder or a device")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: cannot be read (permission denied)", fix="check the file's permissions")
    if info.st_size == 0:
        raise UsageError(f"{path}: the file is empty", fix="the runtime takes files of 1 byte or more")
    return info.st_size


def _checked(value: str, check: Any, what: str, fix: str) -> str:
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    try:
        return str(check(value))
    except ValueError:
        raise UsageError(f"{what} {shown(value)} is not valid", fix=fix) from None


def _pieces(handle: IO[bytes], digest: Any) -> Iterator[bytes]:
    while True:
        piece = handle.read(_PIECE)
        if not piece:
            return
        digest.update(piece)
        yield piece


@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(help="The file to upload.", show_default=False)],
    mime_type: Annotated[str | None, typer.Option("--mime-type", help="Its MIME type [default: guessed from the "
                                                  "name, else application/octet-stream].", show_default=False)] = None,
    name: Annotated[str | None, typer.Option("--name", help="The file name others see [default: the file's].",
                                             show_default=False)] = None,
    owner_agent: Annotated[str | None, typer.Option("--owner-agent", help="Whose upload (the admin key only) "
                                                    "[default: the caller].", show_default=False)] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Upload a file (create-upload, PUT, finalize with its size and sha256) and print its upload id."""
    import hashlib
    import mimetypes

    from axme_cli.cli.common import client, output
    from axme_cli.protocol import media as wire

    size = _file_to_send(file)
    if size > wire.MAX_BYTES:
        from axme_cli.errors import UsageError

        raise UsageError(f"{file}: {size} bytes is more than the runtime takes ({wire.MAX_BYTES})")
    filename = _checked(name or file.name, wire.check_filename, "--name" if name else f"{file}: the name",
                        "give a name without control characters or slashes with --name")
    guessed = mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    kind = _checked(guessed, wire.check_mime_type, "--mime-type", "give a type such as application/pdf")
    body: dict[str, Any] = {"filename": filename, "mime_type": kind, "size_bytes": size}
    if owner_agent:
        body["owner_agent"] = owner_agent
    digest = hashlib.sha256()
    with client(base_url, api_key, context) as c:
        created = c.create_upload(body)
        with file.open("rb") as handle:
            c.put_upload(created["upload_url"], _pieces(handle, digest), size)
        done = c.finalize_upload({"upload_id": created["upload_id"], "size_bytes": size,
                                  "sha256": digest.hexdigest()})
    # the id alone on the last line, for `| tail -1` (--json for more)
    output().result(done, [f"✓ Uploaded {filename} ({size} bytes, {kind}, sha256 {done['sha256']}); its id:",
                           done["upload_id"]])


@app.command("get")
def get(
    upload_id: Annotated[str, typer.Argument(help="The upload id.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Save the file's bytes here (0600; replaced if "
                                             "it exists).", show_default=False)] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Show an upload; with -o FILE also download its bytes (checked against its sha256)."""
    import uuid

    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values

    ident = _checked(upload_id, uuid.UUID, "upload id", "copy the id `axme media upload` printed")
    if out is not None and out.is_dir():
        from axme_cli.errors import UsageError

        raise UsageError(f"-o {out}: is a folder", fix="name the file to write, e.g. -o ./report.pdf")
    with client(base_url, api_key, context) as c:
        upload = c.get_upload(ident)["upload"]
        saved = _save(c.download_upload(ident), out, upload.get("sha256")) if out is not None else None
    answer: dict[str, Any] = {"ok": True, "upload": upload}
    if saved is not None:
        answer["saved_to"], answer["bytes"] = str(out), saved

    def text() -> None:
        key_values([("Upload:", upload["upload_id"]), ("File:", upload["filename"]), ("Type:", upload["mime_type"]),
                    ("Size:", f"{upload['size_bytes']} bytes"), ("Status:", upload["status"]),
                    ("Owner:", upload["owner_agent"]), ("sha256:", upload["sha256"] or "-")])
        if saved is not None:
            from axme_cli.render.console import out as say

            say(f"✓ Saved {saved} bytes to {out}.")

    output().result(answer, text)


def _save(chunks: Iterator[bytes], target: Path, sha256: str | None) -> int:
    """Write the download beside ``target`` (0600), check its sha256, then put it in place."""
    import contextlib
    import hashlib
    import os
    import tempfile

    from axme_cli.errors import CliError, UsageError

    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=".axme-download-", dir=folder)  # 0600
    except OSError as exc:
        raise UsageError(f"-o {target}: cannot write there ({exc.strerror})") from None
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
        if sha256 and digest.hexdigest() != sha256:
            raise CliError(f"the download's sha256 is {digest.hexdigest()}, not the upload's {sha256}",
                           fix="download it again", code="sha256_mismatch")
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return size
