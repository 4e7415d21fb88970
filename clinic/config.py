"""The clinic server's config: a small typed TOML schema, same conventions as the device's.

    [mqtt]   broker, TLS files, client identity
    [store]  where received transcripts are kept
    [ingest] limits on what is accepted
    [notes]  note generation: templates folder, worker threads, generator
    [llm]    the OpenAI-compatible chat API of the LLM generator and assistant commands
    [web]    the clinic web view: address, TLS, login limits
"""

from __future__ import annotations

from dataclasses import dataclass

# The config machinery the device uses too (typed fields with descriptions, a loader that names the
# bad key, one renderer), so both programs report config errors and show their keys the same way.
from common.config import ConfigError, build_section, read_toml, section, setting
from common.config.render import commented_toml


@dataclass(frozen=True)
class MqttConfig:
    host: str = setting("localhost", "MQTT broker host name (must match the broker certificate).")
    port: int = setting(8883, "MQTT broker port (8883: MQTT over TLS).", min=1, max=65535)
    topic_prefix: str = setting("scribe", "First topic level; devices publish under <prefix>/<site>/<device id>/.")
    client_id: str = setting("clinic-server", "MQTT client id; a persistent session keeps transcripts that "
                             "arrive while the server is down.")
    tls: bool = setting(True, "Connect with TLS and the server's client certificate (false only for a lab broker).")
    ca_file: str = setting("/etc/clinic/pki/ca.crt", "Clinic CA certificate (PEM).")
    cert_file: str = setting("/etc/clinic/pki/clinic-server.crt", "The server's client certificate; its common "
                             "name must be the identity the broker ACL grants all scribe topics to.")
    key_file: str = setting("/etc/clinic/pki/clinic-server.key", "Private key of the client certificate.")
    tool_cert_file: str = setting("/etc/clinic/pki/clinic-tools.crt", "Client certificate of the one-shot tools "
                                  "(`clinic note`, `clinic command`). The broker makes a certificate's common name "
                                  "its client id, so the tools need a name of their own (\"clinic-tools\"): with "
                                  "the server's they would take over its session.")
    tool_key_file: str = setting("/etc/clinic/pki/clinic-tools.key", "Private key of the tools' certificate.")
    keepalive_s: int = setting(30, "MQTT keepalive.", min=5, max=600, unit="s")


@dataclass(frozen=True)
class StoreConfig:
    backend: str = setting("sqlite", "Where transcripts, notes and the audit trail are kept: \"sqlite\" (one file "
                           "on this server, the default) or \"postgresql\" (a PostgreSQL server, see url).",
                           choices=("sqlite", "postgresql"))
    path: str = setting("/var/lib/clinic/transcripts.db", "SQLite database file (backend = \"sqlite\"); made "
                        "readable by the server's account only.")
    url: str = setting("", "PostgreSQL connection URL (backend = \"postgresql\"), e.g. "
                       "\"postgresql://clinic@db.example/clinic?sslmode=verify-full\". Keep the password out of "
                       "this file: libpq reads ~/.pgpass or PGPASSWORD.")


@dataclass(frozen=True)
class IngestConfig:
    max_message_bytes: int = setting(262_144, "Largest MQTT message accepted; larger ones are logged and dropped. "
                                     "Match the broker's max_packet_size.", min=1024, max=100_000_000, unit="bytes")
    max_transcript_bytes: int = setting(16_000_000, "Largest transcript reassembled from chunks.",
                                        min=10_000, max=1_000_000_000, unit="bytes")
    max_partial_bytes: int = setting(64_000_000, "Memory for incomplete chunked transcripts across all devices; "
                                     "beyond it the device holding the most loses its oldest (it resends).",
                                     min=100_000, max=4_000_000_000, unit="bytes")
    max_partial_bytes_per_device: int = setting(32_000_000, "Memory for one device's incomplete chunked "
                                                "transcripts; beyond it that device's oldest is dropped, never "
                                                "another device's. Keep it at least max_transcript_bytes.",
                                                min=10_000, max=4_000_000_000, unit="bytes")
    max_partials_per_device: int = setting(16, "Incomplete chunked transcripts one device may have at once; "
                                           "beyond it that device's oldest is dropped.", min=1, max=10_000)
    chunk_timeout_s: float = setting(600.0, "Drop an incomplete chunked transcript after this long.", min=1.0,
                                     max=86400.0, unit="s")
    log_interval_s: float = setting(60.0, "A device whose messages are dropped or refused gets one log line per "
                                    "interval, then a count of the rest.", min=1.0, max=86400.0, unit="s")
    batch_max: int = setting(200, "Transcripts written in one database transaction before their acks go out.",
                             min=1, max=10_000)


@dataclass(frozen=True)
class NotesConfig:
    enabled: bool = setting(True, "Write a note for every template a visit asks for when its transcript is stored, "
                            "and send it to the device.")
    templates_dir: str = setting("", "Folder of the clinic's own note templates (*.j2, see docs/clinic-notes.md); "
                                 "a file with a built-in template's name replaces it. Empty: built-ins only.")
    fallback_template: str = setting("SOAP", "Template used when a visit asks for none (empty: no note).")
    catch_up_hours: float = setting(24.0, "At start, write the notes of transcripts stored this recently that have "
                                    "none (the server stopped before writing them). 0: never.", min=0.0,
                                    max=8760.0, unit="h")
    workers: int = setting(2, "Threads writing notes; transcripts wait in a queue (acks never wait for notes).",
                           min=1, max=64)
    generator: str = setting("builtin", "Who writes notes: builtin (offline, no LLM) or llm (the [llm] server, "
                             "grounded in the built-in note; falls back to it when the server is down or slow).",
                             choices=("builtin", "llm"))


@dataclass(frozen=True)
class LlmConfig:
    url: str = setting("", "Base URL of an OpenAI-compatible chat API (llama.cpp server, vLLM, Ollama), e.g. "
                       "http://127.0.0.1:8080/v1; requests go to <url>/chat/completions. Empty: no LLM "
                       "(the llm generator falls back to builtin, assistant commands say so).")
    model: str = setting("", "Model name sent with each request (llama.cpp's server ignores it; vLLM and Ollama "
                         "need it).")
    api_key: str = setting("", "Bearer token sent as Authorization, if the server wants one.")
    timeout_s: float = setting(60.0, "Longest wait for one answer; a server slower than this (or down) gives "
                               "the built-in note, marked as a fallback.", min=0.1, max=3600.0, unit="s")
    max_tokens: int = setting(1024, "Most tokens the model may write per request; an answer cut here keeps "
                              "the built-in sentences of that part.", min=16, max=32768)
    part_words: int = setting(250, "Largest built-in note (in words) sent in one request; a longer one is sent "
                              "per section, and a longer section in parts of whole statements.",
                              min=20, max=20000, unit="words")
    temperature: float = setting(0.0, "Sampling temperature (0: the same answer each time).", min=0.0, max=2.0)


@dataclass(frozen=True)
class WebConfig:
    host: str = setting("127.0.0.1", "Address the clinic web view listens on. Anything but loopback needs "
                        "tls_cert and tls_key (the view is never served to the network without TLS).")
    port: int = setting(8470, "Port of the clinic web view.", min=1, max=65535)
    tls_cert: str = setting("", "TLS certificate (PEM) of the web view; with tls_key, served over HTTPS.")
    tls_key: str = setting("", "Private key of tls_cert.")
    idle_logout_min: float = setting(15.0, "Log a user out after this long without a request.", min=1.0,
                                     max=1440.0, unit="min")
    login_attempts: int = setting(5, "Wrong passwords in a row before the account is locked.", min=1, max=100)
    lockout_s: float = setting(60.0, "First lockout after login_attempts wrong passwords; each further lockout "
                               "in a row lasts twice as long.", min=1.0, max=86400.0, unit="s")
    lockout_max_s: float = setting(3600.0, "Longest lockout.", min=1.0, max=604800.0, unit="s")


@dataclass(frozen=True)
class ClinicConfig:
    # setting()/section() return dataclasses.field(); ruff cannot see through the wrapper.
    mqtt: MqttConfig = section(MqttConfig, "Connection to the clinic MQTT broker.")  # noqa: RUF009
    store: StoreConfig = section(StoreConfig, "Storage of received transcripts.")  # noqa: RUF009
    ingest: IngestConfig = section(IngestConfig, "Limits on accepted messages.")  # noqa: RUF009
    notes: NotesConfig = section(NotesConfig, "Note generation after a transcript is stored.")  # noqa: RUF009
    llm: LlmConfig = section(LlmConfig, "LLM server for the llm generator and assistant commands.")  # noqa: RUF009
    web: WebConfig = section(WebConfig, "The clinic web view (`clinic web`): review, sign, export notes.")  # noqa: RUF009


def load_clinic_config(path: str | None) -> ClinicConfig:
    """Read the TOML file (None: all defaults), or raise ConfigError naming file, key and value."""
    if path is None:
        return ClinicConfig()
    cfg = build_section(ClinicConfig, read_toml(path), path)
    if cfg.store.backend == "postgresql" and not cfg.store.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(path, "store.url", "backend \"postgresql\" needs a postgresql:// URL", cfg.store.url)
    return cfg


def describe() -> str:
    """Every key with its default and description, as a commented TOML file (defaults, not the loaded
    values: the file may hold secrets such as llm.api_key)."""
    return commented_toml(ClinicConfig(), "clinic.toml: every key with its description.")
