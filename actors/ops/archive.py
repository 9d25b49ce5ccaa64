"""The backup archive: `backup_YYYYMMDD_HHMMSS.tar.gz` holding `manifest.json` first, then the files
it lists with their SHA-256.

Written atomically (a hidden temp file in the same directory, fsync, rename): a crash or a full disk
leaves the previous archives and no half one. Read back with every member checked against the
manifest before anything is restored; a bad, missing or unlisted member is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import msgspec

from actors.core.errors import WorkerSyncError

FORMAT = 1
MANIFEST = "manifest.json"
NAME_RE = re.compile(r"^backup_(\d{8}_\d{6})\.tar\.gz$")
_CHUNK = 1 << 20
#: What a truncated or bit-flipped gzip/tar stream raises while it is read.
_DAMAGED = (OSError, tarfile.TarError, EOFError, zlib.error)


class ArchiveError(WorkerSyncError):
    """An archive is unreadable, incomplete or does not match its manifest."""


class FileEntry(msgspec.Struct, frozen=True, kw_only=True):
    sha256: str
    bytes: int


class AuditSummary(msgspec.Struct, frozen=True, kw_only=True):
    schema: str
    entries: int
    checkpoints: int
    #: Size (entries signed) of the last checkpoint in the archive; 0 when there is none.
    last_checkpoint_size: int


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format: int = FORMAT
    worker_sync_version: str
    created_at: str
    config_sha256: str
    audit: AuditSummary | None = None
    #: Position files (``positions/NAME.offset``) of the streams committed at backup time.
    positions: list[str] = []
    #: Node name -> dump file (``databases/NODE.sql``).
    databases: dict[str, str] = {}
    files: dict[str, FileEntry] = {}


def archive_name(when: dt.datetime) -> str:
    return f"backup_{when.astimezone(dt.UTC):%Y%m%d_%H%M%S}.tar.gz"


def archive_time(name: str) -> dt.datetime | None:
    """The UTC time in a backup archive's name; None for any other name (never touched by retention)."""
    match = NAME_RE.match(name)
    if not match:
        return None
    try:
        return dt.datetime.strptime(match.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def expired(names: Iterable[str], now: dt.datetime, retention_days: int) -> list[str]:
    """Archive names older than ``retention_days`` (0 keeps everything)."""
    if retention_days <= 0:
        return []
    cutoff = now - dt.timedelta(days=retention_days)
    return sorted(name for name in names if (when := archive_time(name)) is not None and when < cutoff)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(staging: Path) -> dict[str, FileEntry]:
    """Every file under ``staging`` (relative POSIX path -> hash and size)."""
    files = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = path.relative_to(staging).as_posix()
        files[rel] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
    return files


def write_archive(staging: Path, manifest: Manifest, output: Path) -> Path:
    """Pack ``manifest`` and the files it lists (found under ``staging``) into ``output``, atomically."""
    if output.exists():
        raise ArchiveError(f"`{output}` already exists; an archive is never overwritten")
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    manifest_path = staging / MANIFEST
    manifest_path.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
    try:
        with open(tmp, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                tar.add(manifest_path, arcname=MANIFEST, recursive=False)
                for rel in manifest.files:
                    tar.add(staging / rel, arcname=rel, recursive=False)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        manifest_path.unlink(missing_ok=True)
    dir_fd = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return output


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name not in ("", ".")


def extract_checked(archive: Path, into: Path) -> Manifest:
    """Extract ``archive`` into the empty directory ``into`` and check every file against the
    manifest. Raises ArchiveError naming the first bad file."""
    try:
        tar = tarfile.open(archive, mode="r:gz")  # noqa: SIM115 - closed by the `with tar` below
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"`{archive}` is not a readable backup archive: {exc}") from None
    with tar:
        try:
            members = tar.getmembers()
        except _DAMAGED as exc:
            raise ArchiveError(f"`{archive}` is damaged (truncated or corrupted): {exc}") from None
        names = [m.name for m in members]
        if MANIFEST not in names:
            raise ArchiveError(f"`{archive}` has no `{MANIFEST}`: not a Worker-Sync backup")
        for member in members:
            if not member.isfile() or not _safe_member(member.name):
                raise ArchiveError(f"`{archive}`: member `{member.name}` is not a plain relative file; refused")
        try:
            tar.extractall(into, filter="data")
        except _DAMAGED as exc:
            raise ArchiveError(f"`{archive}` is damaged (truncated or corrupted): {exc}") from None
    try:
        manifest = msgspec.json.decode((into / MANIFEST).read_bytes(), type=Manifest)
    except msgspec.DecodeError as exc:
        raise ArchiveError(f"`{archive}`: `{MANIFEST}` is not valid: {exc}") from None
    if manifest.format != FORMAT:
        raise ArchiveError(f"`{archive}`: archive format {manifest.format} is not supported (expected {FORMAT})")
    for rel, entry in manifest.files.items():
        path = into / rel
        if rel not in names:
            raise ArchiveError(f"`{archive}`: file `{rel}` listed in the manifest is missing")
        if path.stat().st_size != entry.bytes or sha256_file(path) != entry.sha256:
            raise ArchiveError(f"`{archive}`: file `{rel}` does not match its SHA-256 in the manifest (corrupted)")
    unlisted = sorted(set(names) - set(manifest.files) - {MANIFEST})
    if unlisted:
        raise ArchiveError(f"`{archive}`: file `{unlisted[0]}` is not listed in the manifest; refused")
    return manifest
