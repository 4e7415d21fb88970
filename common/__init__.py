"""What the room device (appliance/) and the clinic server (clinic/) both rely on, so neither imports
the other: the MQTT wire contract (protocol.py, schema/, mqtt.py), the typed-config machinery
(config/), strict JSON (jsontext.py), private files and the hardened SQLite opener (privatefile.py,
privatedb.py) and web safety for both Flask apps (websafety.py). Nothing here imports appliance.*
or clinic.* (tests/test_package_boundaries.py)."""
