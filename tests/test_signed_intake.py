"""End to end: EOI → approval → sealed consent → `consentflow sign` → signed/ → signed."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.eoi_files import filled_eoi
from tests.processes import wait_for
from workflow.cli import app
from workflow.config import load_settings
from workflow.engine import Engine
from workflow.intake import Claimed

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    """Run ``consentflow --home HOME ARGS``; return exit code and standard output."""
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Path:
    """A home with the demo PKI configured as trust root, signer policy and office seal."""
    path = tmp_path / "home"
    path.mkdir()
    code, out = cli(path, "demo-pki", str(path / "pki"))
    assert code == 0, out
    config = out.split("add these lines to consentflow.toml:", 1)[1]
    (path / "consentflow.toml").write_text(
        f'[database]\nurl = "{database_url}"\n[intake]\nstability_ms = 200\n{config}'
    )
    return path


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    """The engine running on ``home`` in a thread."""
    running = Engine(load_settings(home))
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    assert wait_for((home / "signed" / ".processing").is_dir)
    yield running
    stop.set()
    thread.join(10)
    running.close()


def _issue(home: Path, engine: Engine) -> tuple[str, Path]:
    (home / "inbox" / "eoi.pdf").write_bytes(filled_eoi(org_name="Signed Network"))
    assert wait_for(lambda: len(engine.store.applications()) == 1)
    [application] = engine.store.applications()
    reference = str(application.reference)
    code, out = cli(home, "approve", reference, "--by", "anna")
    assert code == 0, out
    return reference, home / "outbox" / f"{reference}.pdf"


def test_signed_consent_makes_the_application_signed(home: Path, engine: Engine) -> None:
    """The Commission's signature by `consentflow sign` is verified; seal and signature valid."""
    reference, consent = _issue(home, engine)
    signed = home / "signed-by-commission.pdf"
    code, out = cli(
        home,
        "sign",
        str(consent),
        str(signed),
        "--p12",
        str(home / "pki" / "commission-signer.p12"),
    )
    assert code == 0, out

    code, out = cli(home, "verify", str(signed), "--json")
    assert code == 0, out
    os.rename(signed, home / "signed" / "returned.pdf")
    assert wait_for(lambda: engine.store.application(reference).state == "signed")  # type: ignore[union-attr]

    detail = json.loads(cli(home, "show", reference, "--json")[1])
    [report] = detail["signature_reports"]
    assert report["accepted"] is True
    assert report["indication"] == "TOTAL_PASSED"
    assert "Commission" in report["signer"]["subject"]
    checks = {check["code"]: check["ok"] for check in report["checks"]}
    assert checks["certification_broken"] is True  # the office seal is intact
    assert all(checks.values())
    assert detail["events"][-1]["actor"] == "commission"
    assert [doc["kind"] for doc in detail["documents"]] == ["eoi", "consent", "signed"]
    assert list((home / "signed").iterdir()) == [home / "signed" / ".processing"]


def test_rejected_signature_is_recorded_and_failed(home: Path, engine: Engine) -> None:
    """A consent signed by the office seal instead of the Commission is rejected with a report."""
    reference, consent = _issue(home, engine)
    forged = home / "forged.pdf"
    code, _ = cli(
        home, "sign", str(consent), str(forged), "--p12", str(home / "pki" / "office-seal.p12")
    )
    assert code == 0
    code, _ = cli(home, "verify", str(forged))
    assert code == 1
    os.rename(forged, home / "signed" / "forged.pdf")
    assert wait_for((home / "failed" / "forged.pdf.error.json").is_file)

    error = json.loads((home / "failed" / "forged.pdf.error.json").read_text())
    assert error["report"]["accepted"] is False
    detail = json.loads(cli(home, "show", reference, "--json")[1])
    assert detail["state"] == "consent_issued"
    [report] = detail["signature_reports"]
    assert report["accepted"] is False
    assert detail["events"][-1]["kind"] == "signature_rejected"


def test_unknown_document_is_not_issued_here(home: Path, engine: Engine) -> None:
    """A PDF that matches no issued consent is rejected: an EOI as being in the wrong folder
    (SPEC 7), any other PDF as not_issued_here."""
    (home / "signed" / "stranger.pdf").write_bytes(filled_eoi())
    assert wait_for((home / "failed" / "stranger.pdf.error.json").is_file)
    error = json.loads((home / "failed" / "stranger.pdf.error.json").read_text())
    assert error["code"] == "wrong_folder"
    assert cli(home, "verify", str(home / "failed" / "stranger.pdf"))[0] == 1
    assert cli(home, "verify", str(home / "consentflow.toml"))[0] == 2


def test_a_file_another_worker_finished_changes_nothing(home: Path, engine: Engine) -> None:
    """A signed copy whose ledger row is no longer claimed (another worker finished it after
    this one's lease lapsed) is verified, then left alone: no report, no state change."""
    reference, consent = _issue(home, engine)
    signed = home / "signed-by-commission.pdf"
    commission = str(home / "pki" / "commission-signer.p12")
    assert cli(home, "sign", str(consent), str(signed), "--p12", commission)[0] == 0
    data = signed.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    with engine.store.tx() as tx:
        item_id = tx.claim_item(
            folder="signed", original_name="late.pdf", claimed_name="late.pdf",
            size=len(data), owner="another", lease_until=datetime.now(UTC),
        )  # fmt: skip
    with engine.store.tx() as tx:
        tx.finish(item_id, status="done", outcome=reference, sha256=sha256)

    claimed = Claimed(item_id, "signed", signed, "late.pdf", len(data), data=data, sha256=sha256)
    assert engine.applications.receive_signed(claimed) == "already done"
    detail = json.loads(cli(home, "show", reference, "--json")[1])
    assert detail["state"] == "consent_issued"
    assert detail["signature_reports"] == []
