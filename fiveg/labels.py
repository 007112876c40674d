"""Words the council reads for the 5G trial data: KPI, theme, band, device and verdict
labels and target sources as publications. Shared by the council report (fiveg/report.py)
and the council dashboard (fiveg/dashboard.py); message ids are English, translated with
the catalogue (core/i18n.py) where they are shown.
"""

from __future__ import annotations

from collections.abc import Callable

from core.i18n import N_

# Labels and units of the KPI catalogue (fiveg.targets.KPIS), as the council reads them.
KPI_LABELS: dict[str, str] = {
    "dl_mbps_mean": N_("Downlink throughput, mean"),
    "dl_mbps_p5": N_("Downlink throughput, 5th percentile (user-experienced)"),
    "dl_mbps_p50": N_("Downlink throughput, median"),
    "dl_mbps_p95": N_("Downlink throughput, 95th percentile"),
    "ul_mbps_mean": N_("Uplink throughput, mean"),
    "ul_mbps_p5": N_("Uplink throughput, 5th percentile (user-experienced)"),
    "ul_mbps_p50": N_("Uplink throughput, median"),
    "ul_mbps_p95": N_("Uplink throughput, 95th percentile"),
    "rtt_ms_mean": N_("Round-trip delay, mean"),
    "rtt_ms_p50": N_("Round-trip delay, median"),
    "rtt_ms_p95": N_("Round-trip delay, 95th percentile"),
    "rtt_ms_p99": N_("Round-trip delay, 99th percentile"),
    "jitter_ms_mean": N_("Jitter, mean"),
    "loss_pct_mean": N_("Packet loss, mean"),
    "reliability_pct": N_("Reliability (share of round trips within the delay bound)"),
}
RADIO_LABELS = {
    "rsrp_dbm": N_("Received power (RSRP, dBm)"),
    "rsrq_db": N_("Received quality (RSRQ, dB)"),
    "sinr_db": N_("Signal to interference and noise (SINR, dB)"),
}
BAND_LABELS = {
    "excellent": N_("Excellent"),
    "good": N_("Good"),
    "fair": N_("Fair"),
    "poor": N_("Poor"),
}
THEME_LABELS = {
    "transport": N_("Transport (remote supervision of autonomous buses)"),
    "education": N_("Education (remote classes)"),
    "emergency": N_("Emergency transport (video from ambulances)"),
}
DEVICE_KINDS = {
    "phone": N_("Smartphone"),
    "bus_modem": N_("Bus modem"),
    "ambulance_modem": N_("Ambulance modem"),
    "classroom_cpe": N_("Classroom terminal"),
    "sensor": N_("Sensor"),
    "other": N_("Other"),
}
VERDICTS = {
    "pass": N_("Pass"),
    "fail": N_("Fail"),
    "insufficient-data": N_("Undecided (not enough data)"),
}
MODES = {"SA": N_("standalone (SA)"), "NSA": N_("non-standalone (NSA)")}

# Target sources as publications: the defaults of fiveg/targets.py by their prefix.
CITATIONS: tuple[tuple[str, str], ...] = (
    (
        "3GPP TS 22.186",
        N_(
            "3GPP TS 22.186, Enhancement of 3GPP support for V2X scenarios; Stage 1: "
            "remote driving, about 25 Mbit/s uplink per vehicle"
        ),
    ),
    (
        "ITU-R M.2410",
        N_(
            "Report ITU-R M.2410-0 (2017), Minimum requirements related to technical "
            "performance for IMT-2020 radio interface(s): user-experienced data rate "
            "(5th percentile), downlink 100 Mbit/s, uplink 50 Mbit/s"
        ),
    ),
    (
        "Ambulance 5G trials",
        N_(
            "Ambulance 5G trials in Japan, including Maebashi's 2019 4K video transmission "
            "over 28 GHz 5G: about 12 Mbit/s video plus 4 Mbit/s ultrasound at about 10 ms "
            "round-trip delay"
        ),
    ),
)
COUNCIL_PREFIX = "Maebashi 5G council:"
COUNCIL_GOALS = {
    "bus supervision video loop": N_("the video loop of remote bus supervision"),
    "4K remote class per classroom": N_("a 4K remote class in each classroom"),
    "smooth supervision video": N_("smooth supervision video"),
}


def cite(source: str, _: Callable[[str], str]) -> str:
    """A target's source as a publication (data entered by hand is shown as given)."""
    for prefix, citation in CITATIONS:
        if source.startswith(prefix) or prefix in source.split(":")[0]:
            return _(citation)
    if source.startswith(COUNCIL_PREFIX):
        goal = source[len(COUNCIL_PREFIX) :].strip()
        known = COUNCIL_GOALS.get(goal)
        return _("Maebashi local 5G council, agreed target: {goal}").format(
            goal=_(known) if known else goal
        )
    return source
