"""SOP classes by what they hold (PS3.4 Annex B, the Storage SOP Class table)."""

from __future__ import annotations

from pydicom import uid

#: Objects a reader makes while reading a study — measurements (SR), key-object selections,
#: presentation states, segmentations — as opposed to acquired images. A doctor may store
#: these (OHIF's "Create SR") without being allowed to upload images.
DERIVED_SOP_CLASSES = frozenset(
    {
        uid.BasicTextSRStorage,
        uid.EnhancedSRStorage,
        uid.ComprehensiveSRStorage,
        uid.Comprehensive3DSRStorage,
        uid.KeyObjectSelectionDocumentStorage,
        uid.GrayscaleSoftcopyPresentationStateStorage,
        uid.SegmentationStorage,
    }
)
