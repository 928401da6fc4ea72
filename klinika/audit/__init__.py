"""The audit trail: append-only, hash-chained events; verification; queries and export.

Owns :class:`AuditTrail` (record, verify, search, export), :class:`Actor` and the
``audit_events`` / ``audit_chain`` tables. May import: db, errors. The HTTP routes in
:mod:`klinika.web.admin` receive their permission guard from the caller, so this room never
imports ``auth``.

Every event stores the hash of the previous one and its own SHA-256 over a canonical JSON of
its fields (:func:`klinika.audit.chain.event_hash`). ``audit_chain`` holds the head (last
sequence number and hash), so deleting the newest rows is detected too. The chain proves the
trail was not edited by someone who could not also rewrite every later hash; anchoring the head
elsewhere (backups, syslog) closes that gap.
"""

from klinika.audit.chain import GENESIS, canonical_json, event_hash
from klinika.audit.trail import Actor, AuditEvent, AuditFilter, AuditTrail, VerifyResult

__all__ = [
    "GENESIS",
    "Actor",
    "AuditEvent",
    "AuditFilter",
    "AuditTrail",
    "VerifyResult",
    "canonical_json",
    "event_hash",
]
