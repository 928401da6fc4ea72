"""The hash chain: canonical JSON of an event's fields, and its HMAC-SHA256 under the
installation's audit key (plain SHA-256 for events written before the key existed)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

#: The ``prev_hash`` of the first event.
GENESIS = "0" * 64

#: The action of the event that starts the keyed chain: every event from it on is hashed with
#: HMAC-SHA256 under the audit key; the events before it keep their unkeyed SHA-256.
KEYED_CHAIN_START = "audit:keyed-chain"

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


def event_hash(row: Mapping[str, Any], key: bytes | None = None) -> str:
    """The hash (hex) over the canonical JSON of the hashed fields of ``row``: HMAC-SHA256
    under ``key``, or plain SHA-256 without one (the chain before the key switch)."""
    text = canonical_json({name: row[name] for name in HASHED_FIELDS}).encode("utf-8")
    if key is None:
        return hashlib.sha256(text).hexdigest()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short public name of a key (not the key): which key signed a chain or checkpoint."""
    return hmac.new(key, b"klinika audit key id", hashlib.sha256).hexdigest()[:16]
