"""The broker ACL generated from the registries, enforced by a real Mosquitto 2.

Buses publish only under their own vehicle id, 5G devices only under their own device id
and their trials' sites, neither in the other namespace. In MQTT 5 Mosquitto answers a
denied QoS 1 publish with PUBACK 0x87 (not authorized); a denied QoS 0 publish is dropped
and the connection closed (Mosquitto 2.0, eclipse-mosquitto/mosquitto#2579). Both are
asserted, waiting on events.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from core.broker import (
    Account,
    bus_account,
    hash_password,
    merge_accounts,
    render_acl,
    service_accounts,
)
from core.embedded import EmbeddedMosquitto, server_dir
from fiveg.store import save_trial
from fiveg.trial import load_definition
from ingest.streams import STREAMS, Stream
from mobility.vehicles.registry import VehicleError, add_vehicle, retire_vehicle
from tests.conftest import REPO_ROOT
from tests.core.test_cli_and_deploy import mebuku

NOT_AUTHORIZED = 0x87
WAIT = 10.0


class Device:
    """An MQTT 5 client that records PUBACK reason codes and received messages."""

    def __init__(
        self,
        port: int,
        user: str,
        password: str | None,
        prepare: Callable[[mqtt.Client], object] | None = None,
    ) -> None:
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        if password is not None:
            self.c.username_pw_set(user, password)
        self.cond = threading.Condition()
        self.connack: ReasonCode | None = None
        self.acks: dict[int, ReasonCode] = {}
        self.received: list[tuple[str, bytes]] = []
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.disconnected = threading.Event()
        self.c.on_disconnect = lambda *_a: self.disconnected.set()
        self.subscribed = threading.Event()
        self.suback_refused = False
        if prepare is not None:  # e.g. tls_set()
            prepare(self.c)
        self.c.connect("localhost" if prepare else "127.0.0.1", port)
        self.c.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        with self.cond:
            self.connack = rc
            self.cond.notify_all()

    def _on_publish(self, _c: object, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with self.cond:
            self.acks[mid] = rc
            self.cond.notify_all()

    def _on_message(self, _c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.received.append((m.topic, bytes(m.payload)))
            self.cond.notify_all()

    def _on_subscribe(
        self, _c: object, _u: object, _mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        with self.cond:
            if all(not rc.is_failure for rc in codes):
                self.subscribed.set()
            else:
                self.suback_refused = True
            self.cond.notify_all()

    def wait_connack(self) -> ReasonCode:
        with self.cond:
            assert self.cond.wait_for(lambda: self.connack is not None, WAIT), "no CONNACK"
            assert self.connack is not None
            return self.connack

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> ReasonCode | None:
        """Publish; for QoS 1 wait for the PUBACK and return its reason code."""
        info = self.c.publish(topic, payload, qos=qos)
        if qos == 0:
            info.wait_for_publish(WAIT)
            return None
        with self.cond:
            assert self.cond.wait_for(lambda: info.mid in self.acks, WAIT), "no PUBACK"
            return self.acks[info.mid]

    def wait_for(self, topic: str, payload: bytes) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: (topic, payload) in self.received, WAIT)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture(scope="module")
async def registries(db_url: str, anyio_backend: str) -> str:
    """Two buses (and a retired one), and the demo trials' 5G devices."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_vehicle(conn, "av-01", "gunma-chuo", "自動運転シャトル")
        add_vehicle(conn, "bus-7", "nippon-chuo")
        add_vehicle(conn, "old-3", "gunma-chuo")
        retire_vehicle(conn, "old-3")

    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for name in ("demo-transport", "demo-education"):
            await save_trial(conn, load_definition(REPO_ROOT / f"fiveg/demo_trials/{name}.toml"))
    return db_url


@pytest.fixture(scope="module")
def acl_text(registries: str) -> str:
    out = mebuku("broker", "acl", env={"MEBUKU_DATABASE_URL": registries})
    assert out.returncode == 0, out.stderr
    return out.stdout


USERS = ("mebuku-ingest", "av-01", "bus-7", "phone-av-01-1", "phone-campus-1")


@pytest.fixture(scope="module")
def broker(acl_text: str) -> Iterator[tuple[EmbeddedMosquitto, dict[str, str]]]:
    root = server_dir("mebuku-acl-")
    acl = root / "acl.in"
    acl.write_text(acl_text)
    pw_file = root / "passwd.in"
    out = mebuku("broker", "passwd", *USERS, "--file", str(pw_file))
    assert out.returncode == 0, out.stderr
    passwords = dict(line.split("\t") for line in out.stdout.splitlines())
    assert set(passwords) == set(USERS)
    b = EmbeddedMosquitto(root / "broker", acl_file=acl, password_file=pw_file)
    b.start()
    yield b, passwords
    b.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ingest(broker: tuple[EmbeddedMosquitto, dict[str, str]]) -> Iterator[Device]:
    b, pw = broker
    d = Device(b.port, "mebuku-ingest", pw["mebuku-ingest"])
    assert not d.wait_connack().is_failure
    d.c.subscribe("maebashi/#", qos=1)
    assert d.subscribed.wait(WAIT)
    yield d
    d.close()


@pytest.fixture
def connect(broker: tuple[EmbeddedMosquitto, dict[str, str]]) -> Iterator[object]:
    b, pw = broker
    opened: list[Device] = []

    def open_(user: str) -> Device:
        d = Device(b.port, user, pw[user])
        assert not d.wait_connack().is_failure, d.connack
        opened.append(d)
        return d

    yield open_
    for d in opened:
        d.close()


def test_generated_acl_lists_exactly_the_registered_topics(acl_text: str) -> None:
    assert not any(line.startswith("pattern") for line in acl_text.splitlines())
    assert "user av-01\ntopic write maebashi/bus/av-01/telemetry\n" in acl_text
    assert "topic write maebashi/bus/av-01/event" in acl_text
    assert "old-3" not in acl_text  # retired
    # A roaming phone may use both sites of its trial, a campus phone only the campus.
    assert "topic write maebashi/5g/chuo-maebashi/phone-av-01-1/radio" in acl_text
    assert "topic write maebashi/5g/maebashi-station/phone-av-01-1/senml" in acl_text
    campus = acl_text.split("user phone-campus-1\n", 1)[1].split("\n\n", 1)[0]
    assert campus.splitlines() == [
        "topic write maebashi/5g/campus/phone-campus-1/radio",
        "topic write maebashi/5g/campus/phone-campus-1/senml",
        "topic write maebashi/5g/campus/phone-campus-1/status",  # heartbeats (issue 12)
    ]
    assert "user mebuku-ingest\ntopic read maebashi/#" in acl_text


def test_bus_publishes_under_its_own_id_only(ingest: Device, connect) -> None:
    bus = connect("av-01")
    ok = b'{"ok": 1}'
    assert not bus.publish("maebashi/bus/av-01/telemetry", ok).is_failure
    assert ingest.wait_for("maebashi/bus/av-01/telemetry", ok)
    assert not bus.publish("maebashi/bus/av-01/event", ok).is_failure
    assert ingest.wait_for("maebashi/bus/av-01/event", ok)

    for topic in (
        "maebashi/bus/bus-7/telemetry",  # another bus
        "maebashi/bus/av-01/other",  # not a telemetry or event topic
        "maebashi/5g/campus/av-01/radio",  # the other namespace
        "maebashi/5g/campus/phone-campus-1/radio",
    ):
        rc = bus.publish(topic, b"forged")
        assert rc is not None and rc.value == NOT_AUTHORIZED, (topic, rc)
    assert all(p != b"forged" for _t, p in ingest.received)


def test_denied_qos0_publish_is_dropped_and_the_device_disconnected(
    ingest: Device, connect
) -> None:
    # Mosquitto 2.0 has no way to refuse a QoS 0 publish in-band: it drops the message and
    # closes the connection ("Bad socket read/write", eclipse-mosquitto/mosquitto#2579).
    bus = connect("bus-7")
    bus.c.publish("maebashi/bus/av-01/telemetry", b"qos0-forged", qos=0)
    assert bus.disconnected.wait(WAIT), "the broker kept the connection"
    # Messages are routed in the order the broker handles them: once a later allowed one
    # has arrived, the forged one would have arrived before it.
    again = connect("bus-7")
    marker = uuid.uuid4().hex.encode()
    assert not again.publish("maebashi/bus/bus-7/telemetry", marker).is_failure
    assert ingest.wait_for("maebashi/bus/bus-7/telemetry", marker)
    assert ("maebashi/bus/av-01/telemetry", b"qos0-forged") not in ingest.received


def test_5g_device_publishes_for_its_own_sites_and_id_only(ingest: Device, connect) -> None:
    phone = connect("phone-campus-1")
    ok = uuid.uuid4().hex.encode()
    assert not phone.publish("maebashi/5g/campus/phone-campus-1/radio", ok).is_failure
    assert ingest.wait_for("maebashi/5g/campus/phone-campus-1/radio", ok)
    for topic in (
        "maebashi/5g/maebashi-station/phone-campus-1/radio",  # a site outside its trial
        "maebashi/5g/campus/phone-campus-2/radio",  # another device at its site
        "maebashi/bus/phone-campus-1/event",  # the other namespace
    ):
        rc = phone.publish(topic, b"forged")
        assert rc is not None and rc.value == NOT_AUTHORIZED, (topic, rc)

    roaming = connect("phone-av-01-1")
    for site in ("maebashi-station", "chuo-maebashi"):
        topic = f"maebashi/5g/{site}/phone-av-01-1/radio"
        assert not roaming.publish(topic, ok).is_failure
        assert ingest.wait_for(topic, ok)
    rc = roaming.publish("maebashi/5g/campus/phone-av-01-1/radio", b"forged")
    assert rc is not None and rc.value == NOT_AUTHORIZED


def test_devices_read_nothing(ingest: Device, connect) -> None:
    bus = connect("av-01")
    bus.c.subscribe("maebashi/#", qos=1)  # granted or refused, it must deliver nothing
    with bus.cond:
        assert bus.cond.wait_for(lambda: bus.subscribed.is_set() or bus.suback_refused, WAIT)
    other = connect("bus-7")
    marker = uuid.uuid4().hex.encode()
    assert not other.publish("maebashi/bus/bus-7/telemetry", marker).is_failure
    assert ingest.wait_for("maebashi/bus/bus-7/telemetry", marker)
    # A round trip on av-01's own connection: anything queued to it before arrives first.
    assert not bus.publish("maebashi/bus/av-01/event", b"barrier").is_failure
    assert bus.received == []


@pytest.mark.parametrize(("user", "password"), [("av-01", "wrong-password"), ("av-01", None)])
def test_wrong_or_missing_credentials_are_refused(
    broker: tuple[EmbeddedMosquitto, dict[str, str]], user: str, password: str | None
) -> None:
    d = Device(broker[0].port, user, password)
    try:
        rc = d.wait_connack()
        assert rc.is_failure and rc.value in (0x86, NOT_AUTHORIZED), rc
    finally:
        d.close()


def test_unsafe_registry_ids_are_left_out() -> None:
    services = service_accounts(simulator=False)
    accounts, problems = merge_accounts(
        services,
        [
            bus_account("ok-1"),
            bus_account("evil/#"),
            bus_account("a b"),
            bus_account("mebuku-ingest"),
            Account("x", write=("maebashi/+/x",)),
        ],
    )
    assert [a.username for a in accounts] == ["mebuku-ingest", "ok-1"]
    assert len(problems) == 4
    text = render_acl(accounts)
    assert "evil" not in text and "simulator" not in text


def test_vehicle_registry_refuses_unsafe_ids_and_takeover(
    registries: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "en")  # the registry speaks the process language
    with psycopg.connect(registries, autocommit=True) as conn:
        for bad in ("a/b", "+", "#", "x y", "", "ü"):
            with pytest.raises(VehicleError):
                add_vehicle(conn, bad, "gunma-chuo")
        with pytest.raises(VehicleError, match="another operator"):
            add_vehicle(conn, "av-01", "nippon-chuo")
        monkeypatch.setenv("MEBUKU_LANG", "ja")
        with pytest.raises(VehicleError, match="別の事業者"):
            add_vehicle(conn, "av-01", "nippon-chuo")


def test_password_hash_is_mosquittos_format(tmp_path: Path) -> None:
    h = hash_password("pw", salt=b"\x00" * 12)
    assert h.startswith("$7$20000$AAAAAAAAAAAAAAAA$")
    bad = mebuku("broker", "passwd", "a/b", "--file", str(tmp_path / "p"), env=EN)
    assert bad.returncode == 2 and "not a safe broker id" in bad.stderr
    bad = mebuku(
        "broker", "passwd", "a/b", "--file", str(tmp_path / "p"), env={"MEBUKU_LANG": "ja"}
    )
    assert bad.returncode == 2 and "ブローカーのIDとして使えない" in bad.stderr


EN = {"MEBUKU_LANG": "en"}


def test_vehicle_registry_from_the_command_line(registries: str) -> None:
    env = {"MEBUKU_DATABASE_URL": registries}
    added = mebuku("mobility", "vehicles", "add", "av-09", "--operator", "gunma-chuo", env=env)
    assert added.returncode == 0, added.stderr
    listed = mebuku("mobility", "vehicles", "list", env=env)
    assert "av-09" in listed.stdout and "gunma-chuo" in listed.stdout
    acl = mebuku("broker", "acl", "--no-simulator", env=env)
    assert "topic write maebashi/bus/av-09/event" in acl.stdout
    assert "mebuku-simulator" not in acl.stdout
    assert mebuku("mobility", "vehicles", "retire", "av-09", env=env).returncode == 0
    assert "av-09" not in mebuku("broker", "acl", env=env).stdout
    ja = env | {"MEBUKU_LANG": "ja"}
    bad = mebuku("mobility", "vehicles", "add", "av/#", "--operator", "x", env=ja)
    assert bad.returncode == 1 and "トピックの1階層" in bad.stderr
    bad = mebuku("mobility", "vehicles", "add", "av/#", "--operator", "x", env=env | EN)
    assert bad.returncode == 1 and "one topic level" in bad.stderr


@pytest.mark.parametrize("stream", STREAMS, ids=[s.topic.rsplit("/", 1)[1] for s in STREAMS])
def test_every_catalogue_stream_is_open_to_its_own_device_only(
    ingest: Device, connect, stream: Stream
) -> None:
    # The stream catalogue (ingest/streams.py) against the real broker: a new stream whose
    # topic the ACL generator does not grant fails here.
    own = {"vehicle_id": "av-01", "site_id": "campus", "device_id": "phone-campus-1"}
    other = {"vehicle_id": "bus-7", "site_id": "campus", "device_id": "phone-campus-2"}
    device = connect(own["vehicle_id"] if "vehicle_id" in stream.ids else own["device_id"])
    ok = uuid.uuid4().hex.encode()
    topic = stream.topic_for(**{k: own[k] for k in stream.ids})
    assert not device.publish(topic, ok).is_failure
    assert ingest.wait_for(topic, ok)
    forged = stream.topic_for(**{k: other[k] for k in stream.ids})
    rc = device.publish(forged, b"forged")
    assert rc is not None and rc.value == NOT_AUTHORIZED, (forged, rc)
