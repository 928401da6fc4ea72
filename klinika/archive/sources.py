"""Where instances come from: files, folders and ZIP archives, read one at a time."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def iter_sources(paths: Iterable[Path]) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, reader) for every file under the paths; ZIP members are read from the archive."""
    for path in paths:
        if path.is_dir():
            yield from iter_sources(sorted(p for p in path.rglob("*") if p.is_file()))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        yield f"{path}!{info.filename}", _zip_reader(path, info.filename)
        elif path.is_file():
            yield str(path), path.read_bytes
        else:
            raise FileNotFoundError(f"{path} does not exist")


def _zip_reader(path: Path, member: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)

    return read
