"""The council's trial report: a PDF a council member can read, Japanese first.

Page 1 is a one-page summary (verdict per theme and the numbers that decide it); then the
scorecard with each target once and its source cited as a publication, the set-up, charts
clipped to the period with data, a coverage map of the API's 50 m EPSG:6677 cells over
Maebashi's town boundaries (``core/data/maebashi/towns.geojson``, no internet tiles), and the
details. Every label comes from the message catalogue (:mod:`core.i18n`, ids in English,
Japanese in ``core/locale/ja``); numbers come from :class:`fiveg.engine.TrialKpis`
unchanged, so the report says exactly what the API says. Charts use matplotlib's object
API (``Figure`` + ``FigureCanvasAgg``), safe in a worker thread.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import shapely
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from pyproj import Transformer
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from core.i18n import Lang, gettext_for
from core.pdf import FONT_FILES, japanese_font
from core.resources import towns_geojson
from fiveg import histogram
from fiveg.coverage import BAND_COLOURS, CELL_M, GRID_CRS
from fiveg.engine import TrialKpis
from fiveg.kpi import BAND_NAMES
from fiveg.labels import (
    BAND_LABELS,
    DEVICE_KINDS,
    KPI_LABELS,
    MODES,
    RADIO_LABELS,
    THEME_LABELS,
    VERDICTS,
)
from fiveg.labels import cite as cite_source
from fiveg.targets import KPIS, Target

# Charts also accept Noto CJK (Debian: fonts-noto-cjk), which reportlab cannot embed.
CHART_FONT_FILES = (
    *FONT_FILES,
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf",
)
TOWNS = towns_geojson()


def _chart_font() -> str | None:
    """The family name of a Japanese font matplotlib can use, or None (DejaVu: boxes)."""
    for f in CHART_FONT_FILES:
        if Path(f).is_file():
            font_manager.fontManager.addfont(f)
            return font_manager.FontProperties(fname=f).get_name()
    return None


JP = japanese_font()
CHART_FONT = _chart_font()
# Set once at import, not per chart: rc_context swaps global state and is not thread-safe
# (the API renders reports in worker threads). Only the report draws with matplotlib.
matplotlib.rcParams["axes.unicode_minus"] = False
matplotlib.rcParams["text.parse_math"] = False  # a "$" in a site name is text, not TeX
if CHART_FONT:
    matplotlib.rcParams["font.family"] = [CHART_FONT, "DejaVu Sans"]
TOKYO = ZoneInfo("Asia/Tokyo")
GREEN = colors.HexColor("#1a7f37")
RED = colors.HexColor("#c62828")
AMBER = colors.HexColor("#9a6700")
GREY = colors.HexColor("#6e7781")

_base = ParagraphStyle("base", fontName=JP, fontSize=9.5, leading=13, wordWrap="CJK")
S = {
    "title": ParagraphStyle("title", _base, fontSize=18, leading=24, spaceAfter=4),
    "sub": ParagraphStyle("sub", _base, fontSize=11, leading=15, textColor=GREY),
    "h2": ParagraphStyle("h2", _base, fontSize=13, leading=18, spaceBefore=8, spaceAfter=4),
    "body": _base,
    "big": ParagraphStyle("big", _base, fontSize=11, leading=16),
    "small": ParagraphStyle("small", _base, fontSize=8, leading=10.5, textColor=GREY),
    "cell": ParagraphStyle("cell", _base, fontSize=8.5, leading=11),
    "cellhead": ParagraphStyle("cellhead", _base, fontSize=7.5, leading=10),
    "cellsmall": ParagraphStyle("cellsmall", _base, fontSize=7, leading=9, textColor=GREY),
}

VERDICT_COLOURS = {"pass": GREEN, "fail": RED, "insufficient-data": AMBER}


@dataclass(frozen=True)
class Others:
    """Another trial's result for the summary's row of its theme."""

    kpis: TrialKpis


def fmt(v: float | None, unit: str = "") -> str:
    """A number with as many digits as its size deserves, and a dash for no value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    digits = 2 if abs(v) < 10 else (1 if abs(v) < 1000 else 0)
    s = f"{v:,.{digits}f}"
    return f"{s} {unit}".strip()


def _local(ts: datetime) -> str:
    return ts.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")


def _num(ts: datetime) -> float:
    return float(mdates.date2num(ts))  # type: ignore[no-untyped-call]


def _esc(text: str) -> str:
    """Data (titles, names) inside a reportlab Paragraph, which reads a little XML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Words:
    """The report's vocabulary in one language: translated labels, units and durations."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self._ = gettext_for(lang)

    def __call__(self, message: str) -> str:
        """Translate ``message`` into the report's language."""
        return self._(message)

    def kpi(self, kpi: str) -> str:
        """The KPI's label in the report's language."""
        label = KPI_LABELS.get(kpi)
        return self._(label) if label else KPIS[kpi].label

    def unit(self, kpi: str) -> str:
        """The KPI's unit."""
        return KPIS[kpi].unit

    def goal(self, t: Target) -> str:
        """The target as words ("at least 25 Mbit/s")."""
        value = fmt(t.value, t.info.unit) if t.value % 1 else f"{t.value:g} {t.info.unit}"
        fmt_op = self._("at least {value}") if t.op == ">=" else self._("at most {value}")
        return fmt_op.format(value=value)

    def verdict(self, verdict: str) -> str:
        """The verdict in the report's language."""
        return self._(VERDICTS[verdict])

    def met(self, ok: bool) -> str:
        """Pass or fail in the report's language."""
        return self._("Pass") if ok else self._("Fail")

    def duration(self, seconds: float) -> str:
        """A duration in days, hours and minutes, as a council member reads it."""
        minutes = round(seconds / 60)
        d, rest = divmod(minutes, 1440)
        h, m = divmod(rest, 60)
        parts = []
        if d:
            parts.append(self._("{n} d").format(n=d))
        if h:
            parts.append(self._("{n} h").format(n=h))
        if m or not parts:
            parts.append(self._("{n} min").format(n=m))
        return ("" if self.lang == "ja" else " ").join(parts)

    def cite(self, source: str) -> str:
        """A target's source as a publication (data entered by hand is shown as given)."""
        return cite_source(source, self._)


def _png(fig: Figure, width_mm: float) -> Image:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    buf.seek(0)
    w, h = fig.get_size_inches()
    return Image(buf, width=width_mm * mm, height=width_mm * mm * h / w)


def _figure(w: float, h: float) -> Figure:
    return Figure(figsize=(w, h))


def data_window(k: TrialKpis) -> tuple[datetime, datetime] | None:
    """From the first to the end of the last bucket with samples (None: no data)."""
    have = [b for b, st in k.per_bucket.items() if st.n > 0]
    if not have:
        return None
    return min(have), max(have) + k.bucket


def _series_chart(
    k: TrialKpis, w: Words, kpis: list[tuple[str, str]], title: str, unit: str
) -> Image:
    window = data_window(k)
    assert window is not None
    lo, hi = window
    xs: list[datetime] = []
    b = lo
    while b < hi:  # every bucket of the window, so lines break at gaps
        xs.append(b)
        b += k.bucket
    fig = _figure(7.2, 2.6)
    ax = fig.subplots()
    for kpi, label in kpis:
        ys = [k.per_bucket[x].values.get(kpi) if x in k.per_bucket else None for x in xs]
        ax.plot(
            [_num(x) for x in xs],
            [math.nan if y is None else y for y in ys],
            marker=".",
            label=label,
        )
    shown = {kp for kp, _label in kpis}
    for r in k.scorecard.results:
        if r.target.kpi in shown and not r.target.reference:
            ax.axhline(
                r.target.value,
                color="#c62828",
                linestyle="--",
                linewidth=1,
                label=w("Target: {goal}").format(goal=w.goal(r.target)),
            )
    gap_label: str | None = w("No data")
    for g in k.scorecard.gaps:
        if g.end <= lo or g.start >= hi:
            continue
        ax.axvspan(
            _num(max(g.start, lo)),
            _num(min(g.end, hi)),
            color="#bbbbbb",
            alpha=0.4,
            linewidth=0,
            label=gap_label,
        )
        gap_label = None
    ax.set_xlim(_num(lo), _num(hi))
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    pattern = "%m/%d %H:%M" if hi - lo <= timedelta(days=3) else "%Y/%m/%d"
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=TOKYO, minticks=3, maxticks=7))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(mdates.DateFormatter(pattern, tz=TOKYO))  # type: ignore[no-untyped-call]
    ax.set_xlabel(w("Time (JST)"))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig, 170)


def _bands_chart(k: TrialKpis, w: Words) -> Image:
    palette = BAND_COLOURS
    metrics = [m for m in RADIO_LABELS if m in k.overall.bands]
    fig = _figure(7.2, 2.2)
    ax = fig.subplots()
    names = [w(RADIO_LABELS[m]) for m in metrics]
    left = [0.0] * len(metrics)
    for band in BAND_NAMES:
        shares = []
        for m in metrics:
            c = k.overall.bands[m]
            total = sum(c.values())
            shares.append(100.0 * c.get(band, 0) / total if total else 0.0)
        ax.barh(names, shares, left=left, color=palette[band], label=w(BAND_LABELS[band]))
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(w("Share of samples (%)"))
    ax.set_title(w("Radio quality bands"), fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    return _png(fig, 170)


@lru_cache(maxsize=1)
def _towns() -> list[tuple[BaseGeometry, str]]:
    """Maebashi's town (町丁) polygons in WGS84 with their names, read once."""
    if not TOWNS.is_file():
        return []
    with TOWNS.open(encoding="utf-8") as f:
        data = json.load(f)
    out = []
    for feat in data.get("features", []):
        try:
            geom = shape(feat["geometry"])
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
        out.append((geom, str((feat.get("properties") or {}).get("S_NAME") or "")))
    return out


_TO_GRID = Transformer.from_crs("EPSG:4326", GRID_CRS, always_xy=True)


def _project(geom: BaseGeometry) -> BaseGeometry:
    """WGS84 lon/lat to EPSG:6677 metres."""
    return shapely.transform(
        geom, lambda xy: np.column_stack(_TO_GRID.transform(xy[:, 0], xy[:, 1]))
    )


def _cells(coverage: dict[str, Any]) -> list[tuple[float, float, float, dict[str, Any]]]:
    """(x0, y0, size, properties) of each cell in EPSG:6677 metres, from the API's ids."""
    size = float((coverage.get("properties") or {}).get("cell_m", CELL_M))
    out = []
    for f in coverage.get("features", []):
        props = f.get("properties") or {}
        m = re.fullmatch(r"(-?\d+)_(-?\d+)", str(props.get("cell", "")))
        if m:
            out.append((int(m.group(1)) * size, int(m.group(2)) * size, size, props))
    return out


def _coverage_map(k: TrialKpis, w: Words, coverage: dict[str, Any]) -> Image | None:
    cells = _cells(coverage)
    if not cells:
        return None
    d = k.trial.definition
    xs = [c[0] for c in cells] + [c[0] + c[2] for c in cells]
    ys = [c[1] for c in cells] + [c[1] + c[2] for c in cells]
    gnbs = [_TO_GRID.transform(g.lon, g.lat) for g in d.gnbs]
    pad = 250.0
    x0, x1 = min(xs) - pad, max(xs) + pad
    y0, y1 = min(ys) - pad, max(ys) + pad
    for gx, gy in gnbs:  # show the base stations when they are near the cells
        if x0 - 2000 < gx < x1 + 2000 and y0 - 2000 < gy < y1 + 2000:
            x0, x1, y0, y1 = (
                min(x0, gx - pad),
                max(x1, gx + pad),
                min(y0, gy - pad),
                max(y1, gy + pad),
            )
    side = max(x1 - x0, y1 - y0, 1200.0)  # a square map at least 1.2 km wide
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0, x1, y0, y1 = cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2
    to_wgs = Transformer.from_crs(GRID_CRS, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_wgs.transform(x0, y0)
    lon1, lat1 = to_wgs.transform(x1, y1)
    view = box(min(lon0, lon1), min(lat0, lat1), max(lon0, lon1), max(lat0, lat1))
    fig = _figure(6.4, 6.4)
    ax = fig.subplots()
    ax.set_facecolor("#fbfbf8")
    for geom, name in _towns():
        if not geom.intersects(view):
            continue
        g = _project(geom)
        for poly in getattr(g, "geoms", [g]):
            bx, by = poly.exterior.xy
            ax.plot(bx, by, color="#8c959f", linewidth=0.6, zorder=1)
        p = g.representative_point()
        if name and x0 < p.x < x1 and y0 < p.y < y1:
            ax.text(
                p.x,
                p.y,
                name,
                fontsize=6.5,
                color="#57606a",
                ha="center",
                va="center",
                zorder=2,
            )
    for cx0, cy0, size, props in cells:
        fill = props.get("fill") if props.get("sufficient") else None
        ax.add_patch(
            Rectangle(
                (cx0, cy0),
                size,
                size,
                facecolor=fill or "#ffffff",
                edgecolor="#333333" if fill else "#8c959f",
                hatch=None if fill else "////",
                linewidth=0.5,
                alpha=0.9,
                zorder=3,
            )
        )
    if gnbs:
        ax.scatter(
            [g[0] for g in gnbs],
            [g[1] for g in gnbs],
            marker="^",
            s=28,
            color="#0969da",
            edgecolor="white",
            linewidth=0.6,
            zorder=4,
        )
    for site in d.sites:
        sx, sy = _TO_GRID.transform(site.lon, site.lat)
        if x0 < sx < x1 and y0 < sy < y1:
            ax.annotate(
                site.name,
                (sx, sy),
                xytext=(6, -10),
                textcoords="offset points",
                fontsize=8,
                color="#0550ae",
                fontweight="bold",
                zorder=5,
            )
    bar = 500.0 if side > 1500 else 200.0  # scale bar, bottom left
    bx0, by0 = x0 + side * 0.05, y0 + side * 0.05
    ax.plot([bx0, bx0 + bar], [by0, by0], color="black", linewidth=2, zorder=5)
    ax.text(bx0 + bar / 2, by0 + side * 0.015, f"{bar:g} m", ha="center", fontsize=7, zorder=5)
    ax.text(x1 - side * 0.04, y1 - side * 0.06, w("N ↑"), ha="center", fontsize=9, zorder=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    handles: list[Any] = [
        Patch(
            facecolor=BAND_COLOURS[b],
            edgecolor="#333333",
            label=w("RSRP {band}").format(band=w(BAND_LABELS[b])),
        )
        for b in BAND_NAMES
    ]
    handles.append(
        Patch(facecolor="white", edgecolor="#8c959f", hatch="////", label=w("Too few samples"))
    )
    if gnbs:
        handles.append(
            ax.scatter([], [], marker="^", s=28, color="#0969da", label=w("Base station"))
        )
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig, 150)


def _table(rows: list[list[Any]], widths: list[float], extra: list[Any] | None = None) -> Table:
    t = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1, hAlign="LEFT")
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


def _p(text: str, style: str = "cell", colour: colors.Color | None = None) -> Paragraph:
    if colour is not None:
        return Paragraph(f"<font color='{colour.hexval()}'>{_esc(text)}</font>", S[style])
    return Paragraph(_esc(text), S[style])


def _device_cell(k: TrialKpis, device_id: str) -> Paragraph:
    """A device's label with its id below in small print; long names wrap in the cell."""
    label = next((x.label for x in k.trial.definition.devices if x.device_id == device_id), "")
    if label and label != device_id:
        return Paragraph(
            f"{_esc(label)}<br/><font size=7 color='#6e7781'>{_esc(device_id)}</font>", S["cell"]
        )
    return _p(device_id)


def _deciding(k: TrialKpis, w: Words) -> list[str]:
    """The two or three numbers that decide the verdict."""
    card = k.scorecard
    lines = []
    for r in card.results:
        if r.target.reference:
            continue
        lines.append(
            w("{kpi}: measured {measured}, target {goal}: {result}").format(
                kpi=w.kpi(r.target.kpi),
                measured=fmt(r.measured, r.target.info.unit),
                goal=w.goal(r.target),
                result=w.met(r.passed) if r.measured is not None else w("no measurement"),
            )
        )
    lines.append(
        w("Data coverage {pct} ({have} of {total} five-minute intervals; {need} needed)").format(
            pct=f"{card.data_coverage_pct:.1f} %",
            have=f"{card.buckets_with_data:,}",
            total=f"{card.buckets_total:,}",
            need=f"{card.min_coverage_pct:g} %",
        )
    )
    return lines


def _summary(k: TrialKpis, w: Words, others: Sequence[TrialKpis]) -> list[Any]:
    d = k.trial.definition
    card = k.scorecard
    story: list[Any] = [
        Paragraph(_esc(w("Maebashi local 5G trial: evaluation report")), S["title"]),
        Paragraph(_esc(d.title), S["h2"]),
        _p(
            w("Theme: {theme} · trial {trial_id}").format(
                theme=w(THEME_LABELS[d.theme]), trial_id=d.trial_id
            ),
            "sub",
        ),
        Spacer(1, 3 * mm),
        _p(
            w("Period: {start} – {end} (JST)").format(start=_local(k.start), end=_local(k.end)),
            "big",
        ),
    ]
    window = data_window(k)
    if window:
        story.append(
            _p(
                w(
                    "Data received: {start} – {end} (JST), {n} samples from {devices} devices"
                ).format(
                    start=_local(window[0]),
                    end=_local(window[1]),
                    n=f"{k.overall.n:,}",
                    devices=len(k.per_device) or "–",
                ),
                "body",
            )
        )
    story.append(Spacer(1, 4 * mm))
    vstyle = ParagraphStyle(
        "v", S["title"], textColor=VERDICT_COLOURS[card.verdict], fontSize=22, leading=28
    )
    verdict = w("Overall verdict: {verdict}").format(verdict=w.verdict(card.verdict))
    story.append(Paragraph(_esc(verdict), vstyle))
    if k.overall.n == 0:
        story.append(Spacer(1, 2 * mm))
        story.append(
            Paragraph(
                _esc(
                    w(
                        "No data has arrived for this period yet: no sample of "
                        "the trial's devices was received between {start} and "
                        "{end} (JST)."
                    ).format(start=_local(k.start), end=_local(k.end))
                ),
                S["big"],
            )
        )
    story.append(Spacer(1, 2 * mm))
    story.append(_p(w("What decides it"), "h2"))
    for line in _deciding(k, w):
        story.append(_p("• " + line, "big"))
    story.append(Spacer(1, 4 * mm))
    story.append(_p(w("Verdict per theme"), "h2"))
    rows: list[list[Any]] = [
        [_p(w("Theme")), _p(w("Trial")), _p(w("Verdict")), _p(w("Deciding numbers"))]
    ]
    style: list[Any] = []
    by_theme: dict[str, list[TrialKpis]] = {}
    for x in [k, *others]:
        by_theme.setdefault(x.trial.definition.theme, []).append(x)
    for theme in ("transport", "education", "emergency"):
        trials = by_theme.get(theme) or []
        if not trials:
            rows.append([_p(w(THEME_LABELS[theme])), _p(w("No trial registered")), _p("–"), _p("")])
            continue
        for x in trials:
            rows.append(
                [
                    _p(w(THEME_LABELS[theme])),
                    _p(x.trial.definition.title + ("" if x is not k else w(" (this report)"))),
                    _p(w.verdict(x.scorecard.verdict), colour=VERDICT_COLOURS[x.scorecard.verdict]),
                    Paragraph("<br/>".join(_esc(s) for s in _deciding(x, w)), S["cellsmall"]),
                ]
            )
    story.append(_table(rows, [38, 44, 24, 68], [*style, ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story.append(Spacer(1, 2 * mm))
    story.append(
        _p(
            w(
                "Pass: every target of the theme is met over the period. Undecided: less "
                "than {need} of the period's five-minute intervals have data, so a verdict "
                "would describe a few minutes, not the trial."
            ).format(need=f"{card.min_coverage_pct:g} %"),
            "small",
        )
    )
    return story


def _scorecard(k: TrialKpis, w: Words) -> tuple[list[Any], list[str]]:
    """One row per KPI (own target and the ITU-R reference side by side); the sources."""
    card = k.scorecard
    citations: list[str] = []

    def ref(t: Target) -> str:
        c = w.cite(t.source)
        if c not in citations:
            citations.append(c)
        return f"[{citations.index(c) + 1}]"

    by_kpi: dict[str, list[Any]] = {}
    for r in card.results:
        by_kpi.setdefault(r.target.kpi, []).append(r)
    rows: list[list[Any]] = [
        [
            _p(w("Measure")),
            _p(w("Target")),
            _p(w("Measured")),
            _p(w("Result")),
            _p(w("Time share met")),
            _p(w("Reference (ITU-R M.2410)")),
        ]
    ]
    style: list[Any] = []
    for kpi, results in by_kpi.items():
        own = next((r for r in results if not r.target.reference), None)
        refs = [r for r in results if r.target.reference]
        unit = w.unit(kpi)
        measured = results[0].measured
        if own:
            goal = f"{w.goal(own.target)} {ref(own.target)}"
            result = w.met(own.passed) if own.measured is not None else "–"
            avail = "–" if own.availability_pct is None else f"{own.availability_pct:.1f} %"
            colour = GREEN if own.passed else RED
        else:
            goal, result, avail, colour = w("(reference only)"), "–", "–", None
        ref_text = (
            "; ".join(f"{w.goal(r.target)} {ref(r.target)}: {w.met(r.passed)}" for r in refs) or "–"
        )
        rows.append(
            [
                _p(w.kpi(kpi)),
                _p(goal),
                _p(fmt(measured, unit)),
                _p(result, colour=colour),
                _p(avail),
                _p(ref_text),
            ]
        )
    story: list[Any] = [
        _p(w("Scorecard against targets"), "h2"),
        _table(rows, [48, 30, 24, 18, 20, 34], style),
        Spacer(1, 2 * mm),
        _p(
            w(
                "Time share met: share of the period's intervals in which the target was met "
                "(intervals without data count as not met). The reference column compares with "
                "the IMT-2020 minimums for information; it is not part of the verdict."
            ),
            "small",
        ),
        Spacer(1, 3 * mm),
        _p(w("Sources of the targets"), "h2"),
    ]
    for n, c in enumerate(citations, start=1):
        story.append(_p(f"[{n}] {c}", "body"))
    return story, citations


def _setup(k: TrialKpis, w: Words) -> list[Any]:
    d = k.trial.definition
    story: list[Any] = [_p(w("Trial set-up"), "h2")]
    radio = dict(d.radio)
    parts = []
    if "band" in radio:
        parts.append(w("band {band}").format(band=radio.pop("band")))
    if "mode" in radio:
        mode = str(radio.pop("mode"))
        parts.append(w(MODES[mode]) if mode in MODES else mode)
    if "bandwidth_mhz" in radio:
        parts.append(w("bandwidth {mhz} MHz").format(mhz=f"{float(radio.pop('bandwidth_mhz')):g}"))
    parts += [f"{a}: {b}" for a, b in radio.items()]
    story.append(_p(w("Radio: {radio}").format(radio=w(", ").join(parts) or "–"), "body"))
    names = {s.site_id: s.name for s in d.sites}
    for s in d.sites:
        story.append(
            _p(
                w("Site: {name} ({lat:.5f}, {lon:.5f})").format(name=s.name, lat=s.lat, lon=s.lon),
                "body",
            )
        )
    for g in d.gnbs:
        height = w(", antenna {h} m high").format(h=f"{g.height_m:g}") if g.height_m else ""
        story.append(
            _p(
                w("Base station at {site}: band {band}, {mhz} MHz, {mode}{height}").format(
                    site=names.get(g.site_id, g.site_id),
                    band=g.band,
                    mhz=f"{g.bandwidth_mhz:g}",
                    mode=w(MODES[g.mode]),
                    height=height,
                ),
                "body",
            )
        )
    rows: list[list[Any]] = [[_p(w("Device")), _p(w("Kind"))]]
    for dev in d.devices:
        rows.append([_device_cell(k, dev.device_id), _p(w(DEVICE_KINDS.get(dev.kind, "Other")))])
    story.append(Spacer(1, 2 * mm))
    story.append(_table(rows, [110, 64]))
    return story


def _details(k: TrialKpis, w: Words) -> list[Any]:
    d = k.trial.definition
    card = k.scorecard
    v = k.overall.values
    story: list[Any] = [_p(w("Detailed measurements"), "h2")]
    head = [
        w("Measure"),
        w("Mean"),
        w("5th percentile"),
        w("Median"),
        w("95th percentile"),
        w("99th percentile"),
    ]
    krows: list[list[Any]] = [[_p(h, "cellhead") for h in head]]
    for label, unit, keys in (
        (
            w("Downlink throughput"),
            "Mbit/s",
            ("dl_mbps_mean", "dl_mbps_p5", "dl_mbps_p50", "dl_mbps_p95", None),
        ),
        (
            w("Uplink throughput"),
            "Mbit/s",
            ("ul_mbps_mean", "ul_mbps_p5", "ul_mbps_p50", "ul_mbps_p95", None),
        ),
        (
            w("Round-trip delay"),
            "ms",
            ("rtt_ms_mean", None, "rtt_ms_p50", "rtt_ms_p95", "rtt_ms_p99"),
        ),
    ):
        krows.append([_p(f"{label} ({unit})"), *[fmt(v.get(x)) if x else "–" for x in keys]])
    if k.overall.n == 0:
        story.append(_p(w("No data has arrived for this period yet."), "body"))
    else:
        story.append(_table(krows, [40, 22, 30, 22, 30, 30]))
        story.append(Spacer(1, 2 * mm))
    m = k.mobility
    line = w(
        "Jitter mean {jitter} · packet loss mean {loss} · reliability {rel} of round "
        "trips within {bound} ms"
    ).format(
        jitter=fmt(v.get("jitter_ms_mean"), "ms"),
        loss=fmt(v.get("loss_pct_mean"), "%"),
        rel=fmt(v.get("reliability_pct"), "%"),
        bound=f"{d.bound_ms:g}",
    )
    if m and m.device_hours:
        line += w(" · handovers {n} ({rate} per device-hour)").format(
            n=m.handovers, rate=fmt(m.per_device_hour)
        )
    if k.overall.n:
        story.append(_p(line, "body"))
    goals = [r.target for r in card.results if not r.target.reference]
    if k.per_device and goals:
        story.append(_p(w("Targets per device (e.g. per bus)"), "h2"))
        drows: list[list[Any]] = [
            [_p(w("Device")), _p(w("Samples")), *[_p(f"{w.kpi(t.kpi)} {w.goal(t)}") for t in goals]]
        ]
        dstyle: list[Any] = []
        for i, (dev, st) in enumerate(sorted(k.per_device.items()), start=1):
            cells = []
            for j, t in enumerate(goals, start=2):
                val = st.values.get(t.kpi)
                cells.append(f"{fmt(val, t.info.unit)} {w.met(t.met(val))}")
                dstyle.append(("TEXTCOLOR", (j, i), (j, i), GREEN if t.met(val) else RED))
            drows.append([_device_cell(k, dev), f"{st.n:,}", *cells])
        width = 112 / len(goals)
        story.append(_table(drows, [44, 18, *[width] * len(goals)], dstyle))
    gap_story: list[Any] = [_p(w("Data gaps"), "h2")]
    if card.gaps:
        grows: list[list[Any]] = [[_p(w("From (JST)")), _p(w("To (JST)")), _p(w("Length"))]]
        for gap in card.gaps[:30]:
            grows.append([_local(gap.start), _local(gap.end), w.duration(gap.seconds)])
        gap_story.append(_table(grows, [45, 45, 40]))
        if len(card.gaps) > 30:
            gap_story.append(_p(w("… and {n} more gaps.").format(n=len(card.gaps) - 30), "small"))
    elif k.overall.n:
        gap_story.append(_p(w("No gaps: every interval of the period has samples."), "body"))
    else:
        gap_story.append(_p(w("No data has arrived for this period yet."), "body"))
    story.append(KeepTogether(gap_story[:2]))
    story += gap_story[2:]
    story.append(_p(w("Definitions"), "h2"))
    story.append(
        _p(
            w(
                "Percentiles: linear interpolation at rank p×(n−1) "
                "(PostgreSQL percentile_cont) over "
                "every sample of the trial's devices in the period. "
                "The 5th percentile of throughput "
                "is the user-experienced data rate of Report ITU-R "
                "M.2410. When the report reads the "
                "hourly summaries, percentiles come from a histogram "
                "with 40 bins per decade, within "
                "{err} of the exact value. Reliability: share of "
                "round trips within the delay bound "
                "(5G-ACIA). Radio bands: RSRP from −80 dBm excellent, "
                "from −90 dBm good, from −100 dBm "
                "fair, below that poor."
            ).format(err=f"{histogram.RELATIVE_ERROR:.1%}"),
            "small",
        )
    )
    story.append(
        _p(
            w("Source of the numbers: {source} ({bucket} intervals).").format(
                source=w("exact, from every sample")
                if k.source == "raw"
                else w("hourly summaries"),
                bucket=w.duration(k.bucket.total_seconds()),
            ),
            "small",
        )
    )
    return story


def build_report(
    k: TrialKpis,
    generated_at: datetime,
    lang: Lang = "ja",
    coverage: dict[str, Any] | None = None,
    others: Sequence[TrialKpis] = (),
    series: TrialKpis | None = None,
) -> bytes:
    """The trial report as PDF bytes, in ``lang``.

    ``coverage`` is the API's coverage GeoJSON for the same period (the map page);
    ``others`` are other trials' results for the summary's verdict per theme; ``series``
    is the same trial over the part of the period with data in finer buckets, for the
    charts (:func:`fiveg.engine.zoom_to_data`).
    """
    w = Words(lang)
    d = k.trial.definition
    zoom = series or k
    window = data_window(zoom)
    story: list[Any] = _summary(k, w, others)
    story.append(PageBreak())
    card_story, _citations = _scorecard(k, w)
    story += card_story
    story += _setup(k, w)
    if k.overall.n > 0 and window is not None:
        story.append(PageBreak())
        story.append(_p(w("Measurements over time"), "h2"))
        story.append(
            _series_chart(
                zoom,
                w,
                [
                    ("ul_mbps_p5", w("Uplink 5th percentile")),
                    ("ul_mbps_mean", w("Uplink mean")),
                    ("dl_mbps_p5", w("Downlink 5th percentile")),
                    ("dl_mbps_mean", w("Downlink mean")),
                ],
                w("Throughput per interval"),
                "Mbit/s",
            )
        )
        story.append(
            _series_chart(
                zoom,
                w,
                [("rtt_ms_p50", w("Median")), ("rtt_ms_p95", w("95th percentile"))],
                w("Round-trip delay per interval"),
                "ms",
            )
        )
        story.append(
            _p(
                w(
                    "The charts show {start} – {end} (JST), the part of the period with "
                    "data. Grey bands: no samples."
                ).format(
                    start=_local(window[0]),
                    end=_local(window[1]),
                ),
                "small",
            )
        )
        story.append(_bands_chart(k, w))
        img = _coverage_map(k, w, coverage) if coverage else None
        if img is not None:
            feats = (coverage or {}).get("features", [])
            props = (coverage or {}).get("properties") or {}
            story.append(PageBreak())
            story.append(_p(w("Coverage map"), "h2"))
            story.append(img)
            story.append(Spacer(1, 2 * mm))
            story.append(
                _p(
                    w(
                        "Median received power (RSRP) in {cell} m squares "
                        "of the Japan Plane Rectangular "
                        "Coordinate System zone IX (EPSG:6677), the same "
                        "cells as the API; {cells} cells "
                        "with data, hatched where fewer than {min} "
                        "samples. Town boundaries: Maebashi "
                        "City town areas (e-Stat small-area boundaries)."
                    ).format(
                        cell=f"{float(props.get('cell_m', CELL_M)):g}",
                        cells=len(feats),
                        min=props.get("min_samples", "–"),
                    ),
                    "small",
                )
            )
    story.append(PageBreak())
    story += _details(k, w)
    story.append(Spacer(1, 3 * mm))
    story.append(
        _p(
            w("Generated {at} (JST) by Mebuku, Maebashi City's data platform.").format(
                at=_local(generated_at)
            ),
            "small",
        )
    )

    footer_left = w("Maebashi local 5G council · {trial}").format(trial=d.trial_id)
    page_of = w("Page {page} of {total}")
    canvas_class = _numbered_canvas(footer_left, page_of)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=w("Maebashi local 5G trial: evaluation report") + f" {d.trial_id}",
        author="Mebuku",
        subject=d.title,
    )
    doc.build(story, canvasmaker=canvas_class)
    return buf.getvalue()


def _numbered_canvas(left: str, page_of: str) -> Callable[..., Canvas]:
    """A canvas that writes "page n of N" once the total is known (two-pass free)."""

    class NumberedCanvas(Canvas):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.saveState()
                self.setFont(JP, 8)
                self.setFillColor(GREY)
                self.drawString(18 * mm, 10 * mm, left)
                self.drawRightString(
                    A4[0] - 18 * mm, 10 * mm, page_of.format(page=self._pageNumber, total=total)
                )
                self.restoreState()
                super().showPage()
            super().save()

    return NumberedCanvas
