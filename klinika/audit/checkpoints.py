"""Signed checkpoints of the chain's head, kept outside the database.

One JSON line per checkpoint (``seq``, ``hash``, ``at``, ``key_id``, ``mac``) appended to a
file in the secrets folder; ``mac`` is HMAC-SHA256 under the audit key, so a line cannot be
made or changed without the key. A checkpoint says "the trail had at least ``seq`` events and
event ``seq`` had this hash": a trail cut or rewritten below it no longer matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from klinika.audit.chain import canonical_json, key_id

_DOMAIN = b"klinika audit checkpoint\n"


@dataclass(frozen=True)
class Anchor:
    """A head of the chain recorded somewhere else: ``source`` says where (a checkpoint line,
    a backup manifest), ``seq``/``hash`` what it saw."""

    source: str
    seq: int
    hash: str


def checkpoint_mac(key: bytes, seq: int, head_hash: str, at: str) -> str:
    """The signature of one checkpoint."""
    fields = {"seq": seq, "hash": head_hash, "at": at, "key_id": key_id(key)}
    text = _DOMAIN + canonical_json(fields).encode("utf-8")
    return hmac.new(key, text, hashlib.sha256).hexdigest()


class CheckpointLog:
    """The append-only checkpoint file of one installation (several processes may append:
    each line is one ``write`` on an ``O_APPEND`` descriptor, then fsynced)."""

    def __init__(self, path: Path, key: bytes, older_keys: Sequence[bytes] = ()) -> None:
        self.path = path
        self._key = key
        self._keys = {key_id(k): k for k in (key, *older_keys)}
        self._lock = threading.Lock()

    def append(self, seq: int, head_hash: str, at: str) -> str:
        """Write one signed checkpoint durably and return its line (without the newline)."""
        entry = {
            "seq": seq,
            "hash": head_hash,
            "at": at,
            "key_id": key_id(self._key),
            "mac": checkpoint_mac(self._key, seq, head_hash, at),
        }
        line = canonical_json(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, (line + "\n").encode("utf-8"))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        return line

    def read(self) -> tuple[list[Anchor], list[str]]:
        """The checkpoints whose signature holds, and a problem for every line that does not
        (a forged or edited line is itself a sign of tampering)."""
        anchors: list[Anchor] = []
        problems: list[str] = []
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return anchors, problems
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"checkpoint {self.path.name}:{number}"
            try:
                entry = json.loads(line)
                seq, head_hash, at = int(entry["seq"]), str(entry["hash"]), str(entry["at"])
                mac = str(entry["mac"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"{where} is not a checkpoint line")
                continue
            key = self._keys.get(str(entry.get("key_id", "")))
            if key is None or not hmac.compare_digest(mac, checkpoint_mac(key, seq, head_hash, at)):
                problems.append(f"{where} is not signed with this installation's audit key")
                continue
            anchors.append(Anchor(f"{where} ({at})", seq, head_hash))
        return anchors, problems
