"""A paho-mqtt (v2 callback API) client set up the same way on the device and the clinic server."""

from __future__ import annotations

import os
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# MQTT 5 session expiry meaning "never": the broker's persistent_client_expiration then decides,
# exactly as for an MQTT 3.1.1 client with clean_session=false.
_SESSION_NEVER_EXPIRES = 0xFFFFFFFF
# PUBLISH bytes around the payload: fixed header (≤ 5), topic length (2), packet id (2) and the
# properties length (1; we send none), with headroom.
PUBLISH_OVERHEAD = 16


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
    """MQTT 5, so the broker says why it refuses something: a publish the ACL denies gets a
    "Not authorized" PUBACK, an oversized packet a "Packet too large" DISCONNECT, and the CONNACK
    carries the broker's maximum packet size. Certificates: a client one proves who we are (the
    broker takes the user name, and the client id, from its common name), the CA one who the
    broker is. Connect with connect() below."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
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


def connect(client: mqtt.Client, host: str, port: int, keepalive: int, *, persistent: bool = True,
            wait: bool = False) -> None:
    """Connect (`wait`: now, raising on failure; else in the background, retried by the loop).

    `persistent`: resume the session and keep it while offline (clean start off, no expiry), so
    QoS 1 messages addressed to a client that is away wait at the broker: acks and notes for a
    device, transcripts for the clinic server. One-shot tools start clean and leave nothing behind.
    """
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = _SESSION_NEVER_EXPIRES
    how = client.connect if wait else client.connect_async
    how(host, port, keepalive=keepalive, clean_start=not persistent, properties=props)


def max_packet_size(properties: Properties | None) -> int | None:
    """The broker's packet size limit from its CONNACK properties (None: it states none)."""
    value = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
    return int(value) if value else None
