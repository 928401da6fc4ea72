"""Demo data for ``klinika demo``: a deterministic, network-free set of DICOM Part-10 files.

Owns the phantoms (CT chest/abdomen, MR brain, CR chest, US echo cine) and the demo patients.
Imports nothing from ``klinika``; it writes files and the CLI stores them through the archive.
"""

from klinika.demo.generate import demo_file_count, generate_demo

__all__ = ["demo_file_count", "generate_demo"]
