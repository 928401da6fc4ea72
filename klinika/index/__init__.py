"""The catalogue of what we hold, and the ONE query engine behind QIDO-RS and C-FIND.

Owns the index tables (``schema``), matching (``matching``), searching (``query``), every
write of index rows (``writes``) and reads by key (``lookups``).
May import: db, dicom, errors. Queries read only the index; they never open a blob.
"""
