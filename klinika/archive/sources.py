"""Where instances come from: files, folders and ZIP archives, read one at a time.

The command-line import and the upload page both read their input here, so a file that is too
large or a ZIP member that cannot be read (damaged, encrypted, odd compression) becomes a
rejection with its reason, and the other files go on.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from klinika.archive.records import StoreOutcome, StoreStatus
from klinika.errors import RejectReason, RequestTooLarge

if TYPE_CHECKING:
    from klinika.archive.service import Archive

#: An instance's bytes, or why they could not be read.
Item = bytes | StoreOutcome
#: ``Archive.store`` takes an instance as bytes: a larger file or member is refused, not read
#: (a ZIP member's declared size is checked first, and zipfile stops reading at that size).
MAX_INSTANCE_BYTES = 1024 * 1024 * 1024
#: Members larger than this are checked for their compression ratio (small files may
#: compress very well without being a threat).
_RATIO_FLOOR = 1024 * 1024


@dataclass(frozen=True)
class ImportLimits:
    """What one file or ZIP may cost (the web edge builds these from the settings; the CLI
    import keeps the defaults). A ZIP over a limit is refused before any member is read, so
    a small ZIP of gigabytes of zeros costs nothing (OWASP: decompression bombs)."""

    max_instance_bytes: int = MAX_INSTANCE_BYTES
    zip_max_members: int = 100_000
    zip_max_total_bytes: int = 16 * 1024**3
    zip_max_ratio: int = 200


DEFAULT_LIMITS = ImportLimits()
#: What reading a damaged, encrypted or oddly compressed ZIP member raises.
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
)


def too_large(size: int, limit: int = MAX_INSTANCE_BYTES) -> StoreOutcome:
    return StoreOutcome(
        StoreStatus.REJECTED,
        reason=RejectReason.TOO_LARGE,
        message=f"{size} bytes is more than the {limit} bytes a file may have here",
    )


def check_zip(bundle: zipfile.ZipFile, limits: ImportLimits = DEFAULT_LIMITS) -> None:
    """Refuse a ZIP with too many members or too many bytes once unpacked (declared sizes:
    zipfile never inflates a member past its declared size).

    Raises
    ------
    RequestTooLarge
        The message names the limit and its setting.
    """
    members = [info for info in bundle.infolist() if not info.is_dir()]
    if len(members) > limits.zip_max_members:
        raise RequestTooLarge(
            f"the ZIP has {len(members)} files; at most {limits.zip_max_members} are accepted "
            "(setting zip_max_members)"
        )
    total = sum(info.file_size for info in members)
    if total > limits.zip_max_total_bytes:
        raise RequestTooLarge(
            f"the ZIP unpacks to {total} bytes; at most {limits.zip_max_total_bytes} are "
            "accepted (setting zip_max_total_bytes)"
        )


def read_member(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ImportLimits = DEFAULT_LIMITS
) -> Item:
    """A member's bytes, or why it cannot be read (too large, compressed suspiciously well,
    encrypted, corrupt)."""
    if info.file_size > limits.max_instance_bytes:
        return too_large(info.file_size, limits.max_instance_bytes)
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FLOOR and ratio > limits.zip_max_ratio:
        return StoreOutcome(
            StoreStatus.REJECTED,
            reason=RejectReason.TOO_LARGE,
            message=f"ZIP member compressed {ratio:.0f}:1, more than the "
            f"{limits.zip_max_ratio}:1 accepted (setting zip_max_ratio)",
        )
    try:
        return bundle.read(info)
    except _UNREADABLE as exc:
        return StoreOutcome(
            StoreStatus.REJECTED, reason=RejectReason.UNREADABLE, message=f"ZIP member: {exc}"
        )


def zip_members(
    bundle: zipfile.ZipFile, limits: ImportLimits = DEFAULT_LIMITS
) -> Iterator[tuple[str, Item]]:
    """(name, bytes or rejection) of every member but folders, read when reached; the ZIP
    as a whole is checked first (:func:`check_zip`)."""
    check_zip(bundle, limits)
    for info in bundle.infolist():
        if not info.is_dir():
            yield info.filename, read_member(bundle, info, limits)


def read_file(path: Path, limits: ImportLimits = DEFAULT_LIMITS) -> Item:
    size = path.stat().st_size
    if size > limits.max_instance_bytes:
        return too_large(size, limits.max_instance_bytes)
    return path.read_bytes()


def iter_sources(paths: Iterable[Path]) -> Iterator[tuple[str, Callable[[], Item]]]:
    """(name, reader) for every file under the paths; ZIP members are read from the archive."""
    for path in paths:
        if path.is_dir():
            yield from iter_sources(sorted(p for p in path.rglob("*") if p.is_file()))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                check_zip(archive)
                for info in archive.infolist():
                    if not info.is_dir():
                        yield f"{path}!{info.filename}", _zip_reader(path, info)
        elif path.is_file():
            yield str(path), lambda path=path: read_file(path)  # type: ignore[misc]
        else:
            raise FileNotFoundError(f"{path} does not exist")


def _zip_reader(path: Path, info: zipfile.ZipInfo) -> Callable[[], Item]:
    def read() -> Item:
        with zipfile.ZipFile(path) as bundle:
            return read_member(bundle, info)

    return read


def store_items(archive: Archive, items: Sequence[Item]) -> list[StoreOutcome]:
    """Store the readable items in one batch through the one ingest path; an outcome for
    every item, in order (rejections made while reading are kept as they are). Files people
    bring may be bare data sets (no preamble, no File Meta Information): they are read."""
    readable = [item for item in items if isinstance(item, bytes)]
    stored = iter(archive.store_many(readable, bare_datasets=True) if readable else [])
    return [next(stored) if isinstance(item, bytes) else item for item in items]
