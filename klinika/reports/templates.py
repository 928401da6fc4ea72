"""Report templates per modality, in each language: content a doctor inserts and edits.

This is clinical text, not interface wording, so it lives here as data keyed by language
rather than in the message catalogs; ``tests/reports`` checks that every modality has every
section of the template in all five languages. CR and DX share the radiography template.
"""

from __future__ import annotations

from klinika.i18n import LANGUAGES, N_

#: Modality code -> template key (one template may serve several modalities).
TEMPLATE_FOR_MODALITY = {"CT": "CT", "MR": "MR", "US": "US", "CR": "CR/DX", "DX": "CR/DX"}

#: Template key -> its name (an msgid, translated where shown).
TEMPLATE_NAMES = {
    "CT": N_("Computed tomography"),
    "MR": N_("Magnetic resonance imaging"),
    "US": N_("Ultrasound"),
    "CR/DX": N_("Radiography"),
}

#: Sections a template fills.
TEMPLATE_SECTIONS = ("technique", "findings", "impression")

TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    "CT": {
        "en": {
            "technique": "Multidetector CT, axial acquisition with multiplanar reconstructions. "
            "Intravenous contrast: none.",
            "findings": "The examined organs are of normal size, shape and density. No focal "
            "lesions. No free fluid or gas. No enlarged lymph nodes. Bone structures without "
            "destructive changes.",
            "impression": "No CT evidence of acute pathology.",
        },
        "ru": {
            "technique": "Мультиспиральная КТ, аксиальное сканирование с мультипланарными "
            "реконструкциями. Внутривенное контрастирование: не проводилось.",
            "findings": "Исследованные органы обычных размеров, формы и плотности. Очаговых "
            "образований не выявлено. Свободной жидкости и газа нет. Увеличенных лимфатических "
            "узлов нет. Костные структуры без деструктивных изменений.",
            "impression": "КТ-признаков острой патологии не выявлено.",
        },
        "es": {
            "technique": "TC multidetector, adquisición axial con reconstrucciones "
            "multiplanares. Contraste intravenoso: no.",
            "findings": "Los órganos explorados son de tamaño, forma y densidad normales. No se "
            "observan lesiones focales. No hay líquido ni gas libre. No hay adenopatías. "
            "Estructuras óseas sin cambios destructivos.",
            "impression": "Sin signos tomográficos de patología aguda.",
        },
        "fr": {
            "technique": "TDM multibarrette, acquisition axiale avec reconstructions "
            "multiplanaires. Injection de produit de contraste : non.",
            "findings": "Les organes examinés sont de taille, de forme et de densité normales. "
            "Pas de lésion focale. Pas d'épanchement ni d'air libre. Pas d'adénopathie. "
            "Structures osseuses sans lésion destructrice.",
            "impression": "Pas de signe tomodensitométrique de pathologie aiguë.",
        },
        "de": {
            "technique": "Mehrzeilen-CT, axiale Akquisition mit multiplanaren Rekonstruktionen. "
            "Intravenöses Kontrastmittel: nein.",
            "findings": "Die untersuchten Organe sind normal groß, normal geformt und von "
            "normaler Dichte. Keine fokalen Läsionen. Keine freie Flüssigkeit, keine freie Luft. "
            "Keine vergrößerten Lymphknoten. Knöcherne Strukturen ohne destruierende "
            "Veränderungen.",
            "impression": "Kein CT-morphologischer Nachweis einer akuten Pathologie.",
        },
    },
    "MR": {
        "en": {
            "technique": "MRI at ___ T: T1-weighted, T2-weighted, FLAIR and diffusion-weighted "
            "sequences in three planes. Gadolinium contrast: none.",
            "findings": "Normal signal intensity of the examined structures. No areas of "
            "restricted diffusion. No mass effect. No pathological enhancement.",
            "impression": "No MR evidence of acute pathology.",
        },
        "ru": {
            "technique": "МРТ ___ Тл: T1- и T2-взвешенные изображения, FLAIR и "
            "диффузионно-взвешенные изображения в трёх плоскостях. Контрастирование гадолинием: "
            "не проводилось.",
            "findings": "Интенсивность сигнала исследованных структур не изменена. Участков "
            "ограничения диффузии нет. Объёмного воздействия нет. Патологического накопления "
            "контраста нет.",
            "impression": "МР-признаков острой патологии не выявлено.",
        },
        "es": {
            "technique": "RM de ___ T: secuencias potenciadas en T1, T2, FLAIR y difusión en "
            "tres planos. Contraste con gadolinio: no.",
            "findings": "Intensidad de señal normal de las estructuras exploradas. Sin áreas de "
            "restricción de la difusión. Sin efecto de masa. Sin realces patológicos.",
            "impression": "Sin signos de patología aguda en la RM.",
        },
        "fr": {
            "technique": "IRM ___ T : séquences pondérées T1, T2, FLAIR et diffusion dans les "
            "trois plans. Injection de gadolinium : non.",
            "findings": "Signal normal des structures examinées. Pas de restriction de la "
            "diffusion. Pas d'effet de masse. Pas de prise de contraste pathologique.",
            "impression": "Pas de signe IRM de pathologie aiguë.",
        },
        "de": {
            "technique": "MRT mit ___ T: T1-, T2-gewichtete, FLAIR- und diffusionsgewichtete "
            "Sequenzen in drei Ebenen. Gadolinium-Kontrastmittel: nein.",
            "findings": "Normale Signalintensität der untersuchten Strukturen. Keine "
            "Diffusionsrestriktion. Kein raumfordernder Effekt. Keine pathologische "
            "Kontrastmittelanreicherung.",
            "impression": "Kein MR-tomographischer Nachweis einer akuten Pathologie.",
        },
    },
    "US": {
        "en": {
            "technique": "Real-time B-mode ultrasound with colour Doppler, ___ MHz transducer.",
            "findings": "The examined organs are of normal size and echogenicity, with smooth "
            "contours. No focal lesions. No free fluid. Normal vascular flow on colour Doppler.",
            "impression": "Normal ultrasound examination.",
        },
        "ru": {
            "technique": "УЗИ в B-режиме в реальном времени с цветовым допплеровским "
            "картированием, датчик ___ МГц.",
            "findings": "Исследованные органы обычных размеров и эхогенности, контуры ровные. "
            "Очаговых образований не выявлено. Свободной жидкости нет. Кровоток при ЦДК не "
            "изменён.",
            "impression": "Ультразвуковых признаков патологии не выявлено.",
        },
        "es": {
            "technique": "Ecografía en modo B en tiempo real con Doppler color, transductor de "
            "___ MHz.",
            "findings": "Los órganos explorados son de tamaño y ecogenicidad normales, de "
            "contornos lisos. No se observan lesiones focales. No hay líquido libre. Flujo "
            "vascular normal en el Doppler color.",
            "impression": "Ecografía dentro de la normalidad.",
        },
        "fr": {
            "technique": "Échographie en mode B en temps réel avec Doppler couleur, sonde de "
            "___ MHz.",
            "findings": "Les organes examinés sont de taille et d'échogénicité normales, aux "
            "contours réguliers. Pas de lésion focale. Pas d'épanchement. Flux vasculaire normal "
            "en Doppler couleur.",
            "impression": "Échographie normale.",
        },
        "de": {
            "technique": "B-Bild-Sonographie in Echtzeit mit Farbdoppler, ___-MHz-Schallkopf.",
            "findings": "Die untersuchten Organe sind normal groß und von normaler Echogenität, "
            "glatt begrenzt. Keine fokalen Läsionen. Keine freie Flüssigkeit. Regelrechte "
            "Perfusion im Farbdoppler.",
            "impression": "Unauffälliger sonographischer Befund.",
        },
    },
    "CR/DX": {
        "en": {
            "technique": "Radiograph in ___ projection(s).",
            "findings": "Lung fields are clear, without focal or infiltrative changes. The hila "
            "are structured. The heart is not enlarged. The diaphragm is smooth and the "
            "costophrenic angles are free. Bones without visible traumatic changes.",
            "impression": "No radiographic evidence of acute pathology.",
        },
        "ru": {
            "technique": "Рентгенография в ___ проекции(ях).",
            "findings": "Лёгочные поля прозрачны, без очаговых и инфильтративных изменений. "
            "Корни лёгких структурны. Сердце не расширено. Диафрагма с ровными контурами, синусы "
            "свободны. Костные структуры без видимых травматических изменений.",
            "impression": "Рентгенологических признаков острой патологии не выявлено.",
        },
        "es": {
            "technique": "Radiografía en ___ proyección(es).",
            "findings": "Campos pulmonares claros, sin lesiones focales ni infiltrados. Hilios "
            "de aspecto normal. Silueta cardíaca no aumentada. Diafragma de contornos lisos, "
            "senos costofrénicos libres. Estructuras óseas sin lesiones traumáticas visibles.",
            "impression": "Sin signos radiológicos de patología aguda.",
        },
        "fr": {
            "technique": "Radiographie en ___ incidence(s).",
            "findings": "Champs pulmonaires clairs, sans opacité focale ni infiltrat. Hiles de "
            "morphologie normale. Silhouette cardiaque non élargie. Coupoles diaphragmatiques "
            "régulières, culs-de-sac costodiaphragmatiques libres. Structures osseuses sans "
            "lésion traumatique visible.",
            "impression": "Pas de signe radiologique de pathologie aiguë.",
        },
        "de": {
            "technique": "Röntgenaufnahme in ___ Ebene(n).",
            "findings": "Lungenfelder frei belüftet, keine Herde oder Infiltrate. Hili regelrecht "
            "konfiguriert. Herz nicht vergrößert. Zwerchfell glatt begrenzt, Recessus frei. "
            "Knöcherne Strukturen ohne sichtbare traumatische Veränderungen.",
            "impression": "Kein radiologischer Nachweis einer akuten Pathologie.",
        },
    },
}


def template_key(modality: str | None) -> str | None:
    """The template for a modality code (``CT``), or None when there is none."""
    return TEMPLATE_FOR_MODALITY.get((modality or "").upper())


def template_text(key: str, language: str) -> dict[str, str]:
    """The sections of template ``key`` in ``language`` (English for an unknown language).

    Raises
    ------
    KeyError
        For an unknown template.
    """
    texts = TEMPLATES[key]
    return dict(texts[language if language in LANGUAGES else "en"])
