"""The appliance config schema: one frozen dataclass per TOML table.

Defaults are what a room device runs with when the file is empty or absent; every field
carries a description that `appliance config docs` renders into docs/config.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.asr.registry import EMBEDDERS, ENGINES
from common.config.fields import section, setting


@dataclass(frozen=True)
class DeviceConfig:
    id: str = setting("room-device", "Device identity; on a provisioned room it equals the certificate's common name.")
    site: str = setting("clinic", "Site (clinic) identifier, used in MQTT topics and payloads.")
    room: str = setting("exam-1", "Exam room shown on the panel and sent with each transcript.")
    clinician: str = setting("", "Default clinician name for new sessions (the panel may override it).")


@dataclass(frozen=True)
class PathsConfig:
    state_dir: str = setting(
        "/var/lib/appliance", "Directory for the session database and enrolment data (never audio)."
    )
    models_dir: str = setting("/var/lib/appliance/models", "Directory holding installed speech models.")


@dataclass(frozen=True)
class CaptureConfig:
    source: str = setting(
        "portaudio", "Where audio comes from: a PortAudio input device or a replayed file.",
        choices=("portaudio", "file"),
    )
    device: str = setting(
        "", "Input device chosen by a case-insensitive substring of its name (indices change across "
        "reboots); empty means the system default input.",
    )
    file: str = setting("", "WAV/FLAC file replayed when source = \"file\" (mono or multichannel).")
    realtime: bool = setting(True, "Replay a file source at real time (false: as fast as possible).")
    sample_rate: int = setting(
        0, "Capture rate in Hz; 0 uses the device's native rate.", min=0, max=384000, unit="Hz"
    )
    channels: int = setting(0, "Channels to open; 0 uses the device's maximum input channels.", min=0, max=32)
    asr_channels: tuple[int, ...] = setting(
        [], "Channel indices (0-based) mixed down to the 16 kHz mono stream for speech recognition; "
        "empty mixes all channels.",
    )
    array: str = setting(
        "auto", "Microphone array geometry for direction of arrival: \"auto\" recognises an array by its "
        "device name, \"none\" turns direction off, a geometry file's path, or an array's name: a file "
        "<name>.toml in capture.arrays_dir or a built-in one (respeaker-usb-4mic, respeaker-2mic-hat, "
        "minidsp-uma8; e.g. for a file replay of an array recording).",
    )
    arrays_dir: str = setting(
        "/etc/appliance/arrays", "Folder of the clinic's own microphone array geometry files (<name>.toml: "
        "positions in metres, channel order; see hardware/arrays/README.md); a missing folder adds none.",
    )
    frontend: str = setting(
        "wpe+mvdr", "What the recogniser hears of a microphone array (3+ raw microphones) for each final "
        "utterance: the mono mix (\"none\"), an MVDR beam steered at the talker's direction (\"mvdr\"), or WPE "
        "dereverberation followed by that beam (\"wpe+mvdr\"). Live partial text always uses the mix; mono and "
        "2-mic devices keep the mix. The array's channels are held in RAM for capture.buffer_seconds only. "
        "Default from benchmarks/RESULTS.md (far-field rooms, tiny.en: WER 56 % → 44 %).",
        choices=("none", "mvdr", "wpe+mvdr"),
    )
    block_ms: int = setting(32, "Length of one capture block.", min=8, max=200, unit="ms")
    buffer_seconds: float = setting(
        30.0, "Bound of each in-RAM audio buffer; older audio is dropped, never written to disk.",
        min=2.0, max=120.0, unit="s",
    )
    clip_dbfs: float = setting(-0.5, "Peak level at or above which a block counts as clipped.", min=-20.0, max=0.0,
                               unit="dBFS")
    silence_dbfs: float = setting(
        -70.0, "RMS level below which input counts as silent.", min=-120.0, max=-20.0, unit="dBFS"
    )
    silence_alert_seconds: float = setting(
        15.0, "Continuous silence while recording after which the status warns \"mic muted?\".",
        min=1.0, max=600.0, unit="s",
    )
    reconnect_seconds: float = setting(
        2.0, "Interval between attempts to reopen an unplugged input device.", min=0.2, max=60.0, unit="s"
    )


@dataclass(frozen=True)
class VadConfig:
    engine: str = setting(
        "silero", "Voice activity detector that cuts audio into utterances: Silero VAD (ONNX; falls back to the "
        "energy detector, with a warning, if its model is not installed) or an adaptive energy detector.",
        choices=("silero", "energy"),
    )
    threshold: float = setting(0.5, "Silero VAD: speech probability above which a frame is speech.",
                               min=0.05, max=0.95)
    threshold_db: float = setting(
        12.0, "Energy VAD: speech when a frame is this far above the tracked noise floor.", min=3.0, max=40.0,
        unit="dB",
    )
    min_speech_ms: int = setting(250, "Shortest utterance kept; shorter bursts are noise.", min=50, max=2000,
                                 unit="ms")
    min_silence_ms: int = setting(500, "Pause that ends an utterance.", min=100, max=3000, unit="ms")
    long_utterance_s: float = setting(
        6.0, "From this length on, a shorter pause (long_min_silence_ms) ends the utterance, so long "
        "monologues are cut at natural breaths and their text arrives sooner.", min=1.0, max=30.0, unit="s",
    )
    long_min_silence_ms: int = setting(
        200, "Pause that ends an utterance already longer than long_utterance_s.", min=50, max=3000, unit="ms",
    )
    max_utterance_s: float = setting(
        15.0, "Longest utterance; longer speech is split at a pause between words. Whisper takes up to 30 s, "
        "but 15 s keeps the final text within a second of the speaker stopping and the recognizer's memory low "
        "(measured: same WER on the clinical benchmark as 28 s).", min=5.0, max=30.0, unit="s",
    )
    pad_ms: int = setting(200, "Audio kept before and after detected speech.", min=0, max=1000, unit="ms")


@dataclass(frozen=True)
class AsrConfig:
    engine: str = setting(
        "whisper-onnx", "Recognition engine: " + "; ".join(s.describe() for s in ENGINES.specs()) + ".",
        choices=ENGINES,
    )
    model: str = setting(
        "whisper-tiny.en", "Model name under paths.models_dir, or an absolute model directory (with manifest.json)."
    )
    threads: int = setting(1, "Inference threads (a Pi 4 has 4 cores; leave some for capture and the panel).",
                           min=1, max=16)
    language: str = setting("en", "Spoken language, for multilingual models.")
    vocabulary: tuple[str, ...] = setting(
        [], "Clinic terms (drug names, conditions) used to bias recognition: Whisper prompt, transducer hotwords."
    )
    vocabulary_file: str = setting("", "File with more vocabulary terms, one per line (# starts a comment).")
    partial_interval_s: float = setting(
        1.0, "Interval of partial hypotheses while someone speaks.", min=0.2, max=5.0, unit="s"
    )
    no_speech_threshold: float = setting(
        0.6, "Whisper: an utterance whose no-speech probability exceeds this (and whose text is unlikely) is "
        "dropped as silence or noise.", min=0.0, max=1.0,
    )
    logprob_threshold: float = setting(
        -1.0, "Whisper: mean token log-probability below which text counts as unreliable.", min=-10.0, max=0.0
    )
    compression_ratio_threshold: float = setting(
        2.4, "Whisper: text compressing better than this (zlib ratio) is a repetition loop and is cut.",
        min=1.0, max=10.0,
    )
    prompt_previous_text: bool = setting(
        True, "Whisper: the previous utterance's text (after the vocabulary) is the next one's prompt, as Whisper "
        "does across its windows; forgotten after a silence, a hallucination or a new visit.",
    )
    prompt_reset_s: float = setting(
        10.0, "Whisper: a silence longer than this between utterances forgets the previous text.",
        min=0.0, max=600.0, unit="s",
    )
    beam_size: int = setting(
        5, "Beam width for the final text of each utterance with the moonshine-onnx engine (1: greedy; partial "
        "text is always greedy). Whisper decodes greedily with temperature fallback.", min=1, max=10,
    )
    implausible_chars_per_s: float = setting(
        3.0, "Whisper: a final text with fewer characters per second of VAD speech than this is implausibly "
        "short and the utterance is decoded again in pieces (0 turns the check off).", min=0.0, max=20.0,
    )
    refine_model: str = setting(
        "", "Refined pass: a model under paths.models_dir (e.g. whisper-base, or the live model) that decodes the "
        "visit again in windows of joined speech while it goes on (with asr.refine_engine); at Stop its text "
        "becomes a new transcript revision (Undo on Review gives the live text back). Empty: no refined pass.",
    )
    refine_engine: str = setting(
        "", "Refined pass: its recognition engine when not asr.engine's (e.g. a streaming engine live and "
        "whisper-onnx behind it); empty: asr.engine if it runs asr.refine_model, else the engine that model was "
        "made for.", choices=("", *ENGINES),
    )
    refine_window_s: float = setting(
        30.0, "Refined pass: seconds of joined speech decoded together (Whisper hears 30 s at once).",
        min=5.0, max=30.0, unit="s",
    )
    refine_buffer_s: float = setting(
        300.0, "Refined pass: most seconds of speech kept in RAM for it; when it falls further behind, the oldest "
        "utterances keep their live text.", min=30.0, max=3600.0, unit="s",
    )
    refine_finish_s: float = setting(
        120.0, "Refined pass: how long after Stop the last window may take before the live text is kept for it.",
        min=1.0, max=1800.0, unit="s",
    )


@dataclass(frozen=True)
class DiarizeConfig:
    enabled: bool = setting(True, "Label who spoke (clinician, patient, others) on the device.")
    model: str = setting(
        "voicefilter-embedder", "Speaker-embedding model under paths.models_dir; its manifest's engine picks the "
        "embedder: " + "; ".join(f"{' / '.join(s.model_kinds)}: {s.summary}" for s in EMBEDDERS.specs()) + "."
    )
    min_speakers: int = setting(2, "Fewest speakers expected in a visit.", min=1, max=8)
    max_speakers: int = setting(4, "Most speakers a visit is split into (exam room: 2–4).", min=1, max=8)
    threshold: float = setting(
        0.6, "Cosine similarity above which an utterance joins an existing speaker.", min=0.0, max=1.0
    )
    enrolled_threshold: float = setting(
        0.65, "Cosine similarity to the enrolled clinician voice above which a segment is labelled Clinician.",
        min=0.0, max=1.0,
    )
    use_direction: bool = setting(
        True, "With a multichannel microphone array, fuse the direction of arrival with the voice similarity."
    )
    direction_weight: float = setting(
        0.3, "Weight of direction agreement against voice similarity when both are available.", min=0.0, max=1.0
    )
    change_detection: bool = setting(
        True, "Look for a change of speaker inside an utterance (by voice, and by direction once the speakers' "
        "seats are known) and split it there."
    )


@dataclass(frozen=True)
class StoreConfig:
    path: str = setting("", "Session database file; empty means <paths.state_dir>/sessions.db.")


@dataclass(frozen=True)
class DaemonConfig:
    log_level: str = setting(
        "INFO", "Least severe log level written to the journal.", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    control_socket: str = setting(
        "/run/appliance/control.sock", "Unix socket for `appliance ctl` (mode 0600, service user only)."
    )
    restart_initial_s: float = setting(
        1.0, "First delay before restarting a failed component.", min=0.05, max=60.0, unit="s"
    )
    restart_max_s: float = setting(
        60.0, "Longest delay between restarts of a component that keeps failing.", min=1.0, max=3600.0, unit="s"
    )
    stop_timeout_s: float = setting(
        8.0, "On SIGTERM, time allowed to finish the utterance in flight before stopping.", min=1.0, max=9.0,
        unit="s",
    )
    status_interval_s: float = setting(
        1.0, "Interval of status updates (systemd STATUS, panel, LED).", min=0.1, max=10.0, unit="s"
    )
    min_free_mb: float = setting(
        50.0, "Free space the state directory needs for Start; below it Start is refused and a visit in "
        "progress shows a warning.", min=0.0, max=1_000_000.0, unit="MB",
    )
    held_segments_max: int = setting(
        20_000, "Transcribed utterances kept in RAM while the store cannot be written (full disk); at this "
        "many the microphone pauses, so none is lost (20,000 is well over 10 hours of visit).",
        min=10, max=1_000_000,
    )


@dataclass(frozen=True)
class GpioConfig:
    enabled: bool = setting(False, "Use a GPIO push button and recording LED.")
    button_pin: int = setting(17, "BCM pin of the momentary push button (to ground).", min=0, max=27)
    led_pin: int = setting(27, "BCM pin of the recording LED.", min=0, max=27)
    long_press_s: float = setting(
        1.0, "Press at least this long to pause / resume; shorter presses start / stop.", min=0.3, max=5.0,
        unit="s",
    )
    blink_s: float = setting(0.5, "LED on/off time while paused.", min=0.1, max=2.0, unit="s")


@dataclass(frozen=True)
class PanelConfig:
    enabled: bool = setting(True, "Serve the touch panel (Flask) from the daemon.")
    host: str = setting(
        "127.0.0.1", "Address the panel binds to; the default serves only the kiosk browser on the device."
    )
    port: int = setting(8080, "TCP port of the panel.", min=1, max=65535)
    lan: bool = setting(
        False, "Allow access from other machines (host not loopback). Needs tls_cert and tls_key, every "
        "page then asks for the clinician PIN (the login), and the PIN must have at least 6 digits.",
    )
    tls_cert: str = setting("", "PEM certificate (chain) served in LAN mode.")
    tls_key: str = setting("", "PEM private key of tls_cert (readable by the service user only).")
    auto_lock_s: float = setting(
        120.0, "Inactivity after which the panel locks: back to the Start screen, transcripts hidden, PIN "
        "needed again.", min=5.0, max=3600.0, unit="s",
    )
    pin_min_length: int = setting(4, "Shortest clinician PIN accepted when it is set (at least 6 with lan = true).",
                                  min=4, max=12)
    pin_attempts: int = setting(5, "Wrong PINs in a row before entry is refused for a while (a lockout).",
                                min=1, max=20)
    pin_lockout_s: float = setting(60.0, "First lockout after too many wrong PINs; each further lockout without "
                                   "the right PIN in between lasts twice as long.", min=5.0, max=3600.0, unit="s")
    pin_lockout_max_s: float = setting(86400.0, "Longest lockout, however many came before.",
                                       min=60.0, max=604800.0, unit="s")
    pin_alert_lockouts: int = setting(3, "Lockouts in a row after which the device raises an alert (ctl status, "
                                      "the clinic's status topic) until the right PIN is entered.", min=1, max=100)
    templates: tuple[str, ...] = setting(
        ["SOAP", "H&P", "Progress Note", "Patient Instructions"], "Note templates offered on the Start and "
        "Review screens until the clinic server announces the ones it writes (then its list is offered instead; "
        "see docs/sync-protocol.md, templates).",
    )
    custom_templates: tuple[str, ...] = setting([], "Clinic-defined note templates offered after the standard ones "
                                                "(also only until the clinic announces its list).")
    default_templates: tuple[str, ...] = setting(["SOAP"], "Templates ticked in advance on the Start screen.")
    require_consent: bool = setting(
        True, "\"Send to clinic\" is refused until the patient's verbal consent is confirmed on the panel."
    )
    start_consent: str = setting(
        "warn", "Consent to recording on the Start screen: \"required\" refuses Start until the patient's "
        "agreement is ticked; \"warn\" starts anyway and the Recording screen shows a warning (with a button "
        "to confirm consent) until it is given. A visit started by the button always shows the warning.",
        choices=("required", "warn"),
    )
    low_confidence: float = setting(
        0.5, "Review highlights the words (or, without word scores, the line) whose recogniser confidence "
        "(from the decoder's token probabilities, 0–1) is below this; 0 turns the marks off.", min=0.0, max=1.0,
    )
    enrol_seconds: float = setting(20.0, "Length of the clinician voice enrolment recording (RAM only).",
                                   min=10.0, max=60.0, unit="s")
    mic_test_seconds: float = setting(15.0, "How long the Settings microphone test shows the input level.",
                                      min=3.0, max=120.0, unit="s")


@dataclass(frozen=True)
class SyncConfig:
    enabled: bool = setting(False, "Send reviewed transcripts to the clinic server over MQTT.")
    broker_host: str = setting("localhost", "MQTT broker of the clinic (host name or address).")
    broker_port: int = setting(8883, "MQTT broker port (8883: MQTT over TLS).", min=1, max=65535)
    topic_prefix: str = setting("scribe", "First level of every topic: <prefix>/<site>/<device id>/...")
    tls: bool = setting(True, "Connect with TLS and this device's client certificate (false only for a lab broker).")
    ca_file: str = setting("/etc/appliance/pki/ca.crt", "Clinic CA certificate (PEM) that signed the broker's "
                           "certificate.")
    cert_file: str = setting("/etc/appliance/pki/device.crt", "This device's client certificate (PEM); its common "
                             "name is the device id the broker enforces.")
    key_file: str = setting("/etc/appliance/pki/device.key", "Private key of the client certificate (PEM, mode 0600).")
    reconnect_max_s: float = setting(
        1.0, "Longest wait between attempts to reach the broker while it is down; queued transcripts leave "
        "at most this long after it is back.", min=0.1, max=300.0, unit="s",
    )
    keepalive_s: int = setting(30, "MQTT keepalive; the broker publishes the \"offline\" last will after 1.5× "
                               "this without traffic.", min=5, max=600, unit="s")
    max_payload_bytes: int = setting(8_000_000, "Largest transcript payload the device will send; a larger one "
                                     "is refused (and logged), never truncated.", min=10_000, max=100_000_000,
                                     unit="bytes")
    chunk_bytes: int = setting(131_072, "Largest MQTT message the device publishes; bigger transcripts are split "
                               "into chunks. With the MQTT header it must fit broker_max_packet_bytes (checked).",
                               min=1024, max=10_000_000, unit="bytes")
    broker_max_packet_bytes: int = setting(
        262_144, "The broker's max_packet_size (whole MQTT packet, header included); the default is the "
        "shipped image/mosquitto/mosquitto.conf's. A larger message makes the broker drop the connection, so "
        "a chunk_bytes that does not fit is refused.", min=1024, max=268_435_455, unit="bytes",
    )
    ack_timeout_s: float = setting(10.0, "Resend a transcript not acknowledged within this time (first retry); "
                                   "doubles on each retry.", min=0.5, max=3600.0, unit="s")
    backoff_max_s: float = setting(300.0, "Longest wait between two sends of the same transcript.", min=1.0,
                                   max=86400.0, unit="s")
    max_in_flight: int = setting(200, "Transcripts sent and awaiting their acknowledgement at any one time.",
                                 min=1, max=10_000)
    poll_interval_s: float = setting(0.5, "How often the outbox is checked for work when nothing wakes the "
                                     "sender.", min=0.05, max=60.0, unit="s")


@dataclass(frozen=True)
class RetentionConfig:
    keep_days: float = setting(
        7.0, "Days a transcript stays on the device after the clinic acknowledged it; then it is purged.",
        min=0.0, max=365.0, unit="days",
    )
    check_interval_s: float = setting(
        600.0, "How often the device looks for acknowledged transcripts past retention.", min=1.0,
        max=86400.0, unit="s",
    )


@dataclass(frozen=True)
class ApplianceConfig:
    device: DeviceConfig = section(DeviceConfig, "Identity of this room device.")
    paths: PathsConfig = section(PathsConfig, "Where the device keeps its state.")
    capture: CaptureConfig = section(CaptureConfig, "Audio input (PortAudio or a replayed file).")
    vad: VadConfig = section(VadConfig, "Cutting speech into utterances.")
    asr: AsrConfig = section(AsrConfig, "Speech recognition on the device.")
    diarize: DiarizeConfig = section(DiarizeConfig, "Speaker diarization: who spoke when.")
    store: StoreConfig = section(StoreConfig, "The session store (SQLite).")
    daemon: DaemonConfig = section(DaemonConfig, "The `appliance run` daemon.")
    gpio: GpioConfig = section(GpioConfig, "Optional physical button and recording LED.")
    panel: PanelConfig = section(PanelConfig, "The touch panel web app.")
    sync: SyncConfig = section(SyncConfig, "Transcript delivery to the clinic server (MQTT).")
    retention: RetentionConfig = section(RetentionConfig, "How long transcripts stay on the device.")

    @property
    def store_path(self) -> str:
        return self.store.path or f"{self.paths.state_dir.rstrip('/')}/sessions.db"
