"""A short visit written for the note tests (never a data set): the clinician asks, examines and
plans; the patient answers with disfluencies, a medication with its dose and an allergy."""

from __future__ import annotations

import uuid
from typing import Any

VISIT: list[tuple[str, str]] = [
    ("Clinician", "Good morning, Maria. How are you?"),
    ("Patient", "Hi, good to see you."),
    ("Clinician", "So Maria is a 45-year-old female who presents today for a cough."),
    ("Clinician", "How long have you had the cough?"),
    ("Patient", "Uh, about, about two weeks now. I, I cough mostly at night and it keeps me awake."),
    ("Clinician", "Any fever or chills?"),
    ("Patient", "No."),
    ("Clinician", "Any shortness of breath?"),
    ("Patient", "Yes, when I climb the stairs at work."),
    ("Clinician", "Are you taking any medications?"),
    ("Patient", "I take lisinopril twenty milligrams a day for my blood pressure."),
    ("Clinician", "Any allergies to medications?"),
    ("Patient", "I'm allergic to penicillin, it gives me hives."),
    ("Clinician", "Okay, let me examine you. Your blood pressure is 130 over 85 and your temperature is 98.6. "
                  "I hear some wheezing in your right lung."),
    ("Clinician", "I think this is acute bronchitis. I'm going to prescribe an albuterol inhaler, two puffs every "
                  "four hours as needed. Come back in two weeks if the cough is not better."),
    ("Patient", "Okay, thank you."),
]


def segments(visit: list[tuple[str, str]] = VISIT, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Segments as a sync payload carries them: uuid ids, labels S1/S2 (named by `payload`)."""
    labels = labels or {"Clinician": "S1", "Patient": "S2"}
    return [{"id": str(uuid.UUID(int=i + 1)), "start": 10.0 * i, "end": 10.0 * i + 8, "speaker": labels[who],
             "text": text} for i, (who, text) in enumerate(visit)]


def payload(templates: list[str], revision: int = 1, session_id: str = "0190aaaa-0000-7000-8000-000000000001",
            visit: list[tuple[str, str]] = VISIT, speakers: dict[str, str] | None = None,
            device_id: str = "dev-a", labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A scribe.transcript/1 payload of `visit`."""
    return {"schema": "scribe.transcript/1", "session_id": session_id, "revision": revision, "device_id": device_id,
            "site": "site1", "room": "exam-3", "clinician": "Dr Osei", "name": "MG", "started_at": 1.0e9,
            "ended_at": 1.0e9 + 600, "templates": templates, "consent": True, "models": [],
            "speakers": speakers or {"S1": "Clinician", "S2": "Patient"}, "segments": segments(visit, labels)}
