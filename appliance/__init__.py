"""Exam-room scribe appliance: the room device.

Data path, one sub-package per stage: capture → vad → (asr) → store → panel / sync,
wired together by the daemon.
"""

__version__ = "0.1.0"
