"""The catalogue of what we hold, and the ONE query engine behind QIDO-RS and C-FIND.

Owns the index tables (``schema``), matching (``matching``), searching (``query``), how
result rows become DICOM JSON answers (``answers``), every write of index rows (``writes``)
and reads by key (``lookups``).
May import: db, dicom, errors. Queries read only the index; they never open a blob.
"""
