"""Export of audit events as CSV or JSON, streamed row by row."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from klinika.audit.chain import HASHED_FIELDS
from klinika.audit.trail import AuditEvent

COLUMNS = [*HASHED_FIELDS, "hash"]
#: Cells starting with these are formulas to a spreadsheet (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A value as a CSV cell a spreadsheet will not run: a text starting with a formula
    character (or with the quote itself, so the rule can be undone) gets a leading ``'``.
    To recompute a hash, drop one leading ``'`` from a cell that has it."""
    text = "" if value is None else str(value)
    if text.startswith((*FORMULA_STARTS, "'")):
        return "'" + text
    return text


def to_csv(events: Iterable[AuditEvent]) -> Iterator[str]:
    """A header line, then one line per event; ``details`` stays the stored JSON text, so a
    reader who holds the audit key can recompute each hash from the file alone (after undoing
    :func:`csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield flush()
    for event in events:
        writer.writerow([csv_cell(getattr(event, c)) for c in COLUMNS])
        yield flush()


def to_json(events: Iterable[AuditEvent]) -> Iterator[str]:
    """A JSON array of event objects (``details`` decoded)."""
    yield "["
    for index, event in enumerate(events):
        yield ("," if index else "") + json.dumps(event.as_dict(), ensure_ascii=False)
    yield "]"
