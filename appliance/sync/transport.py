"""The outbox pump's link to the clinic over MQTT: paho's client, set up as common.mqtt sets it up
for both sides (MQTT 5, TLS with the device's certificate, a persistent session), and its
callbacks turned into the pump's TransportListener calls. No outbox logic here (pump.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from appliance.config.schema import DeviceConfig, SyncConfig
from appliance.sync.identity import mismatch, refusal_text
from appliance.sync.pump import TransportListener
from common.mqtt import PUBLISH_OVERHEAD, connect, make_client, max_packet_size
from common.protocol import Topics

log = logging.getLogger(__name__)
_PACKET_TOO_LARGE = 0x95  # MQTT 5 reason code of the broker's DISCONNECT


class MqttTransport:
    """The Transport of appliance.sync.pump over the clinic's Mosquitto."""

    def __init__(self, sc: SyncConfig, device: DeviceConfig) -> None:
        self.sc = sc
        self.device = device
        self.topics = Topics(sc.topic_prefix, device.site, device.id)
        self.client: mqtt.Client | None = None  # made by open()
        self._listener: TransportListener | None = None
        self._subscriptions: Sequence[str] = ()
        self._refusal = ""  # the sentence for the broker refusing our publishes (reads the certificate once)

    @property
    def peer(self) -> str:
        return f"{self.sc.broker_host}:{self.sc.broker_port}"

    def identity_problem(self) -> str:
        return mismatch(self.device, self.sc.cert_file) if self.sc.tls else ""

    def overhead(self, topic: str) -> int:
        return PUBLISH_OVERHEAD + len(topic.encode())

    def open(self, listener: TransportListener, subscriptions: Sequence[str], will: tuple[str, bytes]) -> None:
        sc = self.sc
        client = make_client(self.device.id, tls=sc.tls, ca_file=sc.ca_file, cert_file=sc.cert_file,
                             key_file=sc.key_file, max_inflight=100, reconnect_max_s=sc.reconnect_max_s)
        client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._listener, self._subscriptions, self.client = listener, subscriptions, client
        connect(client, sc.broker_host, sc.broker_port, sc.keepalive_s)
        client.loop_start()

    def publish(self, topic: str, data: bytes, *, retain: bool = False) -> None:
        assert self.client is not None, "publish before open"
        self.client.publish(topic, data, qos=1, retain=retain)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    # -- paho callbacks (its network thread) ------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, props: Any) -> None:
        assert self._listener is not None
        if reason.is_failure:
            error = f"broker refused the connection: {reason}"
            log.error("%s", error)
            self._listener.link_down(error)
            return
        client.subscribe([(topic, 1) for topic in self._subscriptions])
        self._listener.link_up(max_packet_size(props))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._listener is not None
        error = ""
        if reason.is_failure:
            error = f"the clinic broker closed the connection: {reason}"
            if reason.value == _PACKET_TOO_LARGE:
                error += f" (a message above its packet limit; [sync] chunk_bytes is {self.sc.chunk_bytes})"
        self._listener.link_down(error)

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        assert self._listener is not None
        if not reason.is_failure:
            self._refusal = ""
        elif not self._refusal:
            self._refusal = refusal_text(str(reason), self.topics, self.device, self.sc.cert_file)
        self._listener.delivery_refused(self._refusal)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        assert self._listener is not None
        self._listener.received(msg.topic, bytes(msg.payload))
