"""Which messages the sources use, and which of them a catalog lacks.

``python -m klinika.i18n.extract`` lists, per language, the messages used in ``klinika``'s
Python code (``_()``, ``gettext()``, ``ngettext()``, ``N_()``) and Jinja2 templates that have no
translation; the catalog test runs the same check. The extraction is Babel's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir

from klinika.i18n.catalogs import DEFAULT_LANGUAGE, LANGUAGES, load_catalog

PACKAGE_DIR = Path(__file__).parents[1]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHOD_MAP = [("**.py", "python"), ("**/templates/**.html", "jinja2.ext:babel_extract")]
OPTIONS_MAP = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def source_messages() -> Catalog:
    """Every message the package's code and templates ask to translate, with locations."""
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
        str(PACKAGE_DIR),
        method_map=METHOD_MAP,
        options_map=OPTIONS_MAP,
        keywords=KEYWORDS,
        strip_comment_tags=True,
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def missing(language: str, sources: Catalog | None = None) -> list[str]:
    """Messages used in the sources that ``language``'s catalogs do not translate."""
    if language == DEFAULT_LANGUAGE:
        return []
    sources = sources or source_messages()
    translated = load_catalog(language)
    return sorted(
        str(message.id if isinstance(message.id, str) else message.id[0])
        for message in sources
        if message.id
        and (message.id if isinstance(message.id, str) else message.id[0]) not in translated
    )


def main() -> int:
    sources = source_messages()
    gaps = {language: missing(language, sources) for language in LANGUAGES}
    for language, messages in gaps.items():
        for message in messages:
            print(f"{language}\t{message}")
    return 1 if any(gaps.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
