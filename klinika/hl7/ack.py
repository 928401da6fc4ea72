"""Original-mode acknowledgments: MSH, MSA (AA/AE/AR, the message's MSH-10 echoed) and,
for errors, ERR with the code of table 0357, the field in error and a text.

References
----------
HL7 v2.5.1 §2.9.2 (original mode), §2.14.9 (MSA), §2.14.5 (ERR), table 0008 and 0357.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os

from klinika.hl7.messages import ERROR_TEXT, AckCode, Header

_COUNTER = itertools.count(1)


def _control_id() -> str:
    """A message control id of our own (MSH-10 of the ACK): unique per process and start."""
    return f"K{os.getpid():x}{int(dt.datetime.now(dt.UTC).timestamp()):x}{next(_COUNTER)}"[:20]


def _clean(text: str, header: Header) -> str:
    """Text without the message's delimiters (an ERR text must not split fields)."""
    for char in {header.field_separator, *header.encoding_characters, "\r", "\n"}:
        text = text.replace(char, " ")
    return text[:200]


def acknowledgment(
    header: Header,
    code: AckCode,
    *,
    application: str,
    text: str = "",
    error: int | None = None,
    location: str = "",
) -> str:
    """The ACK of a message with ``header``: sender and receiver swapped, the trigger event
    and version kept, MSA-2 the message's control id; ERR when ``error`` is given."""
    sep = header.field_separator or "|"
    comp = (header.encoding_characters or "^~\\&")[0]
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = [
        "MSH",
        header.encoding_characters or "^~\\&",
        application,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        now,
        "",
        comp.join(("ACK", header.trigger_event, "ACK")) if header.trigger_event else "ACK",
        _control_id(),
        header.processing_id or "P",
        header.version or "2.5",
    ]
    if header.charset:
        msh += ["", "", "", "", "", header.charset]
    segments = [sep.join(msh), sep.join(["MSA", code, header.control_id, _clean(text, header)])]
    if error is not None:
        where = comp.join(location.split("^")) if location else ""
        condition = comp.join((str(error), ERROR_TEXT.get(error, ""), "HL70357"))
        severity = "E"
        segments.append(
            sep.join(["ERR", "", where, condition, severity, "", "", "", _clean(text, header)])
        )
    return "\r".join(segments)
