"""The audit trail: append-only, keyed hash chain; checkpoints; verification; queries, export
and syslog (IHE ATNA).

Owns :class:`AuditTrail` (record, verify, search, export), :class:`Actor`, the audit key, the
checkpoint file and the ``audit_events`` / ``audit_chain`` tables. May import: db, errors. The
HTTP routes in :mod:`klinika.web.audit` receive their permission guard from the caller, so
this room never imports ``auth``.

Every event stores the hash of the previous one and its own HMAC-SHA256, under a key kept in
the secrets folder and never in the database, over a canonical JSON of its fields
(:func:`klinika.audit.chain.event_hash`; events older than the key keep a plain SHA-256 up to
the ``audit:keyed-chain`` event). ``audit_chain`` holds the head; signed checkpoints of the
head go to a file beside the key and to syslog, and backups record the head too, so cutting
the newest events or re-chaining without the key is detected by :meth:`AuditTrail.verify`.
"""

from klinika.audit.chain import GENESIS, KEYED_CHAIN_START, canonical_json, event_hash
from klinika.audit.checkpoints import Anchor, CheckpointLog
from klinika.audit.key import load_audit_key, load_audit_keys
from klinika.audit.outcomes import Outcome
from klinika.audit.syslog import SyslogSender
from klinika.audit.trail import (
    Actor,
    AuditEvent,
    AuditFilter,
    AuditTrail,
    VerifyResult,
)

__all__ = [
    "GENESIS",
    "KEYED_CHAIN_START",
    "Actor",
    "Anchor",
    "AuditEvent",
    "AuditFilter",
    "AuditTrail",
    "CheckpointLog",
    "Outcome",
    "SyslogSender",
    "VerifyResult",
    "canonical_json",
    "event_hash",
    "load_audit_key",
    "load_audit_keys",
]
