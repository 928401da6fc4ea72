"""Transcoded instances kept for the next WADO-RS request (a viewer asks for the same frames
again, or frame by frame): a bounded in-memory LRU per process.

The key is the instance's blob key, its content address, and the target transfer syntax: an
instance whose bytes change has another blob key, so nothing is ever stale and nothing needs
invalidating. Entries are the whole transcoded Part-10 instance; the frames of a compressed
target are split from it (:func:`klinika.dicom.transcode.frames_of`)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from prometheus_client import Counter

from klinika.archive import InstanceRecord
from klinika.dicom.transcode import transcode


class TranscodeCache:
    """At most ``max_bytes`` of transcoded instances, least recently used dropped first;
    each call counts ``encoded`` or ``cached`` on ``counter``."""

    def __init__(self, max_bytes: int, counter: Counter | None = None) -> None:
        self.max_bytes = max_bytes
        self.counter = counter
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def transcode(self, record: InstanceRecord, part10: bytes, target: str) -> bytes:
        """``part10`` (the stored bytes of ``record``) in ``target``, encoded at most once
        while it stays in the cache. Raises what :func:`transcode` raises."""
        key = (record.blob_key, target)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        if found is not None:
            self._count("cached")
            return found
        result = transcode(part10, target)
        self._count("encoded")
        if len(result) <= self.max_bytes:
            with self._lock:
                if key not in self._entries:
                    self._entries[key] = result
                    self._size += len(result)
                while self._size > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._size -= len(dropped)
        return result

    def _count(self, outcome: str) -> None:
        if self.counter is not None:
            self.counter.labels(outcome=outcome).inc()
