"""Ingest benchmark: one worker against the bare MQTT consumer limit, broker QoS 1 limit,
raw COPY, naive ingestor, mebuku ingest x1/x2, and publish-to-commit latency at a steady
rate. Prints a table.

The first rows queue one backlog for two persistent sessions at once, then drain it with
a bare paho consumer (QoS 1, no parsing, no database: the limit of one MQTT consumer on
this machine) and with one `mebuku ingest`, and print the worker's share of that limit;
zero loss is checked by counting the stored rows.

    .venv/bin/python bench/ingest_bench.py            # 60 s per throughput run
    .venv/bin/python bench/ingest_bench.py --quick    # 10 s per run

Starts its own PostgreSQL (durable: fsync and synchronous_commit on, like production)
and Mosquitto (the embedded config: persistence, no queue limits). Publishers are
separate processes sending bus telemetry at QoS 1 with the current time as ``ts``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import migrator  # noqa: E402
from core.db import create_database, drop_database  # noqa: E402
from core.embedded import EmbeddedMosquitto, EmbeddedPostgres, free_port, server_dir  # noqa: E402
from core.settings import Settings  # noqa: E402


def payload(vehicle: int, i: int) -> bytes:
    return json.dumps(
        {
            "ts": int(time.time() * 1000),
            "seq": i,
            "lat": 36.38 + (i % 1000) * 1e-5,
            "lon": 139.07 + (vehicle % 100) * 1e-5,
            "speed_mps": 8.3,
            "heading_deg": 12.0,
            "odometer_m": 1000.0 + i,
            "mode": "autonomous",
            "door_open": False,
            "passengers": 7,
            "route_id": "bench",
            "soc_pct": 80.0,
        },
        separators=(",", ":"),
    ).encode()


def publisher(port: int, proc: int, seconds: float, rate: float, counter: Any) -> None:
    """Publish telemetry of 4,000 vehicles for ``seconds`` (rate 0 = flat out)."""
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{proc}-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    c.max_inflight_messages_set(2000)
    acked = [0]
    cond = threading.Condition()

    def on_pub(*_a: object) -> None:
        with cond:
            acked[0] += 1
            cond.notify()

    c.on_publish = on_pub
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.monotonic()
    i = 0
    vehicles = 4000
    while time.monotonic() - t0 < seconds:
        if rate > 0:
            due = t0 + i / rate
            if (w := due - time.monotonic()) > 0:
                time.sleep(w)
        with cond:
            while i - acked[0] >= 4000:
                cond.wait(0.5)
        v = i % vehicles
        # a vehicle repeats every 4,000 messages, so (vehicle, ts ms) stays unique
        c.publish(f"maebashi/bus/b{proc}-{v:04d}/telemetry", payload(v, i), qos=1)
        i += 1
    with cond:
        while acked[0] < i:
            cond.wait(0.5)
    c.disconnect()
    c.loop_stop()
    with counter.get_lock():
        counter.value += i


def flood(port: int, procs: int, seconds: float, rate: float = 0.0) -> tuple[list[mp.Process], Any]:
    counter = mp.Value("q", 0)
    ps = [
        mp.Process(target=publisher, args=(port, k, seconds, rate / procs, counter))
        for k in range(procs)
    ]
    for p in ps:
        p.start()
    return ps, counter


def bench_broker(broker: EmbeddedMosquitto, seconds: float, procs: int) -> float:
    got = [0]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv5)
    c.on_message = lambda *_a: got.__setitem__(0, got[0] + 1)
    c.connect("127.0.0.1", broker.port)
    c.subscribe("maebashi/#", qos=1)
    c.loop_start()
    time.sleep(0.5)
    ps, sent = flood(broker.port, procs, seconds)
    t0 = time.monotonic()
    for p in ps:
        p.join()
    while got[0] < sent.value and time.monotonic() - t0 < seconds + 30:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    c.disconnect()
    c.loop_stop()
    return got[0] / elapsed


def fresh_broker(old: EmbeddedMosquitto, roots: list[Path]) -> EmbeddedMosquitto:
    """A new broker with empty persistence: no session of an earlier run gets copies."""
    old.stop()
    roots.append(server_dir("mebuku-bench-mqtt-"))
    b = EmbeddedMosquitto(roots[-1])
    b.start()
    return b


def fresh_db(pg: EmbeddedPostgres, name: str) -> str:
    drop_database(pg.url(), name)
    create_database(pg.url(), name, template="bench_tmpl")
    return pg.url(name)


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM bus_telemetry").fetchone()[0])  # type: ignore[index]


def bench_copy(url: str, rows: int) -> float:
    base = datetime.now(UTC) - timedelta(days=1)
    data = [
        (
            f"c{i % 2000:04d}",
            base + timedelta(milliseconds=i),
            i,
            36.38,
            139.07,
            8.3,
            12.0,
            1000.0,
            "autonomous",
            False,
            7,
            None,
            "bench",
            80.0,
        )
        for i in range(rows)
    ]
    cols = (
        "vehicle_id, ts, seq, lat, lon, speed_mps, heading_deg, odometer_m, mode, door_open,"
        " passengers, trip_id, route_id, soc_pct"
    )
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY bus_telemetry ({cols}) FROM STDIN") as cp:
            for r in data:
                cp.write_row(r)
        conn.commit()
    return rows / (time.perf_counter() - t0)


def bench_naive(url: str, broker: EmbeddedMosquitto, seconds: float, procs: int) -> float:
    """The tutorial design: parse in on_message, INSERT and COMMIT per message."""
    conn = psycopg.connect(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-naive", protocol=mqtt.MQTTv5)

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        d = json.loads(m.payload)
        conn.execute(
            "INSERT INTO bus_telemetry (vehicle_id, ts, seq, lat, lon, speed_mps, heading_deg,"
            " odometer_m, mode, door_open, passengers, route_id, soc_pct) VALUES (%s, "
            "to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [
                m.topic.split("/")[2],
                d["ts"],
                d["seq"],
                d["lat"],
                d["lon"],
                d["speed_mps"],
                d["heading_deg"],
                d["odometer_m"],
                d["mode"],
                d["door_open"],
                d["passengers"],
                d["route_id"],
                d["soc_pct"],
            ],
        )
        conn.commit()

    c.on_message = on_message
    c.connect("127.0.0.1", broker.port)
    c.subscribe("maebashi/#", qos=1)
    c.loop_start()
    time.sleep(0.5)
    n0, t0 = stored(url), time.monotonic()
    ps, _ = flood(broker.port, procs, seconds)
    for p in ps:
        p.join()
    rate = (stored(url) - n0) / (time.monotonic() - t0)
    c.disconnect()
    c.loop_stop()
    conn.close()
    return rate


def start_workers(
    url: str, broker: EmbeddedMosquitto, n: int, group: str, settle: float = 3.0
) -> list[tuple[subprocess.Popen[bytes], int]]:
    out = []
    for k in range(n):
        port = free_port()
        env = {
            **os.environ,
            "MEBUKU_DATABASE_URL": url,
            "MEBUKU_MQTT_URL": broker.url,
            "MEBUKU_METRICS_PORT": str(port),
            "MEBUKU_LOG_LEVEL": "WARNING",
        }
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core.cli",
                "ingest",
                "--group",
                group,
                "--instance",
                str(k),
                "--client-id",
                f"bench-ingest-{group or 'plain'}-{k}",
            ],
            env=env,
            cwd=ROOT,
        )
        out.append((p, port))
    time.sleep(settle)
    return out


def stop_workers(ws: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    for p, _ in ws:
        p.terminate()
    for p, _ in ws:
        p.wait(60)


def bench_ingest(
    url: str, broker: EmbeddedMosquitto, workers: int, seconds: float, procs: int
) -> tuple[float, float, int, int]:
    """(rows/s while publishing, rows/s to fully drained, sent, stored)."""
    # one worker: a plain subscription; several: a shared-subscription group
    ws = start_workers(url, broker, workers, "" if workers == 1 else f"bench{workers}")
    n0, t0 = stored(url), time.monotonic()
    ps, sent = flood(broker.port, procs, seconds)
    for p in ps:
        p.join()
    t_pub = time.monotonic()
    during = (stored(url) - n0) / (t_pub - t0)
    deadline = t_pub + 120
    while stored(url) - n0 < sent.value and time.monotonic() < deadline:
        time.sleep(0.1)
    total = stored(url) - n0
    drained = total / (time.monotonic() - t0)
    stop_workers(ws)
    return during, drained, sent.value, total


def make_session(port: int, client_id: str) -> None:
    """Create a persistent QoS 1 session on maebashi/# and leave: the broker queues for it."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    done = threading.Event()
    c.on_subscribe = lambda *_a: done.set()
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.subscribe("maebashi/#", qos=1)
    c.loop_start()
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def drain_bare(port: int, client_id: str, expect: int) -> tuple[float, int]:
    """A bare paho consumer resumes its session and drains it at QoS 1 (acks after each
    callback, no parsing, no database): the limit of one MQTT consumer here."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 10000  # what the worker asks for too
    state = {"n": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(*_a: object) -> None:
        state["n"] += 1
        now = time.monotonic()
        if state["n"] == 1:
            state["first"] = now
        state["last"] = now
        if state["n"] >= expect:
            done.set()

    c.on_message = on_message
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    done.wait(600)
    c.disconnect()
    c.loop_stop()
    n = int(state["n"])
    return (n - 1) / max(state["last"] - state["first"], 1e-9), n


def metric_value(port: int, name: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0.0
    for line in text.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


@dataclass
class Drain:
    """One backlog drained twice: by the bare consumer and by one worker."""

    sent: int
    bare_rate: float  # msg/s
    bare_got: int
    worker_rate: float  # msg/s
    stored: int
    # CPU microseconds per message while draining: the bare consumer's process, the
    # worker's MQTT process and its writer process (parse + COPY)
    bare_cpu: float
    mqtt_cpu: float
    writer_cpu: float


def bench_drain(url: str, broker: EmbeddedMosquitto, seconds: float, procs: int) -> Drain:
    """The same queued backlog drained by a bare consumer, then by one `mebuku ingest`.

    Both sessions exist before the flood, so the broker queues every message for each.
    The bare rate runs from its first to its last message; the worker's from its
    connection to the broker (the writer process is started and ready before that) to
    its last acknowledgement after a commit (its /healthz, polled every 0.1 s), so
    process start-up is not in it but its first batch's wait and commit are. CPU time
    per message (from /proc, over the same spans) does not depend on how busy the
    shared machine is.
    """
    make_session(broker.port, "bench-bare")
    # the worker's own session (its client id and subscription), created up front so a
    # slow worker start-up cannot miss the flood
    make_session(broker.port, "bench-ingest-plain-0")
    ps, sent = flood(broker.port, procs, seconds)
    for p in ps:
        p.join()
    n = sent.value
    print(f"queued {n:,}; load average {load()}", flush=True)
    c0 = time.process_time()
    bare_rate, bare_got = drain_bare(broker.port, "bench-bare", n)
    bare_cpu = time.process_time() - c0
    ws = start_workers(url, broker, 1, "", settle=0)
    pid, port = ws[0][0].pid, ws[0][1]
    t_first = t_last = 0.0
    cpu0 = cpu = (0.0, 0.0)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        h = healthz(port)
        if not t_first:
            if h.get("mqtt_connected"):
                t_first, cpu0 = time.monotonic(), cpu_seconds(pid)
        elif h.get("acknowledged", 0) >= n:
            t_last, cpu = time.monotonic(), cpu_seconds(pid)
            break
        time.sleep(0.1)
    got = stored(url)
    stop_workers(ws)
    worker_rate = n / max(t_last - t_first, 1e-9) if t_last else 0.0
    per = 1e6 / max(n, 1)
    return Drain(
        n,
        bare_rate,
        bare_got,
        worker_rate,
        got,
        bare_cpu * per,
        (cpu[0] - cpu0[0]) * per,
        (cpu[1] - cpu0[1]) * per,
    )


def drain_rows(d: Drain) -> list[tuple[str, str, str]]:
    """The table rows of a backlog drain."""
    loss = "zero loss" if d.stored == d.sent else f"LOST {d.sent - d.stored}"
    return [
        (
            "bare paho consumer (QoS 1, no parsing, no database), draining a backlog",
            f"{d.bare_rate:,.0f} msg/s",
            f"{d.sent:,} queued, {d.bare_got:,} received; {d.bare_cpu:.0f} us CPU per message",
        ),
        (
            "mebuku ingest, 1 worker, draining the same backlog",
            f"{d.worker_rate:,.0f} msg/s",
            f"{d.sent:,} queued, {d.stored:,} stored: {loss}; "
            f"**{d.worker_rate / max(d.bare_rate, 1):.0%} of the bare consumer**",
        ),
        (
            "CPU per message while draining (independent of the machine's load)",
            f"MQTT process {d.mqtt_cpu:.0f} us + writer {d.writer_cpu:.0f} us",
            f"the bare consumer needs {d.bare_cpu:.0f} us: the MQTT process is at "
            f"{d.bare_cpu / max(d.mqtt_cpu, 1e-9):.0%} of its speed when it has a core",
        ),
    ]


def healthz(port: int) -> dict[str, Any]:
    """The worker's /healthz body (cheaper to poll than /metrics), {} until it answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return dict(json.loads(r.read()))
    except (OSError, ValueError):
        return {}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the worker process and of its writer process."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    writers = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmd:
                writers += of(int(entry.name))
    return of(pid), writers


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def histogram_quantiles(text: str, name: str, qs: tuple[float, ...]) -> list[float]:
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append(
                (float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1]))
            )
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    out = []
    for q in qs:
        rank, prev_le, prev_c = q * total, 0.0, 0.0
        for le, c in buckets:
            if c >= rank:
                if le == float("inf"):
                    out.append(prev_le)
                else:
                    f = 0 if c == prev_c else (rank - prev_c) / (c - prev_c)
                    out.append(prev_le + (le - prev_le) * f)
                break
            prev_le, prev_c = le, c
    return out


def bench_latency(
    url: str, broker: EmbeddedMosquitto, rate: float, seconds: float, procs: int
) -> tuple[float, float, float]:
    ws = start_workers(url, broker, 1, "")
    ps, sent = flood(broker.port, procs, seconds, rate=rate)
    t0 = time.monotonic()
    for p in ps:
        p.join()
    achieved = sent.value / (time.monotonic() - t0)
    time.sleep(2)
    text = urllib.request.urlopen(f"http://127.0.0.1:{ws[0][1]}/metrics").read().decode()
    p50, p95 = histogram_quantiles(text, "mebuku_ingest_lag_seconds", (0.5, 0.95))
    stop_workers(ws)
    return achieved, p50, p95


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="10 s per run instead of 60 s")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per throughput run")
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes")
    ap.add_argument(
        "--latency-rates", default="5000,2000", help="steady rates (msg/s) for the latency runs"
    )
    ap.add_argument("--copy-rows", type=int, default=500_000)
    ap.add_argument("--latency-only", action="store_true", help="skip the throughput runs")
    ap.add_argument("--backlog-only", action="store_true", help="only the backlog drain run")
    args = ap.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    roots = [server_dir("mebuku-bench-pg-"), server_dir("mebuku-bench-mqtt-")]
    pg = EmbeddedPostgres(roots[0], durable=True)
    broker = EmbeddedMosquitto(roots[1])
    results: list[tuple[str, str, str]] = []
    try:
        pg.start()
        broker.start()
        create_database(pg.url(), "bench_tmpl")
        tmpl = pg.url("bench_tmpl")
        migrator.migrate(tmpl, Settings(database_url=tmpl, _env_file=None))
        print(
            f"{os.cpu_count()} CPUs, {seconds:.0f} s per run, {args.publishers} publishers",
            flush=True,
        )

        if not args.latency_only:
            url = fresh_db(pg, "bench_backlog")
            d = bench_drain(url, broker, seconds, args.publishers)
            results += drain_rows(d)
            for row in results[-3:]:
                print(row, flush=True)
            loss = "zero loss" if d.stored == d.sent else f"LOST {d.sent - d.stored}"
            print(
                f"RATIO worker / bare consumer = {d.worker_rate / max(d.bare_rate, 1):.0%} "
                f"({d.worker_rate:,.0f} / {d.bare_rate:,.0f} msg/s, {loss}); CPU per message: "
                f"bare {d.bare_cpu:.0f} us, worker MQTT process {d.mqtt_cpu:.0f} us "
                f"(bare / MQTT process = {d.bare_cpu / max(d.mqtt_cpu, 1e-9):.0%}), writer "
                f"process {d.writer_cpu:.0f} us; load average {load()}",
                flush=True,
            )
            broker = fresh_broker(broker, roots)
        if not (args.latency_only or args.backlog_only):
            r = bench_broker(broker, seconds, args.publishers)
            results.append(
                ("broker QoS 1 limit (publishers -> bare subscriber)", f"{r:,.0f} msg/s", "")
            )
            print(results[-1], flush=True)
            broker = fresh_broker(broker, roots)

            url = fresh_db(pg, "bench_copy")
            r = bench_copy(url, args.copy_rows)
            results.append(
                ("raw COPY into bus_telemetry", f"{r:,.0f} rows/s", f"{args.copy_rows:,} rows")
            )
            print(results[-1], flush=True)

            url = fresh_db(pg, "bench_naive")
            r = bench_naive(url, broker, seconds, args.publishers)
            naive = r
            results.append(("naive ingestor (INSERT + COMMIT per message)", f"{r:,.0f} msg/s", ""))
            print(results[-1], flush=True)
            broker = fresh_broker(broker, roots)

            for n in (1, 2):
                url = fresh_db(pg, f"bench_ingest{n}")
                during, drained, sent, got = bench_ingest(url, broker, n, seconds, args.publishers)
                loss = "zero loss" if got == sent else f"LOST {sent - got}"
                results.append(
                    (
                        f"mebuku ingest, {n} worker{'s' if n > 1 else ''}",
                        f"{during:,.0f} msg/s ({drained:,.0f} to drained)",
                        f"{sent:,} sent, {got:,} stored: {loss}; "
                        f"{during / max(naive, 1):.1f}x naive",
                    )
                )
                print(results[-1], flush=True)
                broker = fresh_broker(broker, roots)

        for rate in (float(x) for x in args.latency_rates.split(",") if not args.backlog_only):
            url = fresh_db(pg, f"bench_latency{int(rate)}")
            achieved, p50, p95 = bench_latency(url, broker, rate, seconds, args.publishers)
            results.append(
                (
                    f"publish-to-commit latency at {rate:,.0f} msg/s (1 worker)",
                    f"p50 {p50 * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms",
                    f"achieved {achieved:,.0f} msg/s",
                )
            )
            print(results[-1], flush=True)
            broker = fresh_broker(broker, roots)
    finally:
        broker.stop()
        pg.stop()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print("| measurement | result | notes |\n| --- | --- | --- |")
    for name, value, note in results:
        print(f"| {name} | {value} | {note} |")


if __name__ == "__main__":
    main()
