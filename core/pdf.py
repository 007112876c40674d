"""The Japanese font of every PDF the platform prints (the council report, statements).

IPAex Gothic (Debian: fonts-ipaexfont-gothic) is embedded when installed, so a PDF reads
the same on any viewer; otherwise reportlab's CID font, which Japanese viewers supply.
Needs reportlab (the ``report`` extra); it is imported only when a PDF is made.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

FONT_FILES = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
)


@cache
def japanese_font() -> str:
    """Register the Japanese font with reportlab once and return its name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    for f in FONT_FILES:
        if Path(f).is_file():
            pdfmetrics.registerFont(TTFont("IPAexGothic", f))
            return "IPAexGothic"
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    return "HeiseiKakuGo-W5"
