"""The demo patients and studies, and the header every demo instance shares.

Builds the Patient, General Study, General Series, General Equipment and SOP Common modules
(PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.7.5.1, C.12.1) plus the Part-10 file meta (PS3.10 7.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

MANUFACTURER = "Klinika Demo"


@dataclass(frozen=True)
class Patient:
    """A demo patient; ``charset`` is the Specific Character Set (None = default repertoire)."""

    name: str
    patient_id: str
    birth_date: str
    sex: str
    age: str
    charset: str | None


@dataclass(frozen=True)
class Study:
    """A demo study of one patient."""

    key: str
    patient: Patient
    date: str
    time: str
    accession_number: str
    study_id: str
    description: str
    referring_physician: str
    institution: str
    body_part: str


@dataclass(frozen=True)
class Series:
    """A series within a demo study."""

    key: str
    number: int
    modality: str
    description: str
    time: str


IVANOV = Patient("Иванов^Иван", "KD-100001", "19580314", "M", "066Y", "ISO_IR 192")
MULLER = Patient("Müller^Jürgen", "KD-100002", "19710822", "M", "053Y", "ISO_IR 100")
SMITH = Patient("Smith^Margaret^A", "KD-100003", "19650607", "F", "059Y", None)
OKAFOR = Patient("Okafor^Grace", "KD-100004", "19880119", "F", "036Y", None)

STUDIES = {
    "ct": Study("ct-chest-abdomen", IVANOV, "20250114", "093512", "ACC-25-0001", "CT1001",
                "CT Chest Abdomen with contrast", "Петрова^Анна^Сергеевна",
                "Klinika Demo Hospital", "CHEST"),
    "mr": Study("mr-brain", MULLER, "20250203", "141005", "ACC-25-0002", "MR2001",
                "MRI Brain without contrast", "Schäfer^Eva", "Klinika Demo Hospital", "HEAD"),
    "cr": Study("cr-chest", SMITH, "20250217", "081540", "ACC-25-0003", "CR3001",
                "Chest PA", "Brown^Robert", "Klinika Demo Clinic", "CHEST"),
    "us": Study("us-echo", OKAFOR, "20250305", "110230", "ACC-25-0004", "US4001",
                "Echocardiogram transthoracic", "Adams^Lena", "Klinika Demo Clinic", "HEART"),
}  # fmt: skip


def demo_uid(seed: int, *parts: object) -> UID:
    """Return a UID that depends only on ``seed`` and ``parts`` (PS3.5 9.1)."""
    return generate_uid(entropy_srcs=["klinika-demo", str(seed), *map(str, parts)])


def base_dataset(
    seed: int,
    study: Study,
    series: Series,
    sop_class_uid: str,
    instance_number: int,
) -> Dataset:
    """Return a dataset with file meta, patient/study/series/equipment and SOP Common set."""
    patient = study.patient
    sop_instance_uid = demo_uid(seed, study.key, series.key, "instance", instance_number)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if patient.charset:
        ds.SpecificCharacterSet = patient.charset
    ds.SOPClassUID = UID(sop_class_uid)
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = study.time
    ds.SeriesTime = series.time
    ds.ContentTime = series.time
    ds.AccessionNumber = study.accession_number
    ds.Modality = series.modality
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = study.institution
    ds.ReferringPhysicianName = study.referring_physician
    ds.StationName = f"DEMO-{series.modality}"
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.ManufacturerModelName = f"Phantom {series.modality}"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = patient.age
    ds.BodyPartExamined = study.body_part
    ds.SoftwareVersions = "1.0"
    ds.StudyInstanceUID = demo_uid(seed, study.key, "study")
    ds.SeriesInstanceUID = demo_uid(seed, study.key, series.key, "series")
    ds.StudyID = study.study_id
    ds.SeriesNumber = series.number
    ds.InstanceNumber = instance_number
    return ds
