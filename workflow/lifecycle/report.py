"""A supporter's feedback report as a PDF (reportlab, the consent's Unicode font).

The answers are page text in DejaVu Sans, which covers every EU script, so what a
supporter typed in Greek or Bulgarian survives into the archived document.
"""

from __future__ import annotations

import io
from datetime import datetime
from importlib import resources

from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

_FONT = "DejaVuSans"
_BOLD = "DejaVuSans-Bold"
_LEFT, _RIGHT, _TOP, _BOTTOM = 56.0, A4[0] - 56.0, A4[1] - 64.0, 64.0

_LABELS = {
    "en": {
        "title": "Covenant Supporter feedback report",
        "reference": "Application",
        "supporter": "Supporter",
        "due": "Report due on",
        "sent": "Sent on",
        "members_actions": "Members' actions since they joined the Covenant",
        "services_offered": "Services offered as a supporter",
    },
    "fi": {
        "title": "Covenant-tukijan palauteraportti",
        "reference": "Hakemus",
        "supporter": "Tukija",
        "due": "Raportin määräpäivä",
        "sent": "Lähetetty",
        "members_actions": "Jäsenten toimet Covenantiin liittymisen jälkeen",
        "services_offered": "Tukijana tarjotut palvelut",
    },
}


def _fonts() -> None:
    registered = pdfmetrics.getRegisteredFontNames()
    for name in (_FONT, _BOLD):
        if name not in registered:
            path = resources.files("forms") / "fonts" / f"{name}.ttf"
            pdfmetrics.registerFont(TTFont(name, str(path)))


def render_feedback(
    *,
    reference: str,
    org_name: str,
    due_at: datetime,
    sent_at: datetime,
    answers: dict[str, str],
    lang: str = "en",
) -> bytes:
    """The report's PDF: who, for which due date, when, and each answer in full."""
    _fonts()
    labels = _LABELS.get(lang, _LABELS["en"])
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True)
    canvas.setTitle(f"{labels['title']} {reference}")
    canvas.setSubject(reference)
    y = _TOP

    def line(text: str, font: str, size: float, gap: float = 4) -> None:
        nonlocal y
        for part in simpleSplit(text, font, size, _RIGHT - _LEFT) or [""]:
            if y < _BOTTOM:
                canvas.showPage()
                y = _TOP
            canvas.setFont(font, size)
            canvas.drawString(_LEFT, y, part)
            y -= size + gap

    line(labels["title"], _BOLD, 16, 10)
    line(f"{labels['reference']}: {reference}", _FONT, 10)
    line(f"{labels['supporter']}: {org_name}", _FONT, 10)
    line(f"{labels['due']}: {due_at.date().isoformat()}", _FONT, 10)
    line(f"{labels['sent']}: {sent_at.isoformat(timespec='seconds')}", _FONT, 10, 14)
    for key in ("members_actions", "services_offered"):
        line(labels[key], _BOLD, 12, 6)
        for paragraph in answers.get(key, "").split("\n"):
            line(paragraph, _FONT, 10)
        y -= 10
    canvas.showPage()
    canvas.save()
    return out.getvalue()
