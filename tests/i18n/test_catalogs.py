"""The catalogs are complete and consistent: every message the code and templates use is
translated in every language, with the same placeholders; locale choice and dates."""

from __future__ import annotations

import datetime as dt

import pytest
from babel.messages.pofile import read_po

from klinika.i18n import LANGUAGES, LOCALES_DIR, negotiate, translator
from klinika.i18n.extract import missing, source_messages

TRANSLATED = [language for language in LANGUAGES if language != "en"]


@pytest.fixture(scope="module")
def sources():  # type: ignore[no-untyped-def]
    catalog = source_messages()
    assert len(catalog) > 10, "extraction found almost nothing: is the method map right?"
    return catalog


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_used_message_is_translated(sources, language: str) -> None:  # type: ignore[no-untyped-def]
    assert missing(language, sources) == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalog_files_have_no_fuzzy_empty_or_inconsistent_entries(language: str) -> None:
    files = sorted((LOCALES_DIR / language / "LC_MESSAGES").glob("*.po"))
    assert files
    for po_file in files:
        with po_file.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        for message in catalog:
            if not message.id:
                continue
            assert not message.fuzzy, (po_file.name, message.id)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), (po_file.name, message.id)
        # Babel's checkers: python-format placeholders agree between msgid and msgstr
        problems = [(message.id, errors) for message, errors in catalog.check()]
        assert problems == [], (po_file.name, problems)


def test_a_known_message_reads_in_every_language() -> None:
    words = {language: translator(language).gettext("Log in") for language in LANGUAGES}
    assert words == {
        "en": "Log in",
        "ru": "Войти",
        "es": "Iniciar sesión",
        "fr": "Se connecter",
        "de": "Anmelden",
    }


def test_negotiation_order_explicit_then_preference_then_browser_then_english() -> None:
    assert negotiate("de", "ru", "fr-FR,fr;q=0.9") == "de"
    assert negotiate(None, "ru", "fr-FR,fr;q=0.9") == "ru"
    assert negotiate("xx", None, "pt-BR, es;q=0.8, fr;q=0.5") == "es"
    assert negotiate(None, None, "fr;q=0.2, de;q=0.7") == "de"
    assert negotiate(None, None, "ja, zh;q=0.5") == "en"
    assert negotiate(None, None, None) == "en"


def test_dates_use_the_locale_month_names() -> None:
    day = dt.date(2024, 3, 5)
    long_dates = {language: translator(language).format_date(day, "long") for language in LANGUAGES}
    assert long_dates["en"] == "March 5, 2024"
    assert "марта" in long_dates["ru"]
    assert "marzo" in long_dates["es"]
    assert "mars" in long_dates["fr"]
    assert "März" in long_dates["de"]
    assert translator("de").format_date("20240305") == translator("de").format_date(day)
    assert translator("ru").format_time("143005") == "14:30"
    assert translator("en").format_date("garbage") == "garbage"
