"""The readiness probes: an MQTT CONNECT of our own, against the real broker."""

from __future__ import annotations

import pytest

from api.readiness import check_broker, connect_packet, parse_connack
from core.embedded import EmbeddedMosquitto, EmbeddedPostgres
from core.settings import MqttAddress


def test_connect_packet_bytes() -> None:
    # MQTT 3.1.1 section 3.1: fixed header, "MQTT", level 4, flags, keepalive, payload.
    assert connect_packet("c", None, None, keepalive=10) == bytes.fromhex(
        "100d00044d5154540402000a000163"
    )
    with_login = connect_packet("c", "u", "p", keepalive=10)
    assert with_login[9] == 0xC2  # user name + password + clean session
    assert with_login.endswith(bytes.fromhex("000163000175000170"))
    long_id = connect_packet("x" * 200, None, None)
    assert long_id[1:3] == bytes([(212 % 128) | 0x80, 212 // 128])  # varint length


def test_parse_connack() -> None:
    assert parse_connack(bytes.fromhex("20020000")) == 0
    assert parse_connack(bytes.fromhex("20020005")) == 5
    for bad in (b"", bytes.fromhex("30020000"), b"HTTP"):
        try:
            parse_connack(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


@pytest.mark.anyio
async def test_probe_real_broker_and_failures(
    mqtt_broker: EmbeddedMosquitto, pg_server: EmbeddedPostgres
) -> None:
    addr = MqttAddress.model_validate(
        {"host": "127.0.0.1", "port": int(mqtt_broker.url.rsplit(":", 1)[1])}
    )
    assert await check_broker(addr) is None
    # A listening port that is not a broker (PostgreSQL) is not "ready".
    pg_port = int(pg_server.url().split("@", 1)[1].split(":")[1].split("/")[0])
    not_mqtt = MqttAddress(host="127.0.0.1", port=pg_port)
    reason = await check_broker(not_mqtt, timeout=2, lang="en")
    assert reason is not None and reason.startswith("broker unreachable")
    reason = await check_broker(not_mqtt, timeout=2)  # Japanese unless asked otherwise
    assert reason is not None and reason.startswith("ブローカーに接続できません：")
