"""The evaluation and accuracy tables as text, labels from the catalogue (Japanese first)."""

from __future__ import annotations

from core.i18n import N_, Lang, gettext_for
from mobility.predictions.evaluate import CARRY, ENGINE, TIMETABLE, EvalResult
from mobility.predictions.scoring import BINS, BinScore, Scoreboard

METHOD_LABELS = {
    TIMETABLE: N_("Timetable only"),
    CARRY: N_("Carry-forward delay"),
    ENGINE: N_("Prediction engine"),
}


def _pct(b: BinScore) -> str:
    return "-" if b.share is None else f"{100 * b.share:5.1f}%"


def _sec(v: float | None) -> str:
    return "-" if v is None else f"{v:6.0f}"


def accuracy_table(
    board: Scoreboard, lang: Lang = "ja", labels: dict[str, str] | None = None
) -> list[str]:
    """Markdown table: per method, share accurate per MBTA bin and overall, predictions."""
    _ = gettext_for(lang)
    names = labels or {k: _(v) for k, v in METHOD_LABELS.items()}
    head = [
        _("Method"),
        *[_("{bin} min").format(bin=b[0]) for b in BINS],
        _("Overall"),
        _("Predictions"),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in board.methods():
        row = board.bins[m]
        total = board.overall(m)
        cells = [names.get(m, m), *[_pct(b) for b in row], _pct(total), f"{total.n:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def error_table(
    board: Scoreboard, lang: Lang = "ja", labels: dict[str, str] | None = None
) -> list[str]:
    """Markdown table: mean and 90th-percentile absolute error (s) per method and bin."""
    _ = gettext_for(lang)
    names = labels or {k: _(v) for k, v in METHOD_LABELS.items()}
    head = [_("Method")]
    for label, *_rest in BINS:
        head += [
            _("MAE {bin} min (s)").format(bin=label),
            _("p90 {bin} min (s)").format(bin=label),
        ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in board.methods():
        cells = [names.get(m, m)]
        for b in board.bins[m]:
            cells += [_sec(b.mae), _sec(b.p90)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def evaluation_report(res: EvalResult, lang: Lang = "ja") -> list[str]:
    """The whole evaluation: set-up, accuracy, errors, throughput and the targets."""
    _ = gettext_for(lang)
    b = res.scores
    lines = [
        _("Training days: {train} ({first} to {last}); test days: {test}").format(
            train=len(res.train_days),
            first=res.train_days[0],
            last=res.train_days[-1],
            test=", ".join(str(d) for d in res.test_days),
        ),
        _("Routes: {routes}; trips on the test days: {trips}; engine predictions: {n:,}").format(
            routes=res.routes, trips=res.trips, n=res.predictions
        ),
        "",
        *accuracy_table(b, lang),
        "",
        *error_table(b, lang),
        "",
        _("Engine throughput: {rate:,.0f} updates/s on one core ({stops:.1f} stops each)").format(
            rate=res.throughput_per_s, stops=res.stops_per_prediction
        ),
    ]
    lines += [""] + [_(t) + ": " + (_("met") if ok else _("NOT met")) for t, ok in targets(res)]
    return lines


def targets(res: EvalResult) -> list[tuple[str, bool]]:
    """The issue's targets and whether this run meets them."""
    b = res.scores
    eng, cf = b.bins.get(ENGINE, []), b.bins.get(CARRY, [])
    overall = b.overall(ENGINE).share or 0.0
    better = bool(eng) and all(
        (e.share or 0) > (c.share or 0) for e, c in zip(eng, cf, strict=True)
    )
    mae_e, mae_c = (eng[2].mae if eng else None), (cf[2].mae if cf else None)
    mae_ok = mae_e is not None and mae_c is not None and mae_e <= 0.7 * mae_c
    return [
        (N_("Engine at least 85% accurate overall"), overall >= 0.85),
        (N_("Engine better than carry-forward in every bin"), better),
        (N_("Engine MAE at 6-12 min at least 30% below carry-forward"), mae_ok),
        (N_("Engine keeps up with 5,000 telemetry messages/s"), res.throughput_per_s >= 5000),
    ]
