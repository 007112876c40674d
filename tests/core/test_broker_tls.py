"""MQTT over TLS as the compose file runs it: devices on a TLS listener with their own
credentials, the platform's services on the plain listener, one ACL for both."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.broker import bus_account, merge_accounts, render_acl, service_accounts, set_passwords
from core.embedded import EmbeddedMosquitto, free_port, server_dir
from tests.certs import ServerCert, make_server_cert
from tests.conftest import REPO_ROOT
from tests.core.test_broker_acl import NOT_AUTHORIZED, WAIT, Device

PASSWORDS = {
    "av-01": "av-01-secret",
    "mebuku-ingest": "ingest-secret",
    "mebuku-simulator": "sim-pw",
}


@dataclass
class TlsBroker:
    broker: EmbeddedMosquitto
    tls_port: int
    cert: ServerCert


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[TlsBroker]:
    root = server_dir("mebuku-tls-")
    accounts, _ = merge_accounts(service_accounts(simulator=True), [bus_account("av-01")])
    (root / "acl.in").write_text(render_acl(accounts))
    set_passwords(root / "passwd.in", PASSWORDS)
    broker_root = root / "broker"
    cert = make_server_cert(broker_root / "certs", "mqtt")  # chowned to the broker's user
    tls_port = free_port()
    b = EmbeddedMosquitto(
        broker_root,
        acl_file=root / "acl.in",
        password_file=root / "passwd.in",
        extra_config=(
            f"listener {tls_port} 127.0.0.1\n"
            f"certfile {cert.cert}\nkeyfile {cert.key}\ntls_version tlsv1.2\n"
        ),
    )
    b.start()
    yield TlsBroker(b, tls_port, cert)
    b.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ingest(tls_broker: TlsBroker) -> Iterator[Device]:
    """The ingestor's account on the plain (compose-internal) listener."""
    d = Device(tls_broker.broker.port, "mebuku-ingest", PASSWORDS["mebuku-ingest"])
    assert not d.wait_connack().is_failure
    d.c.subscribe("maebashi/#", qos=1)
    assert d.subscribed.wait(WAIT)
    yield d
    d.close()


def _tls_client(port: int, ca: Path | None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex, protocol=mqtt.MQTTv5)
    c.username_pw_set("av-01", PASSWORDS["av-01"])
    c.tls_set(ca_certs=str(ca) if ca is not None else None)  # None: the system's CAs
    return c


def test_device_publishes_over_tls_and_the_acl_holds(tls_broker: TlsBroker, ingest: Device) -> None:
    bus = Device(
        tls_broker.tls_port,
        "av-01",
        PASSWORDS["av-01"],
        prepare=lambda c: c.tls_set(ca_certs=str(tls_broker.cert.ca)),
    )
    try:
        assert not bus.wait_connack().is_failure
        sock = bus.c.socket()
        assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.2", "TLSv1.3")
        marker = uuid.uuid4().hex.encode()
        ok = bus.publish("maebashi/bus/av-01/telemetry", marker)
        assert ok is not None and not ok.is_failure
        assert ingest.wait_for("maebashi/bus/av-01/telemetry", marker)
        rc = bus.publish("maebashi/bus/av-02/telemetry", b"forged")
        assert rc is not None and rc.value == NOT_AUTHORIZED
    finally:
        bus.close()


def test_a_client_that_does_not_trust_the_certificate_cannot_connect(tls_broker: TlsBroker) -> None:
    c = _tls_client(tls_broker.tls_port, None)  # system CAs only: the test CA is unknown
    with pytest.raises(ssl.SSLCertVerificationError):
        c.connect("localhost", tls_broker.tls_port)


def test_plain_mqtt_on_the_tls_port_gets_nowhere(tls_broker: TlsBroker) -> None:
    c2 = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex, protocol=mqtt.MQTTv5)
    c2.username_pw_set("av-01", PASSWORDS["av-01"])
    connected = threading.Event()
    gone = threading.Event()
    c2.on_connect = lambda *_a: connected.set()
    c2.on_disconnect = lambda *_a: gone.set()
    try:
        c2.connect("127.0.0.1", tls_broker.tls_port)
    except OSError:
        return  # refused outright
    c2.loop_start()
    try:
        assert gone.wait(WAIT) and not connected.is_set()
    finally:
        c2.disconnect()
        c2.loop_stop()


def test_simulator_publishes_over_mqtts(tls_broker: TlsBroker, ingest: Device) -> None:
    """The platform's own client over TLS: SSL_CERT_FILE makes it trust a private CA."""
    before = len(ingest.received)
    env = {
        **os.environ,
        "MEBUKU_MQTT_URL": f"mqtts://mebuku-simulator:{PASSWORDS['mebuku-simulator']}"
        f"@localhost:{tls_broker.tls_port}",
        "SSL_CERT_FILE": str(tls_broker.cert.ca),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "simulate",
            "--duration",
            "2",
            "--speed",
            "0",
            "--buses",
            "1",
            "--shuttles",
            "1",
            "--fixed-phones",
            "0",
            "--sensors",
            "0",
        ],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    with ingest.cond:
        assert ingest.cond.wait_for(lambda: len(ingest.received) > before, WAIT)
    assert PASSWORDS["mebuku-simulator"] not in out.stderr
