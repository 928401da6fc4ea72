"""Klinika PACS: a DICOM archive with DIMSE, DICOMweb and the OHIF viewer.

Rooms (each says at its door what it owns and may import):
``config`` and ``errors`` at the bottom; ``dicom`` and ``db``; ``storage`` and ``index``;
``archive`` (the one ingest path); the edges ``dicomweb`` and ``dimse``; ``runtime`` (the
composition root); ``web`` (the ASGI app) and ``cli`` on top.
"""

__version__ = "0.1.0"
