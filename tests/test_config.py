"""Configuration: file, environment, validation messages, and the README's table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO
from workflow.config import ConfigError, documented_keys, load_settings


def test_every_setting_is_in_the_readme() -> None:
    """Each configuration key has a row in the README's configuration table."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [key for key in documented_keys() if f"| `{key}` |" not in readme]
    assert missing == []


def test_spec_keys_exist() -> None:
    """The SPEC §8 key names are all there (a contract: extend, never rename)."""
    spec = {
        "database.url", "intake.stability_ms", "intake.polling_interval_s",
        "intake.rescan_interval_s", "intake.max_file_mb", "review.mode",
        "review.eligible_countries", "signature.trust_roots", "signature.signer_subject",
        "signature.signer_fingerprints", "signature.revocation", "signature.fetch",
        "signature.require_timestamp", "seal.p12", "seal.passphrase_env",
    }  # fmt: skip
    assert spec <= set(documented_keys())


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONSENTFLOW_<SECTION>__<KEY> wins over consentflow.toml."""
    (tmp_path / "consentflow.toml").write_text(
        '[review]\nmode = "auto"\neligible_countries = ["fi", "de"]\n[intake]\nstability_ms = 5\n'
    )
    monkeypatch.setenv("CONSENTFLOW_INTAKE__STABILITY_MS", "250")
    settings = load_settings(tmp_path)
    assert settings.review.mode == "auto"
    assert settings.review.eligible_countries == ("FI", "DE")
    assert settings.intake.stability_ms == 250
    assert settings.inbox == tmp_path.resolve() / "inbox"


def test_relative_sqlite_path_is_in_the_home_folder(tmp_path: Path) -> None:
    """The default database lives in the home folder, wherever the command runs."""
    settings = load_settings(tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'consentflow.db'}"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[review]\nmode = "sometimes"\n', "[review] mode"),
        ('[review]\neligible_countries = ["Finland"]\n', "[review] eligible_countries"),
        ('[signature]\nsigner_fingerprints = ["abc"]\n', "[signature] signer_fingerprints"),
        ('[signature]\nsigner_subject = "("\n', "[signature] signer_subject"),
        ('[signature]\nrevocation = "maybe"\n', "[signature] revocation"),
        ("[intake]\nmax_file_mb = 0\n", "[intake] max_file_mb"),
        # finite and bounded: these passed "> 0" and overflowed later, mid-work
        ("[intake]\nmax_file_mb = 1e308\n", "[intake] max_file_mb"),
        ("[intake]\nlease_s = inf\n", "[intake] lease_s"),
        ("[intake]\nretry_backoff_s = nan\n", "[intake] retry_backoff_s"),
        ("[intake]\nincomplete_grace_s = 1e300\n", "[intake] incomplete_grace_s"),
        ("[intake]\nretry_max_attempts = 100000\n", "[intake] retry_max_attempts"),
        ('[files]\ngroup = "no-such-group-here"\n', "[files] group"),
        ('[files]\ngroup_read = ["inbox"]\n', "[files] group_read"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    """A bad or misspelt key is reported by name, with its environment form."""
    (tmp_path / "consentflow.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert key in str(caught.value)
    assert "CONSENTFLOW_" in str(caught.value)


def test_settings_are_frozen(tmp_path: Path) -> None:
    """One frozen object is passed down; nothing can change it on the way."""
    settings = load_settings(tmp_path)
    with pytest.raises(Exception, match="frozen"):
        settings.review.mode = "auto"  # type: ignore[misc]


def test_files_group_opens_only_the_folders_named(tmp_path: Path) -> None:
    """[files] group names a real group; only the folders in group_read are opened to it."""
    import grp

    group = grp.getgrgid(os.getgid())
    (tmp_path / "consentflow.toml").write_text(f'[files]\ngroup = "{group.gr_name}"\n')
    files = load_settings(tmp_path).files
    assert (files.gid_for("outbox"), files.gid_for("archive")) == (group.gr_gid, None)
    assert load_settings(tmp_path.parent).files.gid_for("outbox") is None
