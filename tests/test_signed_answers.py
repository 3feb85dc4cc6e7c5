"""Every file in signed/ gets an answer (SPEC 7): unsigned consent, EOI, seal as issued, reissue."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.eoi_files import filled_eoi
from tests.processes import wait_for
from workflow.cli import app
from workflow.config import load_settings
from workflow.engine import Engine
from workflow.store import Store

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    """Run ``consentflow --home HOME ARGS``; return exit code and output."""
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout + result.stderr


def _configure(home: Path, database_url: str, *, seal: bool) -> None:
    """Write consentflow.toml for the demo PKI (made once), with or without the seal."""
    printed = home / "pki.toml"
    if not printed.exists():
        code, out = cli(home, "demo-pki", str(home / "pki"))
        assert code == 0, out
        printed.write_text(out.split("add these lines to consentflow.toml:", 1)[1])
    config = printed.read_text()
    if not seal:
        config = config.split("[seal]", 1)[0]
    (home / "consentflow.toml").write_text(
        f'[database]\nurl = "{database_url}"\n[intake]\nstability_ms = 200\n{config}'
    )


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Path:
    """A home with the demo PKI as trust root, signer policy and office seal."""
    path = tmp_path / "home"
    path.mkdir()
    _configure(path, database_url, seal=True)
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


def _issue(home: Path, engine: Engine, org: str = "Answer Network") -> tuple[str, Path]:
    (home / "inbox" / "eoi.pdf").write_bytes(filled_eoi(org_name=org))
    assert wait_for(lambda: len(engine.store.applications()) == 1)
    [application] = engine.store.applications()
    reference = str(application.reference)
    code, out = cli(home, "approve", reference, "--by", "anna")
    assert code == 0, out
    return reference, home / "outbox" / f"{reference}.pdf"


def _sign(home: Path, consent: Path, out: Path) -> Path:
    signer = str(home / "pki" / "commission-signer.p12")
    code, text = cli(home, "sign", str(consent), str(out), "--p12", signer)
    assert code == 0, text
    return out


def _error(home: Path, name: str) -> dict[str, object]:
    path = home / "failed" / f"{name}.error.json"
    assert wait_for(path.is_file), sorted(p.name for p in (home / "failed").iterdir())
    error: dict[str, object] = json.loads(path.read_text())
    return error


def test_unsigned_consent_is_failed_with_a_sentence_and_recorded(
    home: Path, engine: Engine
) -> None:
    """The issued consent itself in signed/: failed/, saying it still needs the signature."""
    reference, consent = _issue(home, engine)
    (home / "signed" / "unsigned.pdf").write_bytes(consent.read_bytes())
    error = _error(home, "unsigned.pdf")
    assert error["code"] == "unsigned"
    assert "still needs the Commission's signature" in str(error["message"])
    detail = json.loads(cli(home, "show", reference, "--json")[1])
    assert detail["state"] == "consent_issued"
    [report] = detail["signature_reports"]
    assert report["accepted"] is False
    assert detail["events"][-1]["kind"] == "signature_rejected"


def test_eoi_in_signed_is_in_the_wrong_folder(home: Path, engine: Engine) -> None:
    """An EOI in signed/, known or not, is rejected as wrong_folder, not a silent duplicate."""
    _issue(home, engine)
    (home / "signed" / "known.pdf").write_bytes(
        (home / "archive").joinpath(*_eoi_path(engine)).read_bytes()
    )
    assert _error(home, "known.pdf")["code"] == "wrong_folder"
    (home / "signed" / "stranger.pdf").write_bytes(filled_eoi(org_name="Stranger"))
    assert _error(home, "stranger.pdf")["code"] == "wrong_folder"


def _eoi_path(engine: Engine) -> tuple[str, str]:
    [application] = engine.store.applications()
    sha = application.eoi_sha256
    return sha[:2], sha


def test_seal_configured_after_issue_does_not_reject_the_consent(
    tmp_path: Path, database_url: str
) -> None:
    """README's walkthrough order: approve unsealed, then configure the seal: still accepted."""
    home = tmp_path / "home"
    home.mkdir()
    _configure(home, database_url, seal=False)
    (home / "inbox").mkdir(exist_ok=True)
    (home / "inbox" / "eoi.pdf").write_bytes(filled_eoi(org_name="Walkthrough Network"))
    code, out = cli(home, "run", "--once")
    assert code == 0, out
    store = Store(load_settings(home).database_url)
    [application] = store.applications()
    store.close()
    reference = str(application.reference)
    assert cli(home, "approve", reference, "--by", "anna")[0] == 0
    signed = _sign(home, home / "outbox" / f"{reference}.pdf", tmp_path / "signed.pdf")
    _configure(home, database_url, seal=True)  # the seal arrives after the consent left
    code, out = cli(home, "verify", str(signed), "--json")
    assert code == 0, out
    checks = {c["code"]: c for c in json.loads(out)["checks"]}
    assert "without an office seal" in checks["certification_broken"]["message"]


def test_reissue_supersedes_the_old_consent(home: Path, engine: Engine, tmp_path: Path) -> None:
    """`consentflow reissue REF`: a new consent; a signed copy of the old one is superseded."""
    reference, consent = _issue(home, engine)
    old_signed = _sign(home, consent, tmp_path / "old-signed.pdf")
    code, out = cli(home, "reissue", reference, "--reason", "the seal changed", "--by", "anna")
    assert code == 0, out
    assert "reissued" in out
    code, out = cli(home, "verify", str(old_signed), "--json")
    assert code == 1, out
    assert json.loads(out)["checks"][-1]["code"] == "superseded"
    os.rename(old_signed, home / "signed" / "old-signed.pdf")
    assert _error(home, "old-signed.pdf")["code"] == "superseded"

    new_signed = _sign(home, home / "outbox" / f"{reference}.pdf", tmp_path / "new-signed.pdf")
    os.rename(new_signed, home / "signed" / "new-signed.pdf")
    assert wait_for(lambda: engine.store.application(reference).state == "signed")  # type: ignore[union-attr]
    events = [e["kind"] for e in json.loads(cli(home, "show", reference, "--json")[1])["events"]]
    assert "reissued" in events
    code, out = cli(home, "reissue", reference, "--reason", "again")
    assert code != 0  # signed: nothing to reissue
