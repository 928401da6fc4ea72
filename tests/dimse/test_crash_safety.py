"""Acknowledged means durable over DIMSE too: kill -9 the server in the middle of a C-STORE
stream; every instance that got a success status is indexed and reads back intact."""

from __future__ import annotations

import threading
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage

from tests.conftest import start_server, wait_until
from tests.dimse.test_dcmtk import dataset_part
from tests.durability import (
    assert_acknowledged_instances_read_back,
    assert_index_refers_to_intact_blobs,
)
from tests.factories import make_instance


def test_sigkill_during_c_store_keeps_every_acknowledged_instance(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    study = "1.2.826.0.1.3680043.99.2"
    acknowledged: dict[str, bytes] = {}

    files = tmp_path / "sent"
    files.mkdir()

    def stream() -> None:
        _config.STORE_SEND_CHUNKED_DATASET = True
        ae = AE(ae_title="MODALITY")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", int(server.env["KLINIKA_DIMSE_PORT"]), ae_title="KLINIKA")
        assert assoc.is_established
        n = 0
        while assoc.is_established:
            n += 1
            sop = f"{study}.{n}"
            part10 = make_instance(
                study_uid=study, series_uid=study + ".0", sop_uid=sop, rows=64, columns=64
            )
            path = files / f"{n}.dcm"
            path.write_bytes(part10)
            try:
                answer = assoc.send_c_store(path)  # streamed from the file, as encoded
            except RuntimeError:  # the server died between the check and the request
                return
            if answer.get("Status") == 0x0000:
                # what arrives over DIMSE is the data set; the stored file must hold it as sent
                acknowledged[sop] = dataset_part(part10)
            elif not assoc.is_established:
                return
        assoc.abort()

    sender = threading.Thread(target=stream)
    sender.start()
    # kill once a good number is acknowledged (or the stream ended early: the assert says so)
    wait_until(lambda: len(acknowledged) >= 10 or not sender.is_alive(), 60)
    server.stop(kill=True)  # SIGKILL mid-stream
    sender.join(timeout=30)
    assert len(acknowledged) >= 10, "the server should have acknowledged a good number first"

    assert_index_refers_to_intact_blobs(data_dir)
    restarted = start_server(data_dir)
    try:
        assert_acknowledged_instances_read_back(restarted, study, study + ".0", acknowledged)
    finally:
        restarted.stop()
