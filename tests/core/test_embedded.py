"""The throwaway servers survive what recovery tests do to them: kill -9 and restarts."""

from __future__ import annotations

import shutil
import threading

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.embedded import EmbeddedMosquitto, EmbeddedPostgres, server_dir
from tests.support.wait import wait_until


def test_postgres_keeps_committed_data_across_kill_and_restart() -> None:
    root = server_dir()
    pg = EmbeddedPostgres(root, durable=True)
    try:
        pg.start()
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (1), (2)")
        pg.kill()
        assert not pg.running
        pg.start()
        with psycopg.connect(pg.url()) as conn:
            assert conn.execute("SELECT sum(v) FROM kept").fetchone() == (3,)
        port = pg.port
        pg.restart()
        assert pg.port == port and pg.running
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def _client(client_id: str, port: int, received: list[bytes] | None = None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if received is not None:
        c.on_message = lambda _c, _u, msg: received.append(bytes(msg.payload))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    return c


def test_mosquitto_keeps_an_offline_session_queue_across_restart() -> None:
    root = server_dir()
    broker = EmbeddedMosquitto(root)
    try:
        broker.start()
        sub = _client("persistent-sub", broker.port)
        sub.loop_start()
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_a: subscribed.set()
        sub.subscribe("t/#", qos=1)
        assert subscribed.wait(5)
        sub.disconnect()
        sub.loop_stop()

        pub = _client("pub", broker.port)
        pub.loop_start()
        # More than Mosquitto's default max_queued_messages (1,000): none may be dropped.
        infos = [pub.publish("t/x", str(i).encode(), qos=1) for i in range(1500)]
        for info in infos:
            info.wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()

        broker.restart()  # SIGTERM saves the persistence file

        received: list[bytes] = []
        sub = _client("persistent-sub", broker.port, received)
        sub.loop_start()
        wait_until(lambda: len(received) >= 1500, 15, every=0.05)  # all asserted below
        sub.disconnect()
        sub.loop_stop()
        assert sorted(int(p) for p in received) == list(range(1500))
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
