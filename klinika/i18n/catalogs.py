"""Catalog loading, the per-language :class:`Translator`, and locale negotiation."""

from __future__ import annotations

import datetime as dt
import functools
import io
from dataclasses import dataclass
from pathlib import Path

from babel import Locale, dates
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: The product's languages, in the order the language switch shows them.
LANGUAGES: tuple[str, ...] = ("en", "ru", "es", "fr", "de")
DEFAULT_LANGUAGE = "en"
#: A user's language preference that follows the browser (Accept-Language); the default.
AUTO_LANGUAGE = "auto"
#: What a user's language preference may be.
USER_LANGUAGES: tuple[str, ...] = (AUTO_LANGUAGE, *LANGUAGES)
#: Each language's name in itself (the switch shows these, untranslated on purpose).
LANGUAGE_NAMES = {
    "en": "English",
    "ru": "Русский",
    "es": "Español",
    "fr": "Français",
    "de": "Deutsch",
}
LOCALES_DIR = Path(__file__).parent / "locales"


def N_(message: str) -> str:
    """Mark a string for extraction without translating it (translate it where it is shown)."""
    return message


def load_catalog(language: str) -> Catalog:
    """Every domain's ``.po`` file of ``language`` merged into one catalog."""
    merged = Catalog(locale=language)
    for po_file in sorted((LOCALES_DIR / language / "LC_MESSAGES").glob("*.po")):
        with po_file.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        for message in catalog:
            if message.id and message.string and not message.fuzzy:
                merged.add(message.id, message.string)
    return merged


@functools.cache
def _translations(language: str) -> NullTranslations:
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    buffer = io.BytesIO()
    write_mo(buffer, load_catalog(language))
    buffer.seek(0)
    return Translations(buffer)


@dataclass(frozen=True)
class Translator:
    """Messages, plurals and dates in one language."""

    language: str

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.language)

    def gettext(self, message: str, **values: object) -> str:
        """The translation of ``message``; ``%(name)s`` placeholders are filled from ``values``."""
        text = _translations(self.language).gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        text = _translations(self.language).ngettext(singular, plural, n)
        return text % {"num": n, **values}

    def format_date(self, value: dt.date | str | None, format: str = "medium") -> str:
        """A date as people of this locale write it; DICOM ``YYYYMMDD`` strings are accepted.

        Returns "" for no date and the raw value for a DICOM date that cannot be parsed.
        """
        if value in (None, ""):
            return ""
        if isinstance(value, str):
            try:
                value = dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
            except ValueError:
                return str(value)
        return dates.format_date(value, format=format, locale=self.locale)

    def format_time(self, value: dt.time | str | None, format: str = "short") -> str:
        """A time of day; DICOM ``HHMMSS[.ffffff]`` strings are accepted."""
        if value in (None, ""):
            return ""
        if isinstance(value, str):
            digits = value.strip().split(".")[0]
            try:
                value = dt.time(int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0))
            except (ValueError, IndexError):
                return str(value)
        return dates.format_time(value, format=format, locale=self.locale)

    def format_datetime(self, value: dt.datetime | float | None, format: str = "medium") -> str:
        """A moment (a datetime or a Unix timestamp), in UTC unless the datetime says otherwise."""
        if value is None:
            return ""
        if not isinstance(value, dt.datetime):
            value = dt.datetime.fromtimestamp(value, tz=dt.UTC)
        return dates.format_datetime(value, format=format, locale=self.locale)


@functools.cache
def translator(language: str) -> Translator:
    """The translator for ``language`` (one of :data:`LANGUAGES`, else English)."""
    return Translator(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def _accept_language(header: str) -> list[str]:
    """Languages of an Accept-Language header, best first (RFC 9110 12.5.4)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(
    explicit: str | None = None,
    preference: str | None = None,
    accept_language: str | None = None,
) -> str:
    """The language to speak: an explicit choice, else the user's preference, else the
    browser's Accept-Language, else English. Unknown values are skipped."""
    for candidate in (explicit, preference):
        if candidate and candidate.lower() in LANGUAGES:
            return candidate.lower()
    for tag in _accept_language(accept_language or ""):
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE
