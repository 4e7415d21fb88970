"""Clinic notes: grounded notes from stored transcripts (docs/clinic-notes.md).

    text.py, roles.py, facts.py, extract.py, rewrite.py   spoken turns → statements with evidence
    builtin.py                                             the offline generator (no LLM)
    templates.py + templates/*.j2                          SOAP, H&P, Progress Note, Patient Instructions
    render.py, grounding.py, evaluate.py                   output formats, checks, `clinic eval`
    service.py                                             generation after ingest, storage, publishing
"""
