"""The DICOM network edge: our AE (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET SCP) and SCU helpers.

Owns pynetdicom: nothing else in Klinika imports it. Handlers translate an event into one
domain call (``Archive.store``, the one query engine, ``Archive.instances``) and map the
outcome to a DIMSE status; they ask ``auth`` whether the calling AE may do the service and
leave one audit event per request. May import: archive, index, auth, audit, dicom, config.

Modules: ``server`` (the AE, its contexts, starting and stopping), ``handlers`` (one per
service), ``peers`` (who may associate: called and calling AE; refusals are logged and
audited), ``sop_classes`` (every storage SOP class we accept, retired ones included), ``tls``
(DICOM TLS contexts and listener), ``identifiers`` (Q/R identifiers to queries and answers
back), ``status`` (domain outcomes to DIMSE statuses), ``scu`` (Klinika as a client: echo,
send, query, retrieve).

References
----------
PS3.4 Annex B (Storage), Annex C (Query/Retrieve), PS3.7 §9.1 (DIMSE-C services).
"""

from klinika.dimse.server import DimseServer, start_dimse_server

__all__ = ["DimseServer", "start_dimse_server"]
