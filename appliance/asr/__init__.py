"""Speech recognition engines behind one interface (`engine.py`), registered in `registry.py`.

Nothing is imported here: the config schema reads the registry without loading numpy or an engine.
"""
