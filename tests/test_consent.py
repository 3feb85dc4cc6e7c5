"""The consent PDF: reproducible body, printed EU scripts, one empty Commission signature field."""

from __future__ import annotations

import dataclasses
import datetime
import io
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields
from pypdf import PdfReader

from forms.consent import REFERENCE_INFO_KEY, SIGNATURE_FIELD, render_consent, render_consent_body
from forms.eoi import COMMITMENTS, EOI, Lang, OrgType
from forms.texts import text
from tests.conftest import need_tool
from tests.samples import TEXT_VALUES

REFERENCE = "SUP-2026-00042"
ISSUED_AT = datetime.datetime(2026, 1, 15, 10, 30, tzinfo=datetime.UTC)
#: Applicant values printed on the consent, in Greek, Cyrillic and Polish.
PRINTED = (
    "org_name",
    "org_acronym",
    "address_street",
    "address_city",
    "website",
    "representative_name",
    "representative_position",
)


def sample_eoi(lang: Lang = Lang.EN, **overrides: str) -> EOI:
    """An EOI holding tests/samples.py values, as validation would have typed them."""
    values = {name: TEXT_VALUES[name] for name in TEXT_VALUES}
    values.update(overrides)
    return EOI(
        org_name=values["org_name"],
        org_acronym=values["org_acronym"],
        org_type=OrgType(values["org_type"]),
        country=values["country"],
        address_street=values["address_street"],
        address_postcode=values["address_postcode"],
        address_city=values["address_city"],
        website=values["website"],
        member_count=int(values["member_count"]),
        contact_name=values["contact_name"],
        contact_position=values["contact_position"],
        contact_email=values["contact_email"],
        contact_phone="+302101234567",
        representative_name=values["representative_name"],
        representative_position=values["representative_position"],
        services=values["services"],
        languages=values["languages"],
        date=values["date"],
        place=values["place"],
        lang=lang,
    )


@pytest.fixture(scope="module")
def consent() -> bytes:
    """The issued English consent for the sample EOI."""
    return render_consent(sample_eoi(), reference=REFERENCE, issued_at=ISSUED_AT)


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a poppler tool that must succeed; its output as text."""
    return subprocess.run(
        [need_tool(name), *args], check=True, capture_output=True, text=True, encoding="utf-8"
    )


def page_text(pdf: bytes, tmp_path: Path) -> str:
    """The text pdftotext extracts (UTF-8), whitespace runs folded to one space."""
    source = tmp_path / "consent.pdf"
    source.write_bytes(pdf)
    return " ".join(run_tool("pdftotext", "-enc", "UTF-8", str(source), "-").stdout.split())


def info_of(pdf: bytes) -> Any:
    """The document information dictionary of the latest revision."""
    return cast(Any, PdfReader(io.BytesIO(pdf)).trailer["/Info"]).get_object()


def test_body_is_byte_identical_for_the_same_input_and_time() -> None:
    """The reportlab stage gives the same bytes twice, and other bytes for another time."""
    eoi = sample_eoi()
    first = render_consent_body(eoi, reference=REFERENCE, issued_at=ISSUED_AT)
    # Another document in between: reportlab's per-process font state must not leak into it.
    render_consent_body(sample_eoi(Lang.FI), reference="SUP-2026-00001", issued_at=ISSUED_AT)
    again = render_consent_body(eoi, reference=REFERENCE, issued_at=ISSUED_AT)
    later = render_consent_body(
        eoi, reference=REFERENCE, issued_at=ISSUED_AT + datetime.timedelta(days=1)
    )
    assert first == again
    assert later != first


def test_issued_file_extends_the_body(consent: bytes) -> None:
    """The field is an incremental update: the reproducible body is a byte-exact prefix."""
    body = render_consent_body(sample_eoi(), reference=REFERENCE, issued_at=ISSUED_AT)
    assert consent.startswith(body)
    assert len(consent) > len(body)


def test_applicant_text_comes_back_exactly(consent: bytes, tmp_path: Path) -> None:
    """Greek, Cyrillic and Polish values are page text that pdftotext returns unchanged."""
    printed = page_text(consent, tmp_path)
    for name in PRINTED:
        assert TEXT_VALUES[name] in printed, name
    assert "Greece (GR)" in printed
    assert REFERENCE in printed
    assert "2026-01-15" in printed


def test_render_shows_ink_and_no_missing_glyphs(consent: bytes, tmp_path: Path) -> None:
    """pdftoppm renders every page without a font complaint, and the page is not blank."""
    source = tmp_path / "consent.pdf"
    source.write_bytes(consent)
    result = run_tool("pdftoppm", "-png", "-r", "80", str(source), str(tmp_path / "page"))
    assert "font" not in result.stderr.lower()
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    for png in pages:
        with Image.open(png) as image:
            gray = image.convert("L")
            dark = sum(gray.histogram()[:128])
        assert dark > 2000, png.name


def test_exactly_one_empty_commission_signature_field(consent: bytes) -> None:
    """pyHanko lists one signature field, CommissionSignature, unsigned, on the last page."""
    reader = PdfFileReader(io.BytesIO(consent))
    fields = list(enumerate_sig_fields(reader))
    assert [(name, value) for name, value, _ref in fields] == [(SIGNATURE_FIELD, None)]
    assert [name for name, *_ in enumerate_sig_fields(reader, filled_status=False)] == [
        SIGNATURE_FIELD
    ]
    widget = fields[0][2].get_object()
    assert widget.raw_get("/P") == reader.root["/Pages"]["/Kids"].raw_get(-1)
    llx, lly, urx, ury = (float(v) for v in widget["/Rect"])
    assert urx - llx > 150 and ury - lly > 50


def test_signature_flags_are_append_only(consent: bytes) -> None:
    """/SigFlags is 3 (signatures exist, append only) in the issued revision."""
    acro_form = cast(Any, PdfReader(io.BytesIO(consent)).trailer["/Root"])["/AcroForm"]
    assert acro_form["/SigFlags"] == 3


def test_fonts_are_embedded(consent: bytes, tmp_path: Path) -> None:
    """pdffonts lists only DejaVu fonts, every one embedded."""
    source = tmp_path / "consent.pdf"
    source.write_bytes(consent)
    rows = run_tool("pdffonts", str(source)).stdout.splitlines()[2:]
    assert rows
    for row in rows:
        assert "DejaVuSans" in row, row
        # columns: name type encoding emb sub uni object-id generation
        assert row.split()[-5] == "yes", row


def test_reference_is_in_the_metadata(consent: bytes) -> None:
    """Subject, keywords and the custom /ConsentflowReference key carry the reference."""
    info = info_of(consent)
    assert info[REFERENCE_INFO_KEY] == REFERENCE
    assert REFERENCE in info["/Subject"]
    assert REFERENCE in info["/Keywords"]
    assert TEXT_VALUES["org_name"] in info["/Title"]
    assert info["/CreationDate"].startswith("D:20260115103000")


@pytest.mark.parametrize("lang", list(Lang), ids=str)
def test_commitments_and_suspension_are_in_the_form_language(lang: Lang, tmp_path: Path) -> None:
    """The EOI's language (the default) gives that language's commitments and clauses."""
    pdf = render_consent(sample_eoi(lang), reference=REFERENCE, issued_at=ISSUED_AT)
    printed = page_text(pdf, tmp_path)
    for key in (*COMMITMENTS, "suspension", "signature_heading", "title"):
        assert " ".join(text(lang, "consent", key).split()) in printed, key


def test_finnish_consent_is_finnish(tmp_path: Path) -> None:
    """lang=FI prints Finnish commitments, country name and date, whatever the EOI's language."""
    pdf = render_consent(sample_eoi(), reference=REFERENCE, issued_at=ISSUED_AT, lang=Lang.FI)
    printed = page_text(pdf, tmp_path)
    assert "tunnustamaan julkisesti sopimuksen tärkeäksi osaksi omaa toimintaansa" in printed
    assert "Euroopan komission puolesta" in printed
    assert "Kreikka (GR)" in printed
    assert "Antopäivä: 15.1.2026" in printed
    assert "promote Covenant membership" not in printed


@pytest.mark.parametrize(
    "hostile",
    ["<b>&", "Tom & Jerry <i>ry</i>", "</para><font size=40>X</font>", "&amp; &lt; &#65;"],
)
def test_markup_in_values_is_printed_literally(hostile: str, tmp_path: Path) -> None:
    """XML or reportlab markup typed by an applicant is printed as typed, never interpreted."""
    eoi = sample_eoi(org_name=hostile, representative_name=f"{hostile} Nowak")
    printed = page_text(render_consent(eoi, reference=REFERENCE, issued_at=ISSUED_AT), tmp_path)
    assert hostile in printed
    assert f"{hostile} Nowak" in printed


def test_long_values_put_the_field_on_the_last_page() -> None:
    """When the data runs over a page, the signature field follows its box onto the last page."""
    eoi = dataclasses.replace(
        sample_eoi(Lang.FI),
        org_name="Ελληνικό Δίκτυο Πόλεων " * 8,
        address_street="Łódzka 15/3, Żółć " * 12,
        representative_position="Президент на Съюза на общините " * 12,
    )
    pdf = render_consent(eoi, reference=REFERENCE, issued_at=ISSUED_AT)
    reader = PdfFileReader(io.BytesIO(pdf))
    pages = reader.root["/Pages"]["/Kids"]
    assert len(pages) > 1
    ((_name, _value, ref),) = enumerate_sig_fields(reader)
    assert ref.get_object().raw_get("/P") == pages.raw_get(-1)


def test_naive_issue_time_is_refused() -> None:
    """An issue time without a timezone is a caller error, not a silently shifted date."""
    with pytest.raises(ValueError, match="timezone"):
        render_consent(sample_eoi(), reference=REFERENCE, issued_at=datetime.datetime(2026, 1, 1))
