"""The hash chain: canonical JSON of an event's fields and its SHA-256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: The ``prev_hash`` of the first event.
GENESIS = "0" * 64

#: The columns covered by the hash, in no particular order (the JSON keys are sorted).
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "role",
    "action",
    "outcome",
    "study_uid",
    "series_uid",
    "sop_instance_uid",
    "patient_id",
    "source",
    "details",
    "prev_hash",
)


def canonical_json(fields: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the same fields always give the same text."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of the hashed fields of ``row``."""
    fields = {name: row[name] for name in HASHED_FIELDS}
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
