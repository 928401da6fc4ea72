"""Pure DICOM logic: attribute tables, header parsing, DICOM JSON, frame location, rendering.

Owns everything that needs only pydicom and the bytes at hand. May import: errors.
Nothing here touches the network, the disk (beyond reading a given file) or the database.
"""
