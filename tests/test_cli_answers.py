"""Every command answers with a sentence, never a traceback, and never changes what it reads
(issue 16): read-only commands open the database read-only, outputs are not overwritten,
mistakes name the option that fixes them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from forms.blank import render_blank_eoi
from forms.eoi import Lang
from tests.eoi_files import filled_eoi, invalid_eoi
from tests.processes import consentflow, without_override
from workflow.cli import app

runner = CliRunner()

READ_ONLY = (
    ("status",),
    ("status", "--json"),
    ("show", "SUP-2026-00001"),
    ("log",),
    ("audit", "verify"),
)


def _run(home: Path, *args: str) -> Result:
    return runner.invoke(app, ["--home", str(home), *args])


def _no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite home where one valid and one invalid EOI were processed."""
    home = tmp_path_factory.mktemp("processed")
    (home / "inbox").mkdir()
    (home / "inbox" / "a.pdf").write_bytes(filled_eoi(org_name="Alpha Network"))
    (home / "inbox" / "b.pdf").write_bytes(invalid_eoi(org_name="Beta Network"))
    (home / "inbox" / "c.pdf").write_bytes(b"not a pdf at all\n")
    (home / "inbox" / "d.pdf").write_bytes(render_blank_eoi(Lang.EN))  # sent back empty
    result = _run(home, "run", "--once", "--no-web")
    assert result.exit_code == 0, result.output
    return home


def test_importing_the_cli_loads_no_heavy_library() -> None:
    """`--help` and `status` must not pay for pyHanko, reportlab, pypdf, aiohttp, SQLAlchemy."""
    code = (
        "import sys, workflow.cli\n"
        "heavy = ('pyhanko', 'reportlab', 'pypdf', 'aiohttp', 'sqlalchemy', 'sqlmodel',"
        " 'alembic', 'pydantic_settings', 'cryptography', 'fastapi')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_status_reads_without_sqlalchemy(processed: Path) -> None:
    """On SQLite, status runs on sqlite3 alone (the start-up budget of SPEC §9)."""
    code = (
        "import sys\nfrom workflow.cli import app\n"
        f"try:\n    app(['--home', {str(processed)!r}, 'status'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'pyhanko', 'pypdf', 'alembic', 'reportlab'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "SUP-2026-00001" in out
    assert "LOADED []" in out


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_in_a_missing_home(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "nowhere"
    result = _run(missing, *args)
    _no_traceback(result)
    assert result.exit_code == 78
    assert f"the home folder {missing} does not exist" in result.output
    assert "--home" in result.output
    assert "consentflow --home DIR run" in result.output
    assert not missing.exists()


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_in_a_folder_that_is_not_a_home(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A folder without a database: said so, and nothing is created there."""
    result = _run(tmp_path, *args)
    _no_traceback(result)
    assert result.exit_code == 78
    assert f"{tmp_path} is not a consentflow home" in result.output
    assert "--home" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ("approve", "SUP-2026-00001"),
        ("reject", "SUP-2026-00001", "--reason", "x"),
        ("retry", "--all"),
        ("check", "x.pdf"),
        ("verify", "x.pdf"),
    ],
    ids=" ".join,
)
def test_other_commands_in_a_missing_home(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "nowhere"
    result = _run(missing, *args)
    _no_traceback(result)
    assert result.exit_code == 78
    assert "--home" in result.output
    assert not missing.exists()


def test_verify_never_creates_a_database(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"%PDF-1.7\n")
    result = _run(tmp_path, "verify", str(tmp_path / "x.pdf"))
    assert result.exit_code == 78
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x.pdf"]


def test_read_only_commands_do_not_wait_for_a_writer(processed: Path) -> None:
    """Another process's open write transaction does not hold status, show or log back."""
    writer = sqlite3.connect(processed / "consentflow.db", timeout=1, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        for args in READ_ONLY:
            started = time.monotonic()
            result = _run(processed, *args)
            assert result.exit_code == 0, result.output
            assert time.monotonic() - started < 5, args
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_read_only_commands_on_a_read_only_database(processed: Path, tmp_path: Path) -> None:
    """A database (and home) this user may only read: status, show, log, audit verify work."""
    prefix = without_override()
    home = tmp_path / "home"
    home.mkdir()
    for name in ("consentflow.db", "consentflow.db-wal", "consentflow.db-shm"):
        if (processed / name).exists():
            (home / name).write_bytes((processed / name).read_bytes())
    key = [p for p in processed.iterdir() if p.name.endswith(".key") or "key" in p.name]
    for path in key:
        if path.is_file():
            (home / path.name).write_bytes(path.read_bytes())
    shutil.copytree(processed / "archive", home / "archive")  # audit verify reads it too
    for path in (*home.iterdir(), home):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        for args in READ_ONLY:
            result = consentflow(
                home, *args, database_url=f"sqlite:///{home / 'consentflow.db'}", prefix=prefix
            )
            assert result.returncode == 0, (args, result.stderr[-2000:])
            assert "Traceback" not in result.stderr
        assert "SUP-2026-00001" in result.stdout or "intact" in result.stdout
    finally:
        home.chmod(0o755)


def test_references_are_case_insensitive(processed: Path) -> None:
    result = _run(processed, "show", "sup-2026-00001", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reference"] == "SUP-2026-00001"


def test_an_unknown_reference_says_how_to_list_them(processed: Path) -> None:
    for args in (("show", "SUP-2026-09999"), ("approve", "SUP-2026-09999")):
        result = _run(processed, *args)
        assert result.exit_code == 1
        assert "consentflow status" in result.output, result.output


def test_state_is_checked_without_pydantic_words(processed: Path) -> None:
    result = _run(processed, "status", "--state", "signd")
    assert result.exit_code == 2
    assert "Value error" not in result.output
    assert "'signd' is not a state" in result.output
    assert _run(processed, "status", "--state", "INVALID").exit_code == 0


# -- outputs -------------------------------------------------------------------------------


def test_form_eoi_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "eoi.pdf"
    out.write_bytes(b"the applicant's filled form")
    result = runner.invoke(app, ["form", "eoi", str(out)])
    assert result.exit_code == 1
    assert "--force" in result.output
    assert out.read_bytes() == b"the applicant's filled form"
    assert runner.invoke(app, ["form", "eoi", str(out), "--force"]).exit_code == 0
    assert out.read_bytes().startswith(b"%PDF")


def test_form_eoi_to_an_unwritable_place(tmp_path: Path) -> None:
    result = runner.invoke(app, ["form", "eoi", str(tmp_path / "no" / "such" / "eoi.pdf")])
    _no_traceback(result)
    assert result.exit_code == 1
    assert "cannot write" in result.output


def test_demo_pki_refuses_to_replace_keys(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert runner.invoke(app, ["demo-pki", str(pki)]).exit_code == 0
    before = (pki / "commission-signer.p12").read_bytes()
    result = runner.invoke(app, ["demo-pki", str(pki)])
    assert result.exit_code == 1
    assert "--force" in result.output
    assert (pki / "commission-signer.p12").read_bytes() == before
    assert runner.invoke(app, ["demo-pki", str(pki), "--force"]).exit_code == 0
    assert (pki / "commission-signer.p12").read_bytes() != before


def test_demo_pki_in_an_unwritable_place(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["demo-pki", str(tmp_path / "file" / "pki")])
    _no_traceback(result)
    assert result.exit_code == 1
    assert "cannot write the demo PKI" in result.output


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki") / "pki"
    assert runner.invoke(app, ["demo-pki", str(folder)]).exit_code == 0
    return folder


def test_sign_refuses_in_place_and_existing_outputs(tmp_path: Path, pki: Path) -> None:
    source = tmp_path / "consent.pdf"
    source.write_bytes(b"%PDF-1.7 issued\n")
    p12 = str(pki / "commission-signer.p12")
    same = runner.invoke(app, ["sign", str(source), str(source), "--p12", p12])
    assert same.exit_code == 2
    assert "OUT must differ from IN" in same.output
    (tmp_path / "out.pdf").write_bytes(b"keep")
    taken = runner.invoke(app, ["sign", str(source), str(tmp_path / "out.pdf"), "--p12", p12])
    assert taken.exit_code == 1
    assert "--force" in taken.output
    assert (tmp_path / "out.pdf").read_bytes() == b"keep"


def test_sign_a_file_that_is_not_a_consent(tmp_path: Path, pki: Path) -> None:
    """Not a consent: exit 1; not a PDF: exit 2; never 78, which means an unreadable key."""
    p12 = str(pki / "commission-signer.p12")
    blank = tmp_path / "blank.pdf"
    assert runner.invoke(app, ["form", "eoi", str(blank)]).exit_code == 0
    result = runner.invoke(app, ["sign", str(blank), str(tmp_path / "o1.pdf"), "--p12", p12])
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "CommissionSignature" in result.output
    text = tmp_path / "notes.pdf"
    text.write_text("minutes of the meeting\n")
    result = runner.invoke(app, ["sign", str(text), str(tmp_path / "o2.pdf"), "--p12", p12])
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "not a readable PDF" in result.output
    assert not (tmp_path / "o1.pdf").exists()
    assert not (tmp_path / "o2.pdf").exists()


def test_sign_with_a_wrong_passphrase_names_the_option(
    tmp_path: Path, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        pkcs12,
    )

    key, cert, extra = pkcs12.load_key_and_certificates(  # an EC key: demo_pki makes it
        (pki / "commission-signer.p12").read_bytes(), None
    )
    locked = tmp_path / "locked.p12"
    locked.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"s",
            key,  # type: ignore[arg-type]
            cert,
            extra,
            BestAvailableEncryption(b"right"),
        )
    )
    source = tmp_path / "in.pdf"
    source.write_bytes(b"%PDF-1.7\n")
    args = ["sign", str(source), str(tmp_path / "o.pdf"), "--p12", str(locked)]
    result = runner.invoke(app, args)
    _no_traceback(result)
    assert result.exit_code == 78
    assert "--passphrase-env" in result.output
    monkeypatch.setenv("SIGNER_PASS", "wrong")
    result = runner.invoke(app, [*args, "--passphrase-env", "SIGNER_PASS"])
    assert result.exit_code == 78
    assert "wrong passphrase" in result.output


def test_check_and_verify_of_a_file_that_is_not_a_pdf(processed: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.pdf"
    text.write_text("minutes of the meeting\n")
    check = _run(processed, "check", str(text))
    _no_traceback(check)
    assert check.exit_code == 2
    verify = _run(processed, "verify", str(text))
    _no_traceback(verify)
    assert verify.exit_code == 2
    assert "None" not in verify.output
    missing = _run(processed, "verify", str(tmp_path / "missing.pdf"))
    _no_traceback(missing)
    assert missing.exit_code == 2


# -- cosmetics -----------------------------------------------------------------------------


def test_log_lines_read_well(processed: Path) -> None:
    out = _run(processed, "log").stdout
    assert "received →received" not in out
    failed = [line for line in out.splitlines() if "file_failed" in line]
    assert failed and all("c.pdf" in line for line in failed), out


def test_help_shows_no_bool_after_flags() -> None:
    result = runner.invoke(app, ["status", "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output


def test_status_times_are_those_of_the_store(processed: Path) -> None:
    """The read-only reader's JSON equals the SQLAlchemy store's (records.summary_json)."""
    from workflow.records import summary_json
    from workflow.store import Store

    store = Store(f"sqlite:///{processed / 'consentflow.db'}")
    expected = [summary_json(row) for row in store.applications()]
    store.close()
    assert json.loads(_run(processed, "status", "--json").stdout) == expected
    reference = expected[0]["reference"]
    from workflow.records import application_json

    store = Store(f"sqlite:///{processed / 'consentflow.db'}")
    row = store.application(reference)
    assert row is not None
    detail = application_json(store, row)
    store.close()
    shown = json.loads(_run(processed, "show", reference, "--json").stdout)
    assert shown == json.loads(json.dumps(detail, default=str))


def test_an_application_without_a_name_or_country(processed: Path) -> None:
    """An empty form: its lines show placeholders and do not end in "()"."""
    rows = json.loads(_run(processed, "status", "--json").stdout)
    empty = next(row for row in rows if not row["org_name"])
    status_line = next(
        line for line in _run(processed, "status").stdout.splitlines() if empty["reference"] in line
    )
    assert "(no organisation name)" in status_line
    show_line = _run(processed, "show", empty["reference"]).stdout.splitlines()[0]
    assert not show_line.endswith("()"), show_line
    assert "(no organisation name)" in show_line


# -- form fields -----------------------------------------------------------------------------


def test_form_fields_lists_every_field_as_the_form_has_it(tmp_path: Path) -> None:
    """Names, kinds, required, lengths, choices, and the checkbox on-value of the real form."""
    from pypdf import PdfReader

    from forms.eoi import FIELDS, OrgType
    from tests.filling import _widgets, on_state

    result = runner.invoke(app, ["form", "fields", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == [spec.name for spec in FIELDS]
    assert rows["org_name"] == {
        "name": "org_name",
        "kind": "text",
        "required": True,
        "max_length": 200,
        "values": [],
        "on_value": None,
    }
    assert rows["org_type"]["values"] == [value.value for value in OrgType]
    assert rows["org_acronym"]["required"] is False
    blank = tmp_path / "eoi.pdf"
    assert runner.invoke(app, ["form", "eoi", str(blank)]).exit_code == 0
    widgets = _widgets(PdfReader(blank))
    for name, row in rows.items():
        if row["kind"] == "checkbox":
            assert on_state(widgets[name]) == "/" + row["on_value"], name
    plain = runner.invoke(app, ["form", "fields"]).stdout
    assert "ticked: /Yes" in plain
    assert "one of national_network" in plain


def test_run_still_makes_a_new_home(tmp_path: Path) -> None:
    """`consentflow --home DIR run` is how a home starts: DIR need not exist."""
    home = tmp_path / "new-home"
    result = _run(home, "run", "--once", "--no-web")
    assert result.exit_code == 0, result.output
    assert (home / "inbox").is_dir()
    assert (home / "consentflow.db").is_file()
    assert _run(home, "status").exit_code == 0


def test_stored_times_read_as_isoformat() -> None:
    """The reader's text shortcut gives exactly ``datetime.isoformat()``."""
    from datetime import UTC, datetime

    from workflow.readonly import _iso

    for moment in (
        datetime(2026, 11, 29, 13, 4, 53, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 10, tzinfo=UTC),
    ):
        stored = moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        assert _iso(stored) == moment.isoformat()
    assert _iso("2026-01-02 03:04:05") == "2026-01-02T03:04:05+00:00"
    assert _iso("2026-01-02T03:04:05+02:00") == "2026-01-02T01:04:05+00:00"


def test_sign_to_an_unwritable_place(processed: Path, pki: Path, tmp_path: Path) -> None:
    """A real consent, signed to a folder that does not exist: a sentence, exit 1."""
    reference = "SUP-2026-00001"
    approved = _run(processed, "approve", reference.lower())
    assert approved.exit_code == 0, approved.output
    consent = processed / "outbox" / f"{reference}.pdf"
    p12 = str(pki / "commission-signer.p12")
    out = tmp_path / "no" / "such" / "signed.pdf"
    result = runner.invoke(app, ["sign", str(consent), str(out), "--p12", p12])
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert f"cannot write {out}" in result.output
    same = runner.invoke(app, ["sign", str(consent), str(consent), "--p12", p12])
    assert same.exit_code == 2
    good = runner.invoke(app, ["sign", str(consent), str(tmp_path / "signed.pdf"), "--p12", p12])
    assert good.exit_code == 0, good.output


def test_a_database_server_that_does_not_answer(tmp_path: Path) -> None:
    """status against a PostgreSQL address nobody listens on: a sentence and exit 69."""
    result = consentflow(
        tmp_path, "status", database_url="postgresql+psycopg://nobody@127.0.0.1:9/none"
    )
    assert result.returncode == 69, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "the database cannot be reached" in result.stderr
    assert "[database] url" in result.stderr
