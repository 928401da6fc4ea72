"""Accept header parsing and choosing a representation (PS3.18 §8.7, RFC 9110 §12.5.1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from klinika.errors import InvalidQuery, NotAcceptable

#: Longer Accept / Content-Type headers are refused (nginx's default buffer is 8 KB).
MAX_HEADER = 16 * 1024


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` where it is not inside a quoted string (RFC 9110
    §5.6.4), in one pass: linear in the length, whatever the quotes (the former regular
    expression looked ahead to the end at every separator, quadratic time)."""
    items: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:])
    return items


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``type/subtype`` with parameters and a quality."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    def matches(self, media_type: str) -> bool:
        wanted = self.media_type
        if wanted == "*/*":
            return True
        if wanted.endswith("/*"):
            return media_type.split("/")[0] == wanted[:-2]
        return wanted == media_type


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges of an Accept header, best first; quoted or unquoted parameters."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    if len(header) > MAX_HEADER:
        raise InvalidQuery(f"a media type header of more than {MAX_HEADER} characters")
    ranges = []
    for order, item in enumerate(split_outside_quotes(header, ",")):
        parts = [p.strip() for p in split_outside_quotes(item, ";") if p.strip()]
        if not parts:
            continue
        params: dict[str, str] = {}
        quality = 1.0
        for part in parts[1:]:
            key, _, value = part.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            else:
                params[key] = value
        ranges.append((quality, order, MediaRange(parts[0].lower(), params, quality)))
    ranges.sort(key=lambda r: (-r[0], r[1]))
    return [r[2] for r in ranges if r[0] > 0]


def accepts_json(header: str | None) -> None:
    """Check that a DICOM JSON answer is acceptable (QIDO-RS and metadata).

    Raises
    ------
    NotAcceptable
        When the client wants neither ``application/dicom+json`` nor ``application/json``.
    """
    for media in parse_accept(header):
        if media.matches("application/dicom+json") or media.matches("application/json"):
            return
    raise NotAcceptable("only application/dicom+json is offered here")


@dataclass(frozen=True)
class MultipartChoice:
    """The part media type chosen and the transfer syntax asked for (``*`` = as stored)."""

    part_type: str
    transfer_syntax: str | None


def choose_multipart(
    header: str | None, offered: tuple[str, ...], default_part: str
) -> list[MultipartChoice]:
    """Acceptable (part type, transfer syntax) pairs for a multipart answer, best first.

    ``offered`` lists part media types the resource can take; ``*/*`` and a bare
    ``multipart/related`` mean ``default_part``.
    """
    choices: list[MultipartChoice] = []
    for media in parse_accept(header):
        transfer_syntax = media.params.get("transfer-syntax")
        if media.media_type in ("*/*", "multipart/*"):
            choices.append(MultipartChoice(default_part, transfer_syntax or "*"))
        elif media.media_type == "multipart/related":
            part = media.params.get("type", default_part).lower()
            if part in offered or part == "*/*":
                choices.append(
                    MultipartChoice(default_part if part == "*/*" else part, transfer_syntax)
                )
        elif media.media_type in offered:
            choices.append(MultipartChoice(media.media_type, transfer_syntax))
    if not choices:
        raise NotAcceptable(f"acceptable here: multipart/related with type {', '.join(offered)}")
    return choices
