"""Private by default: the modes of every file and folder the service creates.

Real ``consentflow`` processes under the common umask 022, so that nothing private can owe
its mode to a careful umask.
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.eoi_files import broken_pdf, filled_eoi
from tests.processes import consentflow


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The umask most systems give a user; the processes started here inherit it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(home: Path) -> dict[str, int]:
    """Every path under ``home`` (relative) → its permission bits."""
    modes = {}
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            path = Path(root, name)
            modes[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def _run_home(tmp_path: Path) -> Path:
    """A home whose inbox its owner made 0775, holding a valid and a damaged EOI."""
    home = tmp_path / "home"
    home.mkdir()
    inbox = home / "inbox"
    inbox.mkdir()
    inbox.chmod(0o775)
    (inbox / "valid.pdf").write_bytes(filled_eoi(org_name="Valid Network"))
    (inbox / "broken.pdf").write_bytes(broken_pdf(filled_eoi()))
    return home


def test_everything_the_service_creates_is_private(tmp_path: Path) -> None:
    """Database, archive/, outbox/, failed/ and its reports: 0600 files, 0700 folders; the
    inbox keeps its owner's 0775, a signed/ folder created for the owner is 0700."""
    home = _run_home(tmp_path)
    result = consentflow(home, "run", "--once", env={"CONSENTFLOW_REVIEW__MODE": "auto"})
    assert result.returncode == 0, result.stderr[-3000:]
    modes = _modes(home)
    assert modes.pop("inbox") == 0o775
    created = {path: mode for path, mode in modes.items() if not path.startswith("inbox/")}
    assert {path.split("/")[0] for path in created} >= {
        "cf.db",
        "archive",
        "outbox",
        "failed",
        "signed",
    }
    assert len([p for p in created if p.startswith("outbox/")]) == 1
    assert sorted(p for p in created if p.startswith("failed/")) == [
        "failed/broken.pdf",
        "failed/broken.pdf.error.json",
    ]
    wrong = {
        path: oct(mode)
        for path, mode in {**created, "inbox/.processing": modes["inbox/.processing"]}.items()
        if mode != (0o700 if (home / path).is_dir() else 0o600)
    }
    assert wrong == {}


def test_a_group_may_read_the_outbox(tmp_path: Path) -> None:
    """``[files] group``: outbox/ is 0750 and its consents 0640, of that group; the rest stays
    private to the service's user."""
    group = grp.getgrnam("nogroup") if "nogroup" in {g.gr_name for g in grp.getgrall()} else None
    if group is None:
        pytest.skip("no group named nogroup on this system")
    home = _run_home(tmp_path)
    env = {"CONSENTFLOW_REVIEW__MODE": "auto", "CONSENTFLOW_FILES__GROUP": "nogroup"}
    result = consentflow(home, "run", "--once", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    [consent] = (home / "outbox").iterdir()
    for path, mode in ((home / "outbox", 0o750), (consent, 0o640)):
        st = path.stat()
        assert (oct(stat.S_IMODE(st.st_mode)), st.st_gid) == (oct(mode), group.gr_gid)
    archived = [p for p in (home / "archive").rglob("*") if p.is_file()]
    assert archived
    assert {stat.S_IMODE(p.stat().st_mode) for p in archived} == {0o600}
    assert stat.S_IMODE((home / "failed").stat().st_mode) == 0o700


def test_demo_pki_keys_are_private(tmp_path: Path) -> None:
    """``demo-pki DIR``: DIR 0700, the PKCS#12 keys 0600, the certificates 0644."""
    result = consentflow(tmp_path, "demo-pki", str(tmp_path / "pki"))
    assert result.returncode == 0, result.stderr[-3000:]
    modes = _modes(tmp_path / "pki")
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    assert modes == {
        "commission-root.pem": 0o644,
        "office-root.pem": 0o644,
        "commission-signer.pem": 0o644,
        "office-seal.pem": 0o644,
        "commission-signer.p12": 0o600,
        "office-seal.p12": 0o600,
    }


def test_a_dashboard_upload_that_fails_is_readable_by_the_failed_group(tmp_path: Path) -> None:
    """``[files] group_read = ["failed"]`` holds for a file uploaded in the dashboard too: its
    report in failed/ is 0640 of that group, like a dropped file's."""
    from workflow.config import load_settings
    from workflow.web.app import create_app

    group = grp.getgrnam("nogroup") if "nogroup" in {g.gr_name for g in grp.getgrall()} else None
    if group is None:
        pytest.skip("no group named nogroup on this system")
    home = tmp_path / "home"
    home.mkdir()
    (home / "consentflow.toml").write_text(
        '[files]\ngroup = "nogroup"\ngroup_read = ["failed"]\n', encoding="utf-8"
    )
    settings = load_settings(home)
    app = create_app(settings)
    app.state.web.store.ensure_schema()
    app.state.web.intake.prepare()
    app.state.web.intake.submit("signed", "notes.pdf", b"not a PDF\n", source="web")
    report = home / "failed" / "notes.pdf.error.json"
    st = report.stat()
    assert (oct(stat.S_IMODE(st.st_mode)), st.st_gid) == (oct(0o640), group.gr_gid)
