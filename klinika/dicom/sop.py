"""SOP classes by what they hold (PS3.4 Annex B, the Storage SOP Class table)."""

from __future__ import annotations

from pydicom import uid

#: Structured reports and key-object selections: documents of coded content, no pixels
#: (PS3.3 A.35 SR IODs, A.35.4 Key Object Selection).
SR_SOP_CLASSES = frozenset(
    {
        uid.BasicTextSRStorage,
        uid.EnhancedSRStorage,
        uid.ComprehensiveSRStorage,
        uid.Comprehensive3DSRStorage,
        uid.KeyObjectSelectionDocumentStorage,
    }
)
#: Presentation states: how to show referenced images, no pixels of their own (PS3.3 A.33).
PRESENTATION_STATE_SOP_CLASSES = frozenset({uid.GrayscaleSoftcopyPresentationStateStorage})
#: Segmentations: labelled pixels with a Segment Sequence (PS3.3 A.51).
SEGMENTATION_SOP_CLASSES = frozenset({uid.SegmentationStorage})

#: Objects a reader makes while reading a study — measurements (SR), key-object selections,
#: presentation states, segmentations — as opposed to acquired images. A doctor may store
#: these (OHIF's "Create SR") without being allowed to upload images; the archive checks
#: that their content is what the class says (:mod:`klinika.archive.admission`).
DERIVED_SOP_CLASSES = SR_SOP_CLASSES | PRESENTATION_STATE_SOP_CLASSES | SEGMENTATION_SOP_CLASSES

#: The MIME Type of Encapsulated Document (0042,0012) each Encapsulated Document IOD defines:
#: PS3.3 A.45.1.4.1 (PDF), A.45.2.4.1 (CDA, ``text/XML``), A.85.1.4.1 (STL), A.85.2.4.1 (OBJ),
#: A.85.3.4.1 (MTL). Anything else (``text/html``, ...) is not stored: a viewer would show it
#: in a frame of our own origin.
ENCAPSULATED_DOCUMENT_MIME_TYPES: dict[str, str] = {
    uid.EncapsulatedPDFStorage: "application/pdf",
    uid.EncapsulatedCDAStorage: "text/xml",
    uid.EncapsulatedSTLStorage: "model/stl",
    uid.EncapsulatedOBJStorage: "model/obj",
    uid.EncapsulatedMTLStorage: "model/mtl",
}
