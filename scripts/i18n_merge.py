"""Merge translations into the catalogs: ``python scripts/i18n_merge.py <domain> table.json``.

``table.json`` maps each English message to its translations, ``{"Log in": {"ru": "Войти",
"es": ..., "fr": ..., "de": ...}}``; the messages are added to (or replaced in)
``klinika/i18n/locales/<lang>/LC_MESSAGES/<domain>.po``. A plural message names its plural
and gives each language's forms as a list: ``{"%(num)d study": {"plural": "%(num)d studies",
"ru": ["%(num)d исследование", "%(num)d исследования", "%(num)d исследований"], ...}}``.
Editing the ``.po`` files by hand, or with any gettext tool, works as well.
"""

import json
import sys
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).parents[1] / "klinika" / "i18n" / "locales"


def merge(domain: str, table: dict[str, dict[str, Any]]) -> None:
    for language in ("ru", "es", "fr", "de"):
        path = LOCALES / language / "LC_MESSAGES" / f"{domain}.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=language, domain=domain)
        else:
            catalog = Catalog(locale=language, domain=domain, project="Klinika PACS")
        for message, translations in table.items():
            if message in catalog:  # replace, plural forms included
                del catalog[message]
            if "plural" in translations:
                forms = tuple(translations[language])
                catalog.add((message, translations["plural"]), forms)
            else:
                catalog.add(message, translations[language])
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, sort_output=True)


if __name__ == "__main__":
    with open(sys.argv[2], encoding="utf-8") as source:
        merge(sys.argv[1], json.load(source))
