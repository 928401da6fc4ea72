"""Names written in another script or without their accents: transliteration (Russian
Cyrillic to Latin, as ICAO Doc 9303 writes it in passports) and accent folding, for the
console's name search and for download file names.

Not DICOM matching: PS3.4 C.2.2.2 matching is in :mod:`klinika.index.matching` and does not
use this (QIDO-RS and C-FIND stay as the standard says).
"""

from __future__ import annotations

import functools
import re
import unicodedata

#: Russian letters (lower case) in Latin, after ICAO Doc 9303 Part 3 (passports).
CYRILLIC_TO_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu",
    "я": "ia", "і": "i", "ї": "i", "є": "ie", "ґ": "g", "ў": "u",
}  # fmt: skip
#: Latin letters that do not decompose into a base letter and accents.
LATIN_LETTERS = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "þ": "th"}


@functools.cache
def folding_table() -> dict[str, str]:
    """Lower-case letter -> its folded spelling: every Latin letter of U+00C0..U+024F with
    accents (its base letter), the letters above, and Russian Cyrillic transliterated."""
    table = dict(CYRILLIC_TO_LATIN)
    table.update(LATIN_LETTERS)
    for code in range(0xC0, 0x250):
        char = chr(code)
        if char != char.casefold() or char in table:
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)
        )
        if base != char and base.isascii():
            table[char] = base
    return table


def fold(text: str) -> str:
    """``text`` case-folded, without accents and in Latin letters: ``Müller`` -> ``muller``,
    ``Иванов`` -> ``ivanov``. Characters outside the table stay as they are."""
    table = folding_table()
    lowered = unicodedata.normalize("NFC", text).casefold()
    return "".join(table.get(char, char) for char in lowered)


def transliterate(text: str) -> str:
    """``text`` in Latin letters, keeping upper and lower case: ``Иванов`` -> ``Ivanov``."""
    table = folding_table()
    out = []
    for char in unicodedata.normalize("NFC", text):
        lower = char.lower()
        folded = table.get(lower)
        if folded is None:
            out.append(char)
        elif char != lower:
            out.append(folded[:1].upper() + folded[1:])
        else:
            out.append(folded)
    return "".join(out)


_UNSAFE = re.compile(r"[^\w.-]+")


def file_name_part(text: str, *, ascii_only: bool = False) -> str:
    """A piece of a download's file name: words joined by ``_``, nothing a file system or a
    ``Content-Disposition`` header could misread (no separators, quotes, control characters,
    no leading dot). With ``ascii_only`` Cyrillic is transliterated and accents dropped."""
    if ascii_only:
        text = "".join(
            c
            for c in unicodedata.normalize("NFD", transliterate(text))
            if not unicodedata.combining(c)
        )
        text = "".join(LATIN_LETTERS.get(c.lower(), c) for c in text)
        text = text.encode("ascii", "ignore").decode("ascii")
    text = unicodedata.normalize("NFC", text).replace("^", " ")
    part = _UNSAFE.sub("_", text).strip("._-")
    return re.sub(r"_+", "_", part)[:64].strip("._-")
