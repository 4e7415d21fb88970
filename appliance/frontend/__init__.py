"""The microphone array's front end before recognition: WPE dereverberation and an MVDR beam.

    frontend = build_frontend(cfg.capture.frontend, cfg.capture.buffer_seconds)  # None for "none"
    frontend.set_array(array)                     # when capture opens (None: mono / unknown device)
    frontend.feed(block.raw, block.rate, t)       # capture thread, every block
    audio16k = frontend.enhance(start, end, direction)  # worker thread, per final utterance; None: use the mix
"""

from appliance.frontend.frontend import MODES, ArrayFrontEnd, FrontEndSettings, FrontEndStats, build_frontend

__all__ = ["MODES", "ArrayFrontEnd", "FrontEndSettings", "FrontEndStats", "build_frontend"]
