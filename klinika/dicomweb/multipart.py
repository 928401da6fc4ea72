"""multipart/related bodies: streaming encoder for WADO-RS, streaming decoder for STOW-RS.

References
----------
RFC 2387 (multipart/related), PS3.18 §8.6.1.2 (DICOMweb multipart payloads).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, NamedTuple

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from klinika.dicomweb.negotiation import parse_accept
from klinika.errors import InvalidQuery, RequestTooLarge, UnsupportedMediaType


def new_boundary() -> str:
    return "klinika-" + secrets.token_hex(12)


def content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """The multipart/related Content-Type header value."""
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def part_pieces(part_type: str, payload: bytes, boundary: str) -> tuple[bytes, bytes, bytes]:
    """One body part as (delimiter and headers, payload, CRLF): the payload is never copied."""
    return f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode(), payload, b"\r\n"


def closing_delimiter(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()


def encode_parts(parts: Iterable[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """Yield a multipart body piece by piece; each part is ``(Content-Type, payload)``."""
    for part_type, payload in parts:
        yield from part_pieces(part_type, payload, boundary)
    yield closing_delimiter(boundary)


class MultipartResponse(Response):
    """A multipart body sent as its pieces, so large payloads are not copied into one buffer."""

    def __init__(
        self, parts: list[tuple[str, bytes]], part_type: str, headers: dict[str, str] | None = None
    ) -> None:
        boundary = new_boundary()
        self.pieces = list(encode_parts(parts, boundary))
        super().__init__(None, media_type=content_type(part_type, boundary), headers=headers)
        self.headers["content-length"] = str(sum(len(p) for p in self.pieces))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        last = len(self.pieces) - 1
        for index, piece in enumerate(self.pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": index < last})


class BodyPart(NamedTuple):
    """One received body part: its media type (lower case, no parameters), its bytes, the
    whole Content-Type header (parameters such as ``transfer-syntax``) and its
    Content-Location (how metadata refers to a bulk data part, PS3.18 §8.6.1.2)."""

    media_type: str
    data: bytes
    content_type: str
    location: str | None


#: A part's bytes stay in memory up to this size, then spill to a temporary file.
SPOOL_BYTES = 8 * 1024 * 1024


class _Part:
    """One body part being received: headers, and its bytes spooled to disk past
    :data:`SPOOL_BYTES`, so a large part is never held twice (chunks + joined) in memory."""

    def __init__(self, max_bytes: int) -> None:
        self.headers: dict[str, str] = {}
        self.size = 0
        self.max_bytes = max_bytes
        self._chunks: list[bytes] = []
        self._spool: IO[bytes] | None = None

    @property
    def too_large(self) -> bool:
        return self.size > self.max_bytes

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.too_large:
            self.discard()
            return
        if self._spool is None and self.size > SPOOL_BYTES:
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by discard)
            for chunk in self._chunks:
                self._spool.write(chunk)
            self._chunks = []
        if self._spool is not None:
            self._spool.write(data)
        else:
            self._chunks.append(data)

    def payload(self) -> bytes:
        if self._spool is None:
            return b"".join(self._chunks)
        self._spool.seek(0)
        data = self._spool.read()
        self.discard()
        return data

    def discard(self) -> None:
        self._chunks = []
        if self._spool is not None:
            self._spool.close()
            self._spool = None


class MultipartReader:
    """Feed a request body in chunks; complete parts come out of :meth:`feed`.

    Raises :class:`InvalidQuery` for a body that is not multipart, is cut short or has a
    boundary longer than ``max_boundary`` (RFC 2046 §5.1.1 allows 70 characters), and
    :class:`RequestTooLarge` as soon as a part grows past ``max_part_bytes`` (what was read of
    it is dropped).
    """

    def __init__(
        self,
        content_type_header: str,
        *,
        max_part_bytes: int = 256 * 1024 * 1024,
        max_boundary: int = 200,
    ) -> None:
        ranges = parse_accept(content_type_header)
        media = ranges[0] if ranges else None
        if media is None or media.media_type != "multipart/related":
            raise UnsupportedMediaType("STOW-RS expects a multipart/related body")
        boundary = media.params.get("boundary")
        if not boundary:
            raise InvalidQuery("the multipart/related Content-Type has no boundary")
        if len(boundary) > max_boundary:
            raise InvalidQuery(
                f"the multipart boundary has {len(boundary)} characters; at most {max_boundary}"
                " are accepted (RFC 2046 allows 70)"
            )
        self.part_type = media.params.get("type", "application/dicom").lower()
        self.max_part_bytes = max_part_bytes
        self._done: list[_Part] = []
        self._current = _Part(max_part_bytes)
        self._field = b""
        self._value = b""
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_part_data": self._data,
                "on_part_end": self._end,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_end": self._finish,
            },
        )

    def _begin(self) -> None:
        self._current = _Part(self.max_part_bytes)

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._current.write(data[start:end])

    def _end(self) -> None:
        self._done.append(self._current)

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]
        if len(self._field) > 1024:
            raise InvalidQuery("a multipart header name is too long")

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        if len(self._value) > 8192:
            raise InvalidQuery("a multipart header value is too long")

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        if len(self._current.headers) >= 64:
            raise InvalidQuery("a multipart part has too many headers")
        self._current.headers[name] = self._value.decode("latin-1").strip()
        self._field = self._value = b""

    def _finish(self) -> None:
        self._ended = True

    def feed(self, chunk: bytes) -> list[BodyPart]:
        """Parse more of the body; return the parts completed so far.

        Raises
        ------
        RequestTooLarge
            A part is larger than ``max_part_bytes``.
        """
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidQuery(f"malformed multipart body: {exc}") from exc
        if self._current.too_large or any(p.too_large for p in self._done):
            self._current.discard()
            for part in self._done:
                part.discard()
            raise RequestTooLarge(
                f"a part is larger than the {self.max_part_bytes} bytes an instance may have "
                "here (setting max_instance_bytes)"
            )
        done, self._done = self._done, []
        return [
            BodyPart(
                p.headers.get("content-type", self.part_type).split(";")[0].strip().lower(),
                p.payload(),
                p.headers.get("content-type", self.part_type),
                p.headers.get("content-location"),
            )
            for p in done
        ]

    def close(self) -> None:
        """Check the body ended with the closing boundary."""
        self._current.discard()
        self._parser.finalize()
        if not self._ended:
            raise InvalidQuery("the multipart body ended before its closing boundary")
