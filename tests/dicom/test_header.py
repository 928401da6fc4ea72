"""The one validator under threads: each instance keeps its own warnings."""

from __future__ import annotations

import io
import threading
import time

import pydicom

from klinika.dicom.header import parse_instance
from tests.factories import make_instance


def test_warnings_of_threads_parsing_at_once_stay_with_their_own_instance() -> None:
    """``warnings.catch_warnings`` is process-wide: without the one lock, a thread's warnings
    land in another thread's list or vanish (issue 19)."""
    clean = make_instance()
    # MediaStorageSOPInstanceUID differing from SOPInstanceUID: accepted with a warning
    ds = pydicom.dcmread(io.BytesIO(make_instance()))
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    buffer = io.BytesIO()
    ds.save_as(buffer)  # as written: pydicom would set the meta's UID from the data set
    warned = buffer.getvalue()
    assert parse_instance(warned).warnings
    results: dict[str, list[int]] = {"warned": [], "clean": []}

    def parse(kind: str, data: bytes) -> None:
        for _ in range(40):
            results[kind].append(len(parse_instance(data).warnings))

    threads = [
        threading.Thread(target=parse, args=("warned", warned)),
        threading.Thread(target=parse, args=("clean", clean)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["clean"] == [0] * 40
    assert len(set(results["warned"])) == 1 and results["warned"][0] >= 1


def test_a_thread_records_only_the_warnings_it_raised() -> None:
    import warnings

    from klinika.dicom.warned import recorded

    seen: dict[str, list[set[str]]] = {"a": [], "b": []}

    def warn(name: str) -> None:
        for _ in range(200):
            with recorded() as caught:
                for _ in range(3):
                    warnings.warn(name, UserWarning, stacklevel=1)
                    time.sleep(0.0002)  # let the other thread run while this one is inside
            seen[name].append({str(w.message) for w in caught})

    threads = [threading.Thread(target=warn, args=(name,)) for name in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(found == {"a"} for found in seen["a"])
    assert all(found == {"b"} for found in seen["b"])
