"""A resident's printable monthly statement (PDF, Japanese first) for people who keep paper.

Rendered with reportlab (the ``report`` extra the council report uses), in a worker thread
(it is CPU work). IPAex Gothic is embedded when installed, else the CID font Japanese
viewers supply, as in ``fiveg/report.py``. Everything on it comes from the same rows the
rides page shows; nothing is computed differently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.i18n import Lang, gettext_for
from core.pdf import japanese_font as font
from mobility.fares.history import BusTrip, TaxiTrip
from portal.web import fmt_date, fmt_month, fmt_time
from portal.words import DISCOUNT_WORDS, month_totals, reason_words, taxi_share_yen, yen


@dataclass(frozen=True)
class StatementData:
    """What one month's statement shows."""

    resident_id: int
    month: date
    taxi: list[TaxiTrip]
    bus: list[BusTrip]
    stop_names: dict[str, str]
    route_names: dict[str, str]
    issued_at: datetime
    counter_staff: str | None = None  # printed at a city counter: by whom


def _styles(name: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=name, fontSize=10, leading=14)
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=17, leading=22, spaceAfter=6),
        "h2": ParagraphStyle("h2", parent=base, fontSize=13, leading=18, spaceBefore=10),
        "body": base,
        "cell": ParagraphStyle("cell", parent=base, fontSize=9, leading=12),
    }


def _table(rows: list[list[object]], widths: list[float], name: str) -> Table:
    t = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1, hAlign="LEFT")
    t.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), name),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#777777")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
            ]
        )
    )
    return t


def build_statement(d: StatementData, lang: Lang = "ja") -> bytes:
    """The statement PDF."""
    _ = gettext_for(lang)
    name = font()
    st = _styles(name)
    totals = month_totals(d.taxi, d.bus)
    story: list[object] = [
        Paragraph(_("MyTaku and bus statement") + " " + fmt_month(lang, d.month), st["title"]),
        Paragraph(_("Resident number: {n}").format(n=d.resident_id), st["body"]),
        Paragraph(_("Issued: {at}").format(at=fmt_date(lang, d.issued_at)), st["body"]),
    ]
    if d.counter_staff:
        story.append(
            Paragraph(
                _("Printed at a city counter by {staff}").format(staff=d.counter_staff), st["body"]
            )
        )
    story += [
        Spacer(1, 4 * mm),
        Paragraph(_("Totals"), st["h2"]),
        _table(
            [
                [_("Item"), _("Rides"), _("Fares"), _("Paid by the city")],
                [
                    _("MyTaku taxi"),
                    totals.taxi_rides,
                    yen(totals.taxi_fare_yen) + _(" yen"),
                    yen(totals.taxi_subsidy_yen) + _(" yen"),
                ],
                [
                    _("Bus"),
                    totals.bus_rides,
                    yen(totals.bus_fare_yen) + _(" yen"),
                    yen(totals.bus_discount_yen) + _(" yen"),
                ],
            ],
            [50, 25, 40, 45],
            name,
        ),
        Paragraph(_("Taxi rides"), st["h2"]),
    ]
    if d.taxi:
        rows: list[list[object]] = [[_("Date"), _("Fare"), _("Your share"), _("MyTaku"), _("Why")]]
        for t in d.taxi:
            why = _("Cancelled by the operator.") if t.reversed else _(reason_words(t.reason))
            rows.append(
                [
                    fmt_date(lang, t.pickup_at) + " " + fmt_time(t.pickup_at),
                    yen(t.meter_fare_yen) + _(" yen"),
                    yen(taxi_share_yen(t)) + _(" yen"),
                    yen(0 if t.reversed else t.subsidy_yen) + _(" yen"),
                    Paragraph(why, st["cell"]),
                ]
            )
        story.append(_table(rows, [36, 20, 28, 20, 70], name))
    else:
        story.append(Paragraph(_("No taxi rides this month."), st["body"]))
    story.append(Paragraph(_("Bus rides"), st["h2"]))
    if d.bus:
        rows = [[_("Date"), _("From / to"), _("Fare"), _("Discount"), _("Paid")]]
        for b in d.bus:
            disc = _(DISCOUNT_WORDS[b.discount]) if b.discount in DISCOUNT_WORDS else ""
            origin = d.stop_names.get(b.origin_stop_id, b.origin_stop_id)
            where = f"{origin} → {d.stop_names.get(b.dest_stop_id, b.dest_stop_id)}"
            route = d.route_names.get(b.route_id, b.route_id)
            rows.append(
                [
                    fmt_date(lang, b.tap_on_at) + " " + fmt_time(b.tap_on_at),
                    Paragraph(f"{where}<br/>{route}", st["cell"]),
                    yen(b.fare_yen) + _(" yen"),
                    Paragraph(
                        yen(0 if b.reversed else b.discount_yen) + _(" yen") + " " + disc,
                        st["cell"],
                    ),
                    yen(b.fare_yen - (0 if b.reversed else b.discount_yen)) + _(" yen"),
                ]
            )
        story.append(_table(rows, [36, 62, 20, 36, 20], name))
    else:
        story.append(Paragraph(_("No bus rides this month."), st["body"]))
    story += [
        Spacer(1, 6 * mm),
        Paragraph(_("Questions: the transport policy section of Maebashi City Hall."), st["body"]),
    ]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=_("MyTaku and bus statement") + " " + d.month.strftime("%Y-%m"),
        author="Mebuku",
        lang=lang,
    )
    doc.build(story)
    return buf.getvalue()
