"""A copy of the trail leaves the machine: every event as an IHE ATNA audit message (PS3.15
A.5.1) in an RFC 5424 syslog datagram, and every checkpoint too."""

from __future__ import annotations

import base64
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest

from klinika.audit import Actor
from klinika.audit.checkpoints import checkpoint_mac
from tests.auth.conftest import Installation

#: RFC 5424 6: HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID,
#: then SP STRUCTURED-DATA ("-" for none) and SP MSG (a UTF-8 MSG starts with the BOM).
RFC5424 = re.compile(
    rb"<(?P<pri>\d{1,3})>1 (?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z) "
    rb"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    rb"(?P<msgid>[!-~]{1,32}) - \xef\xbb\xbf(?P<msg>.*)\Z",
    re.DOTALL,
)
CODED = ("csd-code", "codeSystemName", "originalText")


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def received(sock: socket.socket) -> Iterator[dict[str, bytes]]:
    while True:
        try:
            datagram = sock.recv(65535)
        except TimeoutError:
            return
        match = RFC5424.match(datagram)
        assert match, datagram[:200]
        yield match.groupdict()


def next_message(sock: socket.socket, msgid: bytes) -> dict[str, bytes]:
    for message in received(sock):
        if message["msgid"] == msgid:
            return message
    raise AssertionError(f"no {msgid!r} message arrived")


def assert_coded(element: ET.Element | None) -> None:
    assert element is not None
    assert all(element.get(name) for name in CODED), element.attrib


def assert_audit_message(root: ET.Element) -> None:
    """The structure PS3.15 A.5.1 requires: one EventIdentification (EventDateTime,
    EventOutcomeIndicator, a coded EventID), at least one ActiveParticipant (UserID,
    UserIsRequestor), one AuditSourceIdentification (AuditSourceID), then any number of
    ParticipantObjectIdentification (ParticipantObjectID, a coded ParticipantObjectIDTypeCode),
    in that order."""
    assert root.tag == "AuditMessage"
    order = [child.tag for child in root]
    expected = ["EventIdentification", "ActiveParticipant", "AuditSourceIdentification"]
    collapsed = [tag for i, tag in enumerate(order) if i == 0 or order[i - 1] != tag]
    assert collapsed[:3] == expected and set(collapsed[3:]) <= {
        "ParticipantObjectIdentification"
    }, order
    event = root.find("EventIdentification")
    assert event is not None and event.get("EventDateTime")
    assert event.get("EventOutcomeIndicator") in {"0", "4", "8", "12"}
    assert event.get("EventActionCode", "E") in {"C", "R", "U", "D", "E"}
    assert_coded(event.find("EventID"))
    for participant in root.findall("ActiveParticipant"):
        assert participant.get("UserID")
        assert participant.get("UserIsRequestor") in {"true", "false"}
        for role in participant.findall("RoleIDCode"):
            assert_coded(role)
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID")
    for item in root.findall("ParticipantObjectIdentification"):
        assert item.get("ParticipantObjectID")
        assert_coded(item.find("ParticipantObjectIDTypeCode"))


def test_events_and_checkpoints_arrive_as_atna_messages_over_udp(
    install: Callable[..., Installation], receiver: socket.socket
) -> None:
    port = receiver.getsockname()[1]
    site = install(audit_syslog=f"udp://127.0.0.1:{port}", ae_title="KLINIKA_TEST")
    event = site.runtime.audit.record(
        Actor("doctor", "doctor"),
        "dicom:export",
        "success",
        study_uid="1.2.826.0.1.3680043.10.1391.7",
        patient_id="PAT-007",
        source="10.1.2.3",
    )
    message = next_message(receiver, b"IHE+RFC-3881")
    while b"PAT-007" not in message["msg"]:  # the users' events of the installation came first
        message = next_message(receiver, b"IHE+RFC-3881")
    assert int(message["pri"]) == 10 * 8 + 5  # facility authpriv, severity notice
    assert message["app"] == b"klinika"
    root = ET.fromstring(message["msg"])
    assert_audit_message(root)
    event_id = root.find("EventIdentification/EventID")
    assert event_id is not None and event_id.get("csd-code") == "110106"  # Export
    assert root.find("EventIdentification").get("EventOutcomeIndicator") == "0"  # type: ignore[union-attr]
    user = root.find("ActiveParticipant")
    assert user is not None and user.get("UserID") == "doctor"
    assert user.get("UserIsRequestor") == "true" and user.get("NetworkAccessPointID") == "10.1.2.3"
    assert root.find("AuditSourceIdentification").get("AuditSourceID") == "KLINIKA_TEST"  # type: ignore[union-attr]
    objects = {
        o.get("ParticipantObjectID"): o for o in root.findall("ParticipantObjectIdentification")
    }
    patient, study = objects["PAT-007"], objects["1.2.826.0.1.3680043.10.1391.7"]
    assert patient.get("ParticipantObjectTypeCode") == "1"  # person
    assert patient.get("ParticipantObjectTypeCodeRole") == "1"  # patient
    assert patient.find("ParticipantObjectIDTypeCode").get("csd-code") == "2"  # type: ignore[union-attr]
    assert study.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"  # type: ignore[union-attr]
    details = {
        d.get("type"): base64.b64decode(d.get("value", "")).decode()
        for d in study.findall("ParticipantObjectDetail")
    }
    assert details == {"klinika-seq": str(event.seq), "klinika-hash": event.hash}

    site.runtime.audit.record(Actor("doctor", "doctor"), "auth:login", "failure")
    failed = ET.fromstring(next_message(receiver, b"IHE+RFC-3881")["msg"])
    assert_audit_message(failed)
    assert failed.find("EventIdentification/EventTypeCode").get("csd-code") == "110122"  # type: ignore[union-attr]
    assert failed.find("EventIdentification").get("EventOutcomeIndicator") == "4"  # type: ignore[union-attr]

    anchor = site.runtime.audit.checkpoint()
    assert anchor is not None
    line = next_message(receiver, b"KLINIKA-CHECKPOINT")["msg"].decode()
    assert f'"seq":{anchor.seq}' in line and anchor.hash in line
    key = bytes.fromhex(site.settings.audit_key_path.read_text().strip())
    stamp = re.search(r'"at":"([^"]+)"', line)
    assert stamp and checkpoint_mac(key, anchor.seq, anchor.hash, stamp.group(1)) in line
