"""Single-part answers and HTTP byte ranges for WADO-RS bulk data, frames and instances.

A client that asks for a bare media type (``Accept: application/octet-stream`` for one frame
or one bulk data element, ``Accept: application/dicom`` for one instance) gets the payload
as the body itself (PS3.18 §8.7.3.2, single part payloads), which can then be read by byte
range: one range is answered ``206`` with ``Content-Range``, a range past the end ``416``.
Several ranges in one request are not served: the whole payload comes back with ``200``, as
RFC 9110 §14.2 allows a server to ignore Range.

References
----------
RFC 9110 §14 (range requests: Range, Content-Range, Accept-Ranges, 206, 416),
PS3.18 §8.7.3 (single part and multipart payloads).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from klinika.dicomweb.negotiation import parse_accept

#: Answered by every single-part resource (RFC 9110 §14.3).
ACCEPT_RANGES = {"Accept-Ranges": "bytes"}


def bare_media_type(accept: str | None, offered: tuple[str, ...]) -> str | None:
    """The media type of a single-part answer when the client's first acceptable choice is
    one of ``offered`` asked for bare (not inside ``multipart/related``), else None."""
    for media in parse_accept(accept):
        if media.media_type in offered:
            return media.media_type
        if media.media_type in ("multipart/related", "*/*", "multipart/*"):
            return None
    return None


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (inclusive) of a single ``bytes`` range within ``size`` bytes, or
    None to send everything (no Range, one we ignore: malformed, another unit, several).

    Raises
    ------
    RangeNotSatisfiable
        When the range starts past the end, or asks for the last 0 bytes.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid: ignored (RFC 9110 §14.1.1)
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, end


class RangeNotSatisfiable(Exception):
    """A Range that selects no byte of the representation (RFC 9110 §15.5.17)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range selects nothing of the {size} bytes")
        self.size = size


def single_part(
    request: Request, payload: bytes, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    """The payload as the body, ``206`` for one satisfiable byte range, ``416`` for one past
    the end; ``Accept-Ranges: bytes`` either way."""
    out = {**(headers or {}), **ACCEPT_RANGES}
    try:
        selected = byte_range(request.headers.get("range"), len(payload))
    except RangeNotSatisfiable as exc:
        out["Content-Range"] = f"bytes */{exc.size}"
        return Response(status_code=416, headers=out)
    if selected is None:
        return Response(payload, media_type=media_type, headers=out)
    start, end = selected
    out["Content-Range"] = f"bytes {start}-{end}/{len(payload)}"
    return Response(payload[start : end + 1], status_code=206, media_type=media_type, headers=out)
