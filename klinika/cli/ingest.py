"""Feeding files, folders and ZIP archives to the one ingest path, with progress."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from klinika.archive import Archive, StoreOutcome, StoreStatus
from klinika.archive.sources import Item, iter_sources, store_items


@dataclass
class ImportSummary:
    """Counts by outcome, and the rejected items with their reasons."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[tuple[str, str]] = field(default_factory=list)


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

    def run(batch: list[tuple[str, Callable[[], Item]]]) -> list[tuple[str, StoreOutcome]]:
        outcomes = store_items(archive, [reader() for _, reader in batch])
        return [(name, outcome) for (name, _), outcome in zip(batch, outcomes, strict=True)]

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        batches = iter(lambda: list(islice(sources, batch_size)), [])
        for results in pool.map(run, batches):
            for name, outcome in results:
                summary.counts[outcome.status] += 1
                if outcome.status == StoreStatus.REJECTED:
                    summary.rejected.append((name, outcome.message or outcome.reason or ""))
            if on_progress:
                on_progress(len(results))
    return summary
