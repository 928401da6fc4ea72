"""Feeding files, folders and ZIP archives to the one ingest path, with progress."""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from klinika.archive import Archive, StoreOutcome


@dataclass
class ImportSummary:
    """Counts by outcome, and the rejected items with their reasons."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[tuple[str, str]] = field(default_factory=list)


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


def import_paths(
    archive: Archive,
    paths: Iterable[Path],
    *,
    jobs: int = 2,
    batch_size: int = 16,
    on_progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Store every file found under ``paths``; batches run on ``jobs`` threads."""
    summary = ImportSummary()
    sources = iter_sources(paths)

    def run(batch: list[tuple[str, Callable[[], bytes]]]) -> list[tuple[str, StoreOutcome]]:
        outcomes = archive.store_many(reader() for _, reader in batch)
        return [(name, outcome) for (name, _), outcome in zip(batch, outcomes, strict=True)]

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        batches = iter(lambda: list(islice(sources, batch_size)), [])
        for results in pool.map(run, batches):
            for name, outcome in results:
                summary.counts[outcome.status] += 1
                if outcome.status == "rejected":
                    summary.rejected.append((name, outcome.message or outcome.reason or ""))
            if on_progress:
                on_progress(len(results))
    return summary
