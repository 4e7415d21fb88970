"""A paho-mqtt (v2 callback API) client set up the same way on the device and the clinic server."""

from __future__ import annotations

import os
import ssl

import paho.mqtt.client as mqtt


def make_client(
    client_id: str,
    *,
    tls: bool,
    ca_file: str = "",
    cert_file: str = "",
    key_file: str = "",
    max_inflight: int = 100,
    reconnect_max_s: float = 5.0,
) -> mqtt.Client:
    """MQTT 3.1.1 with a persistent session (clean_session=False): QoS 1 messages addressed to a
    client that is offline wait at the broker. Certificates: a client one proves who we are
    (the broker takes the user name from its common name), the CA one who the broker is."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
    if tls:
        for what, path in (("CA certificate", ca_file), ("client certificate", cert_file), ("key", key_file)):
            if not path or not os.path.exists(path):
                raise FileNotFoundError(f"MQTT TLS {what} not found: {path!r}")
        client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file, cert_reqs=ssl.CERT_REQUIRED,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)  # unbounded in paho; callers bound what they hand it
    # paho doubles the wait from min_delay up to max_delay; it accepts fractions of a second.
    client.reconnect_delay_set(min_delay=min(1, reconnect_max_s), max_delay=reconnect_max_s)  # type: ignore[arg-type]
    return client
