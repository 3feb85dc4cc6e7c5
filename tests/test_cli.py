"""The command line contract of SPEC §8: commands, JSON shapes and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from forms.eoi import FIELDS, FORM_ID
from forms.reading import read_fields
from tests.eoi_files import filled_eoi, invalid_eoi
from workflow.cli import app
from workflow.store import Store

runner = CliRunner()

SUMMARY_KEYS = {"reference", "state", "org_name", "country", "received_at", "updated_at"}


def cli(home: Path, *args: str) -> tuple[int, str]:
    """Run ``consentflow --home HOME ARGS``; return exit code and standard output."""
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Path:
    """A home folder whose consentflow.toml points at the test database."""
    path = tmp_path / "home"
    path.mkdir()
    (path / "consentflow.toml").write_text(f'[database]\nurl = "{database_url}"\n')
    return path


@pytest.fixture
def processed(home: Path) -> Path:
    """A home where one valid (SUP-…-00001) and one invalid EOI were processed."""
    (home / "inbox").mkdir()
    (home / "inbox" / "a.pdf").write_bytes(filled_eoi(org_name="Alpha Network"))
    assert cli(home, "run", "--once")[0] == 0
    (home / "inbox" / "b.pdf").write_bytes(invalid_eoi(org_name="Beta Network"))
    assert cli(home, "run", "--once")[0] == 0
    return home


def _reference(home: Path, org_name: str) -> str:
    code, out = cli(home, "status", "--json")
    assert code == 0
    return str(next(row["reference"] for row in json.loads(out) if row["org_name"] == org_name))


def test_form_eoi_writes_the_blank_form(tmp_path: Path) -> None:
    """`form eoi OUT --lang fi` writes a fillable form with every field and the form id."""
    out = tmp_path / "eoi-fi.pdf"
    result = runner.invoke(app, ["form", "eoi", str(out), "--lang", "fi"])
    assert result.exit_code == 0
    fields = read_fields(out.read_bytes())
    assert set(fields) == {spec.name for spec in FIELDS}
    assert fields["form_id"].value == FORM_ID
    assert fields["form_lang"].value == "fi"


def test_check_valid_invalid_unusable(tmp_path: Path) -> None:
    """`check --json` prints the documented shapes and exits 0, 1 and 2."""
    valid, invalid, unusable = tmp_path / "v.pdf", tmp_path / "i.pdf", tmp_path / "u.pdf"
    valid.write_bytes(filled_eoi())
    invalid.write_bytes(invalid_eoi())
    unusable.write_text("just text, named .pdf")

    code, out = cli(tmp_path, "check", str(valid), "--json")
    document = json.loads(out)
    assert code == 0
    assert {"valid", "form", "version", "fields", "problems", "findings"} <= set(document)
    assert document["valid"] is True
    assert (document["form"], document["version"]) == ("eoi", 1)
    assert document["fields"]["contact_phone"] == "+302101234567"
    assert document["problems"] == []

    code, out = cli(tmp_path, "check", str(invalid), "--json")
    document = json.loads(out)
    assert code == 1
    assert document["valid"] is False
    assert {problem["code"] for problem in document["problems"]} == {"email", "unchecked"}
    assert all(set(p) == {"field", "code", "message"} for p in document["problems"])

    code, out = cli(tmp_path, "check", str(unusable), "--json")
    assert code == 2
    document = json.loads(out)
    assert document["valid"] is False
    assert document["error"]["code"] == "not_pdf"
    assert document["error"]["message"]


def test_check_reports_findings(tmp_path: Path) -> None:
    """Findings from the configured eligible countries appear in `check --json`."""
    path = tmp_path / "x.pdf"
    path.write_bytes(filled_eoi(country="NO"))
    code, out = cli(tmp_path, "check", str(path), "--json")
    assert code == 0
    assert [f["code"] for f in json.loads(out)["findings"]] == ["country_not_eligible"]


def test_status_and_show_json(processed: Path) -> None:
    """`status --json` lists summaries; `show --json` adds fields, findings, documents, events."""
    code, out = cli(processed, "status", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [set(row) >= SUMMARY_KEYS for row in rows] == [True, True]
    assert {row["state"] for row in rows} == {"awaiting_review", "invalid"}

    code, out = cli(processed, "status", "--state", "invalid", "--json")
    assert [row["org_name"] for row in json.loads(out)] == ["Beta Network"]

    reference = _reference(processed, "Alpha Network")
    code, out = cli(processed, "show", reference, "--json")
    detail = json.loads(out)
    assert code == 0
    assert {"fields", "findings", "documents", "events", "signature_reports"} <= set(detail)
    assert set(detail) >= SUMMARY_KEYS
    assert detail["fields"]["org_name"] == "Alpha Network"
    assert [doc["kind"] for doc in detail["documents"]] == ["eoi"]
    assert [event["to_state"] for event in detail["events"]] == ["received", "awaiting_review"]

    assert cli(processed, "show", "SUP-1999-99999")[0] == 1


def test_approve_issues_and_reject_needs_a_reason(processed: Path) -> None:
    """approve issues the consent into outbox/; reject records the reason and the user."""
    alpha = _reference(processed, "Alpha Network")
    code, out = cli(processed, "approve", alpha, "--by", "anna")
    assert code == 0, out
    assert (processed / "outbox" / f"{alpha}.pdf").is_file()
    code, out = cli(processed, "show", alpha, "--json")
    detail = json.loads(out)
    assert detail["state"] == "consent_issued"
    assert detail["events"][-1]["actor"] == "anna"
    assert [doc["kind"] for doc in detail["documents"]] == ["eoi", "consent"]

    assert cli(processed, "approve", alpha)[0] == 1  # already issued: refused, not reissued

    (processed / "inbox" / "c.pdf").write_bytes(filled_eoi(org_name="Gamma Network"))
    cli(processed, "run", "--once")
    gamma = _reference(processed, "Gamma Network")
    assert cli(processed, "reject", gamma, "--reason", "  ")[0] == 1
    code, _ = cli(processed, "reject", gamma, "--reason", "not a network", "--by", "ben")
    assert code == 0
    detail = json.loads(cli(processed, "show", gamma, "--json")[1])
    assert detail["state"] == "ineligible"
    assert detail["events"][-1]["reason"] == "not a network"


def test_log_json_lists_events_newest_last(processed: Path) -> None:
    """`log --json` is the event list, oldest first, newest last."""
    code, out = cli(processed, "log", "--json")
    events = json.loads(out)
    assert code == 0
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)
    assert events[-1]["to_state"] == "invalid"


def test_retry_puts_a_failed_file_back(home: Path) -> None:
    """A file in failed/ goes back to the inbox with `retry`, and is processed again."""
    (home / "inbox").mkdir()
    (home / "inbox" / "x.pdf").write_text("not a pdf yet")
    cli(home, "run", "--once")
    assert (home / "failed" / "x.pdf.error.json").is_file()
    (home / "failed" / "x.pdf").write_bytes(filled_eoi(org_name="Retried Network"))
    code, out = cli(home, "retry", "x.pdf")
    assert code == 0
    assert "x.pdf" in out
    assert list((home / "failed").iterdir()) == []
    cli(home, "run", "--once")
    assert _reference(home, "Retried Network")


def test_audit_verify_exit_codes(processed: Path, database_url: str) -> None:
    """`audit verify` exits 0 on intact history and 1 naming the edited event."""
    assert cli(processed, "audit", "verify")[0] == 0
    store = Store(database_url)
    victim = store.events()[1]
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE events SET actor = 'mallory' WHERE id = :id"), {"id": victim.id}
        )
    store.close()
    code, out = cli(processed, "audit", "verify", "--json")
    assert code == 1
    assert json.loads(out)["bad_event"] == victim.id


def test_bad_configuration_names_the_key(tmp_path: Path) -> None:
    """An invalid setting stops the command with the key's name, not a traceback."""
    (tmp_path / "consentflow.toml").write_text('[review]\nmode = "sometimes"\n')
    result = runner.invoke(app, ["--home", str(tmp_path), "status"])
    assert result.exit_code == 78
    assert "[review] mode" in result.stderr
    assert "CONSENTFLOW_REVIEW__MODE" in result.stderr


def test_log_follow_prints_new_events_as_json_lines(processed: Path) -> None:
    """`log -f --json` prints the recent events, then each new one as it is written."""

    follower = subprocess.Popen(
        [sys.executable, "-m", "workflow", "--home", str(processed), "log", "-f", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    # If a line never comes, kill the follower so readline() returns instead of hanging.
    guard = threading.Timer(60, follower.kill)
    guard.start()
    try:
        assert follower.stdout is not None
        first = [json.loads(follower.stdout.readline()) for _ in range(4)]
        assert [event["kind"] for event in first] == ["received", "state", "received", "state"]
        reference = _reference(processed, "Alpha Network")
        assert cli(processed, "reject", reference, "--reason", "late", "--by", "eve")[0] == 0
        event = json.loads(follower.stdout.readline())
        assert (event["reference"], event["actor"], event["to_state"]) == (
            reference,
            "eve",
            "ineligible",
        )
    finally:
        guard.cancel()
        follower.kill()
        follower.wait()
