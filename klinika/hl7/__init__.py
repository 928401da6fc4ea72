"""HL7 v2 over MLLP: ADT patient updates and merges, and orders, from the hospital's systems.

Owns the MLLP listener (:class:`Hl7Listener`, python-hl7's asyncio server), reading the
fields Klinika uses from ADT^A08, ADT^A40, ORM^O01 and OMI^O23 (:mod:`klinika.hl7.messages`),
applying them through the services that own the change (study management for patients, the
workflow schedule for orders; :class:`Hl7Service`), and the ACKs. May import: archive,
workflow, audit, auth, index, dicom, config, errors.

Trust boundary: every byte of a message arrives from the network. Only the senders named in
``hl7_senders`` have their messages applied (as the ``interface`` role of the permission
matrix); everything else is refused with AR and recorded.
"""

from klinika.hl7.server import Hl7Listener
from klinika.hl7.service import Hl7Service

__all__ = ["Hl7Listener", "Hl7Service"]
