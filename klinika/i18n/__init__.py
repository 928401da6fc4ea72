"""Languages of the product: message catalogs (gettext ``.po`` files read with Babel), locale
negotiation, and dates formatted per locale.

Owns ``locales/<lang>/LC_MESSAGES/<domain>.po``; one domain per area of the product (``web``,
``viewer``, ``reports``, ``console``), so that areas are translated independently. The source
strings (msgids) are English; English therefore needs no catalog. Imports only Babel.
"""

from klinika.i18n.catalogs import (
    AUTO_LANGUAGE,
    DEFAULT_LANGUAGE,
    LANGUAGE_NAMES,
    LANGUAGES,
    LOCALES_DIR,
    N_,
    USER_LANGUAGES,
    Translator,
    negotiate,
    translator,
)

__all__ = [
    "AUTO_LANGUAGE",
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "LOCALES_DIR",
    "N_",
    "USER_LANGUAGES",
    "Translator",
    "negotiate",
    "translator",
]
