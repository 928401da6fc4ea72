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
from pathlib import Path
from typing import TYPE_CHECKING

from klinika.archive.records import StoreOutcome

if TYPE_CHECKING:
    from klinika.archive.service import Archive

#: An instance's bytes, or why they could not be read.
Item = bytes | StoreOutcome
#: ``Archive.store`` takes an instance as bytes: a larger file or member is refused, not read
#: (a ZIP member's declared size is checked first, and zipfile stops reading at that size).
MAX_INSTANCE_BYTES = 1024 * 1024 * 1024
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


def too_large(size: int) -> StoreOutcome:
    return StoreOutcome(
        "rejected",
        reason="too-large",
        message=f"{size} bytes is more than the {MAX_INSTANCE_BYTES} bytes a file may have here",
    )


def read_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> Item:
    """A member's bytes, or why it cannot be read (too large, encrypted, corrupt)."""
    if info.file_size > MAX_INSTANCE_BYTES:
        return too_large(info.file_size)
    try:
        return bundle.read(info)
    except _UNREADABLE as exc:
        return StoreOutcome("rejected", reason="unreadable", message=f"ZIP member: {exc}")


def zip_members(bundle: zipfile.ZipFile) -> Iterator[tuple[str, Item]]:
    """(name, bytes or rejection) of every member but folders, read when reached."""
    for info in bundle.infolist():
        if not info.is_dir():
            yield info.filename, read_member(bundle, info)


def read_file(path: Path) -> Item:
    size = path.stat().st_size
    return too_large(size) if size > MAX_INSTANCE_BYTES else path.read_bytes()


def iter_sources(paths: Iterable[Path]) -> Iterator[tuple[str, Callable[[], Item]]]:
    """(name, reader) for every file under the paths; ZIP members are read from the archive."""
    for path in paths:
        if path.is_dir():
            yield from iter_sources(sorted(p for p in path.rglob("*") if p.is_file()))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
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
    every item, in order (rejections made while reading are kept as they are)."""
    readable = [item for item in items if isinstance(item, bytes)]
    stored = iter(archive.store_many(readable) if readable else [])
    return [next(stored) if isinstance(item, bytes) else item for item in items]
