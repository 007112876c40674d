"""The council's trial report: a PDF with a pass/fail scorecard, charts and definitions.

Built with reportlab (Japanese text in the bundled CID font HeiseiKakuGo-W5, so no font
files are needed) and matplotlib charts. Numbers come from :class:`fiveg.engine.TrialKpis`
unchanged, so the report says exactly what the API says.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from fiveg import histogram
from fiveg.engine import TrialKpis
from fiveg.kpi import BAND_NAMES

# IPAex Gothic (Debian: fonts-ipaexfont-gothic) is embedded when installed, so the PDF
# reads the same on any viewer; otherwise the CID font, which Japanese viewers supply.
FONT_FILES = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/ipaexfont-gothic/ipaexg.ttf",
)


def _register_font() -> str:
    for f in FONT_FILES:
        if Path(f).is_file():
            pdfmetrics.registerFont(TTFont("IPAexGothic", f))
            return "IPAexGothic"
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    return "HeiseiKakuGo-W5"


JP = _register_font()
TOKYO = ZoneInfo("Asia/Tokyo")
THEME_JA = {"transport": "交通 (自動運転バス遠隔監視)", "education": "教育 (遠隔授業)",
            "emergency": "救急 (救急車映像伝送)"}  # fmt: skip
GREEN = colors.HexColor("#1a7f37")
RED = colors.HexColor("#c62828")
AMBER = colors.HexColor("#9a6700")
GREY = colors.HexColor("#6e7781")

_base = ParagraphStyle("base", fontName=JP, fontSize=9.5, leading=13)
S = {
    "title": ParagraphStyle("title", _base, fontSize=18, leading=24, spaceAfter=4),
    "sub": ParagraphStyle("sub", _base, fontSize=11, leading=15, textColor=GREY),
    "h2": ParagraphStyle("h2", _base, fontSize=13, leading=18, spaceBefore=8, spaceAfter=4),
    "body": _base,
    "small": ParagraphStyle("small", _base, fontSize=8, leading=10.5, textColor=GREY),
    "cell": ParagraphStyle("cell", _base, fontSize=8.5, leading=11),
}


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    digits = 2 if abs(v) < 10 else (1 if abs(v) < 1000 else 0)
    s = f"{v:,.{digits}f}"
    return f"{s} {unit}".strip()


def _local(ts: datetime) -> str:
    return ts.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")


def _num(ts: datetime) -> float:
    return float(mdates.date2num(ts))  # type: ignore[no-untyped-call]


def _figure(width_in: float, height_in: float) -> tuple[Figure, Any]:
    """A figure of matplotlib's object API (no pyplot global state), so reports can render
    in parallel threads."""
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _png(fig: Figure, width_mm: float) -> Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    buf.seek(0)
    w, h = fig.get_size_inches()
    return Image(buf, width=width_mm * mm, height=width_mm * mm * h / w)


def _series_chart(k: TrialKpis, kpis: list[tuple[str, str]], title: str, unit: str) -> Image:
    fig, ax = _figure(7.2, 2.6)
    xs = sorted(k.per_bucket)
    for kpi, label in kpis:
        ys = [k.per_bucket[b].values.get(kpi) for b in xs]
        ax.plot(
            [_num(b) for b in xs],
            [float("nan") if y is None else y for y in ys],
            marker=".",
            label=label,
        )
    for r in k.scorecard.results:
        if r.target.kpi in {kp for kp, _ in kpis} and not r.target.reference:
            ax.axhline(r.target.value, color="#c62828", linestyle="--", linewidth=1,
                       label=f"target {r.target.op} {r.target.value:g} {unit}")  # fmt: skip
    for g in k.scorecard.gaps:
        ax.axvspan(_num(g.start), _num(g.end), color="#bbbbbb",
                   alpha=0.4, linewidth=0)  # fmt: skip
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=TOKYO))  # type: ignore[no-untyped-call]
    ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    return _png(fig, 170)


def _bands_chart(k: TrialKpis) -> Image:
    fig, ax = _figure(7.2, 2.0)
    palette = {"excellent": "#1a9850", "good": "#91cf60", "fair": "#fee08b", "poor": "#d73027"}
    metrics = list(k.overall.bands)
    left = [0.0] * len(metrics)
    for band in BAND_NAMES:
        shares = []
        for m in metrics:
            c = k.overall.bands[m]
            total = sum(c.values())
            shares.append(100.0 * c[band] / total if total else 0.0)
        ax.barh(metrics, shares, left=left, color=palette[band], label=band)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of samples")
    ax.set_title("Radio quality bands", fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, -0.75))
    return _png(fig, 170)


def _table(rows: list[list[Any]], widths: list[float], extra: list[Any] | None = None) -> Table:
    t = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1)
    t.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), JP),
                ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eaeef2")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#d0d7de")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                *(extra or []),
            ]
        )
    )
    return t


def build_report(k: TrialKpis, generated_at: datetime) -> bytes:
    """The trial report as PDF bytes."""
    d = k.trial.definition
    card = k.scorecard
    story: list[Any] = []
    story.append(Paragraph("前橋市 ローカル5G実証 評価報告書", S["title"]))
    story.append(Paragraph(f"{d.title}", S["h2"]))
    story.append(Paragraph(f"Local 5G trial report · {d.trial_id} · {THEME_JA[d.theme]}",
                           S["sub"]))  # fmt: skip
    story.append(Spacer(1, 4 * mm))
    verdict, colour = {
        "pass": ("合格 PASS", GREEN),
        "fail": ("不合格 FAIL", RED),
        "insufficient-data": ("判定不能（データ不足） INSUFFICIENT DATA", AMBER),
    }[card.verdict]
    vstyle = ParagraphStyle("v", S["title"], textColor=colour, fontSize=22)
    story.append(Paragraph(f"総合判定 Overall: {verdict}", vstyle))
    story.append(
        Paragraph(
            f"期間 Period: {_local(k.start)} – {_local(k.end)} (JST) · "
            f"samples {k.overall.n:,} · data coverage {card.data_coverage_pct:.1f} % "
            f"({card.buckets_with_data}/{card.buckets_total} five-minute buckets) · "
            f"availability per {int(k.bucket.total_seconds() // 60)}-minute bucket · "
            f"source: {k.source}",
            S["body"],
        )
    )
    story.append(Spacer(1, 4 * mm))
    story.append(Paragraph("目標に対する評価 Scorecard against targets", S["h2"]))
    rows: list[list[Any]] = [["KPI", "Target", "Measured", "Result", "Availability"]]
    style: list[Any] = []
    for i, r in enumerate(card.results, start=1):
        t = r.target
        result = ("PASS" if r.passed else "FAIL") + (" (ref.)" if t.reference else "")
        rows.append([
            Paragraph(t.info.label, S["cell"]),
            f"{t.op} {t.value:g} {t.info.unit}",
            fmt(r.measured, t.info.unit),
            result,
            "–" if r.availability_pct is None else f"{r.availability_pct:.1f} %",
        ])  # fmt: skip
        color = GREY if t.reference else (GREEN if r.passed else RED)
        style += [("TEXTCOLOR", (3, i), (3, i), color)]
    story.append(_table(rows, [62, 30, 30, 24, 24], style))
    story.append(Spacer(1, 2 * mm))
    story.append(Paragraph(
        "Availability = share of the period's time buckets in which the target was met "
        "(buckets without data count as not met). (ref.) rows are ITU-R M.2410 reference "
        "values, shown for comparison and not part of the verdict.", S["small"]))  # fmt: skip
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph("目標値の出典 Target sources", S["h2"]))
    for r in card.results:
        story.append(Paragraph(f"• {r.target.kpi}: {r.target.source}", S["small"]))
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph("実証構成 Trial set-up", S["h2"]))
    radio = ", ".join(f"{a}: {b}" for a, b in d.radio.items()) or "–"
    story.append(Paragraph(f"Radio: {radio}", S["body"]))
    for s in d.sites:
        story.append(Paragraph(f"Site {s.site_id}: {s.name} ({s.lat:.5f}, {s.lon:.5f})",
                               S["body"]))  # fmt: skip
    for g in d.gnbs:
        story.append(Paragraph(
            f"gNB {g.gnb_id} at {g.site_id}: {g.band}, {g.bandwidth_mhz:g} MHz, {g.mode} "
            f"({g.lat:.5f}, {g.lon:.5f})", S["body"]))  # fmt: skip
    devs = ", ".join(f"{x.device_id} ({x.kind})" for x in d.devices)
    story.append(Paragraph(f"Devices: {devs}", S["body"]))

    story.append(PageBreak())
    story.append(Paragraph("時系列 KPIs over time", S["h2"]))
    story.append(_series_chart(k, [("ul_mbps_p5", "UL p5"), ("ul_mbps_mean", "UL mean"),
                                   ("dl_mbps_p5", "DL p5"), ("dl_mbps_mean", "DL mean")],
                               "Throughput per bucket", "Mbit/s"))  # fmt: skip
    story.append(_series_chart(k, [("rtt_ms_p50", "RTT p50"), ("rtt_ms_p95", "RTT p95")],
                               "Round-trip time per bucket", "ms"))  # fmt: skip
    story.append(Paragraph("Grey bands: no samples (data gaps).", S["small"]))
    story.append(_bands_chart(k))

    story.append(PageBreak())
    story.append(Paragraph("詳細 Detailed KPIs", S["h2"]))
    v = k.overall.values
    krows: list[list[Any]] = [["KPI", "mean", "p5", "median", "p95", "p99"]]
    krows.append(["Downlink (Mbit/s)", fmt(v["dl_mbps_mean"]), fmt(v["dl_mbps_p5"]),
                  fmt(v["dl_mbps_p50"]), fmt(v["dl_mbps_p95"]), "–"])  # fmt: skip
    krows.append(["Uplink (Mbit/s)", fmt(v["ul_mbps_mean"]), fmt(v["ul_mbps_p5"]),
                  fmt(v["ul_mbps_p50"]), fmt(v["ul_mbps_p95"]), "–"])  # fmt: skip
    krows.append(["RTT (ms)", fmt(v["rtt_ms_mean"]), "–", fmt(v["rtt_ms_p50"]),
                  fmt(v["rtt_ms_p95"]), fmt(v["rtt_ms_p99"])])  # fmt: skip
    story.append(_table(krows, [50, 24, 24, 24, 24, 24]))
    story.append(Spacer(1, 2 * mm))
    m = k.mobility
    story.append(Paragraph(
        f"Jitter mean {fmt(v['jitter_ms_mean'], 'ms')} · packet loss mean "
        f"{fmt(v['loss_pct_mean'], '%')} · reliability {fmt(v['reliability_pct'], '%')} of "
        f"samples within {d.bound_ms:g} ms"
        + (f" · handovers {m.handovers} ({fmt(m.per_device_hour)} per device-hour)" if m
           else ""), S["body"]))  # fmt: skip
    goals = [r.target for r in card.results if not r.target.reference]
    if k.per_device and goals:
        story.append(Paragraph("端末別の目標達成 Targets per device (e.g. per bus)", S["h2"]))
        drows: list[list[Any]] = [
            ["Device", "samples", *[f"{t.kpi} {t.op} {t.value:g}" for t in goals]]
        ]
        dstyle: list[Any] = []
        for i, (dev, st) in enumerate(sorted(k.per_device.items()), start=1):
            cells = []
            for j, t in enumerate(goals, start=2):
                val = st.values.get(t.kpi)
                cells.append(f"{fmt(val, t.info.unit)} {'PASS' if t.met(val) else 'FAIL'}")
                dstyle.append(("TEXTCOLOR", (j, i), (j, i), GREEN if t.met(val) else RED))
            drows.append([dev, f"{st.n:,}", *cells])
        width = 116 / len(goals)
        story.append(_table(drows, [36, 18, *[width] * len(goals)], dstyle))
    story.append(Paragraph("データ欠損 Data gaps", S["h2"]))
    if card.gaps:
        grows: list[list[Any]] = [["From (JST)", "To (JST)", "Length"]]
        for gap in card.gaps[:30]:
            grows.append([_local(gap.start), _local(gap.end), str(timedelta(seconds=gap.seconds))])
        story.append(_table(grows, [45, 45, 30]))
        if len(card.gaps) > 30:
            story.append(Paragraph(f"… and {len(card.gaps) - 30} more gaps.", S["small"]))
    else:
        story.append(Paragraph("No gaps: every bucket of the period has samples.", S["body"]))
    story.append(Paragraph("定義 Definitions", S["h2"]))
    story.append(Paragraph(
        "Percentiles: PostgreSQL percentile_cont (linear interpolation at rank p*(n-1)) over "
        "every sample of the trial's devices in the period. p5 of throughput is the "
        "'user-experienced data rate' of ITU-R M.2410. Rollup source: percentiles from a "
        f"histogram with 40 bins per decade, within {histogram.RELATIVE_ERROR:.1%} of the "
        "exact value. Reliability: share of RTT samples within the latency bound (5G-ACIA). "
        "Radio bands: RSRP from -80 dBm excellent, from -90 good, from -100 fair, below poor. "
        "Full definitions: docs/fiveg-kpis.md.", S["small"]))  # fmt: skip
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph(f"Generated {_local(generated_at)} JST by Mebuku.", S["small"]))

    buf = io.BytesIO()

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(JP, 8)
        canvas.setFillColor(GREY)
        canvas.drawString(18 * mm, 10 * mm, f"前橋市ローカル5G推進協議会 · {d.trial_id}")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
        bottomMargin=18 * mm, title=f"Local 5G trial report {d.trial_id}",
        author="Mebuku", subject=d.title,
    )  # fmt: skip
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
