"""The storage SOP classes our C-STORE SCP accepts: every one of PS3.4 Annex B, retired included.

The table is derived, not typed: pynetdicom's storage list (the current classes) plus every
SOP class pydicom's UID dictionary marks retired whose name says it is a storage class (old
modalities still send Ultrasound Image Storage (Retired), Nuclear Medicine (Retired), …).
pynetdicom routes a C-STORE to the storage service only for UIDs it knows as storage, so the
retired ones are registered with it (:func:`pynetdicom.sop_class.register_uid`).

References
----------
PS3.4 Annex B.5 (Standard SOP Classes), PS3.6 Annex A (retired UIDs).
"""

from __future__ import annotations

import functools

from pydicom._uid_dict import UID_dictionary
from pynetdicom import AllStoragePresentationContexts, sop_class
from pynetdicom.service_class import StorageServiceClass


def _retired_storage_classes() -> dict[str, str]:
    """UID -> keyword of each retired storage SOP class in pydicom's dictionary."""
    return {
        uid: keyword
        for uid, (name, kind, _info, retired, keyword) in UID_dictionary.items()
        if kind == "SOP Class"
        and retired == "Retired"
        and "Storage" in name
        and "Storage Commitment" not in name
    }


@functools.cache
def storage_sop_classes() -> tuple[str, ...]:
    """Every storage SOP Class UID we accept, current first, then retired; registers the
    retired ones with pynetdicom's storage service (once per process)."""
    current = [str(context.abstract_syntax) for context in AllStoragePresentationContexts]
    retired = {
        uid: keyword for uid, keyword in _retired_storage_classes().items() if uid not in current
    }
    for uid, keyword in retired.items():
        sop_class.register_uid(uid, keyword, StorageServiceClass)
    return (*current, *sorted(retired))
