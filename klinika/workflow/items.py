"""Scheduled steps as DICOM: the Modality Worklist item of a step.

References
----------
PS3.4 K.6.1.2.2 (Modality Worklist Information Model attributes), PS3.3 C.4.10 / C.4.11
(Scheduled Procedure Step, Requested Procedure), PS3.5 §6.1.2.3 (ISO_IR 192).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from klinika.workflow.records import ScheduledStep


def worklist_item(step: ScheduledStep) -> Dataset:
    """Every attribute we hold of ``step`` as one worklist item: the patient and requested
    procedure at the top level, the step in one Scheduled Procedure Step Sequence item.
    SpecificCharacterSet is ISO_IR 192 when a value is not ASCII."""
    d = step.details
    item = Dataset()
    item.AccessionNumber = d.accession_number
    item.ReferringPhysicianName = d.referring_physician
    item.PatientName = d.patient_name
    item.PatientID = d.patient_id
    item.PatientBirthDate = d.patient_birth_date
    item.PatientSex = d.patient_sex
    item.StudyInstanceUID = step.study_instance_uid
    item.RequestedProcedureDescription = d.requested_procedure_description
    item.RequestedProcedureID = d.requested_procedure_id
    codes = []
    if d.procedure_code_value:
        code = Dataset()
        code.CodeValue = d.procedure_code_value
        code.CodingSchemeDesignator = d.procedure_code_scheme or "99KLINIKA"
        code.CodeMeaning = d.procedure_code_meaning or d.requested_procedure_description
        codes.append(code)
    item.RequestedProcedureCodeSequence = codes
    sps = Dataset()
    sps.Modality = d.modality
    sps.ScheduledStationAETitle = d.station_ae_title
    sps.ScheduledProcedureStepStartDate = d.start_date
    sps.ScheduledProcedureStepStartTime = d.start_time
    sps.ScheduledPerformingPhysicianName = d.performing_physician
    sps.ScheduledProcedureStepDescription = d.step_description
    sps.ScheduledProcedureStepID = d.step_id
    sps.ScheduledProcedureStepStatus = step.status.value
    item.ScheduledProcedureStepSequence = [sps]
    texts = [str(e.value) for e in item.iterall() if e.VR not in ("SQ",) and e.value]
    if not all(text.isascii() for text in texts):
        item.SpecificCharacterSet = "ISO_IR 192"
    return item
