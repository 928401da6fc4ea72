"""Names of what the console hands out (study ZIPs, report PDFs) and their
``Content-Disposition``: the patient's name as written (Cyrillic kept, RFC 6266 / RFC 8187
``filename*``), transliterated to ASCII for the plain ``filename`` old clients read."""

from __future__ import annotations

from urllib.parse import quote

from klinika.dicom.fold import file_name_part


def download_name(*parts: str, suffix: str, ascii_only: bool = False, separator: str = "_") -> str:
    """``parts`` made safe and joined by ``separator`` (empty ones left out), then ``suffix``:
    ``download_name("Иванов^Иван", "20240102", "CT", suffix=".zip")`` is
    ``Иванов_Иван_20240102_CT.zip`` (``Ivanov_Ivan_20240102_CT.zip`` with ``ascii_only``)."""
    safe = [file_name_part(part, ascii_only=ascii_only) for part in parts]
    return separator.join(part for part in safe if part) + suffix


def content_disposition(
    *parts: str, suffix: str, inline: bool = False, separator: str = "_"
) -> str:
    """The header for a download named after ``parts`` (see :func:`download_name`)."""
    plain = download_name(*parts, suffix=suffix, ascii_only=True, separator=separator)
    if plain == suffix:
        plain = "download" + suffix
    full = download_name(*parts, suffix=suffix, separator=separator) or plain
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(full, safe='')}"
