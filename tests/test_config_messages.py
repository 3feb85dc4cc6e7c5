"""Configuration mistakes answered with what to write instead (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow.config import ConfigError, load_settings


def _error(home: Path, toml: str) -> str:
    (home / "consentflow.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(home)
    return str(caught.value)


def test_a_misspelt_key_names_the_key_it_meant(tmp_path: Path) -> None:
    message = _error(tmp_path, '[review]\nmdoe = "auto"\n[intake]\nstabilty_ms = 10\n')
    assert "unknown key 'mdoe' in [review]; did you mean 'mode'?" in message
    assert "unknown key 'stabilty_ms' in [intake]; did you mean 'stability_ms'?" in message
    assert "Extra inputs" not in message


def test_a_misspelt_section_names_the_section_it_meant(tmp_path: Path) -> None:
    message = _error(tmp_path, "[sigature]\nfetch = true\n")
    assert "unknown section [sigature]; did you mean [signature]?" in message


def test_a_key_far_from_any_lists_the_known_keys(tmp_path: Path) -> None:
    message = _error(tmp_path, "[review]\nzzzzzz = 1\n")
    assert "unknown key 'zzzzzz' in [review]; known: 'mode', 'eligible_countries'" in message


def test_a_toml_syntax_error_shows_the_line_and_says_to_quote(tmp_path: Path) -> None:
    message = _error(tmp_path, "[review]\n# the office decides\n\nmode = auto\n")
    assert "line 4" in message
    assert "line 4: mode = auto" in message
    assert 'need quotes, e.g. mode = "auto"' in message


def test_country_codes_are_checked_against_iso_3166(tmp_path: Path) -> None:
    message = _error(tmp_path, '[review]\neligible_countries = ["FI", "XX", "EU"]\n')
    assert "not ISO 3166-1 alpha-2 country codes: XX, EU" in message
    assert "Value error" not in message
    (tmp_path / "consentflow.toml").write_text('[review]\neligible_countries = ["fi", "NO"]\n')
    assert load_settings(tmp_path).review.eligible_countries == ("FI", "NO")


@pytest.mark.parametrize("value", ['["FI", "SE"]', "FI,SE", " fi , se ", '["fi","se"]'], ids=repr)
def test_list_keys_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """A list key is a JSON list or comma-separated in its environment variable (README)."""
    monkeypatch.setenv("CONSENTFLOW_REVIEW__ELIGIBLE_COUNTRIES", value)
    assert load_settings(tmp_path).review.eligible_countries == ("FI", "SE")


def test_an_empty_list_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTFLOW_SIGNATURE__SIGNER_FINGERPRINTS", "")
    (tmp_path / "consentflow.toml").write_text(
        '[signature]\nsigner_fingerprints = ["' + "ab" * 32 + '"]\n'
    )
    assert load_settings(tmp_path).signature.signer_fingerprints == ()


def test_a_bad_json_list_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSENTFLOW_REVIEW__ELIGIBLE_COUNTRIES", '["FI", ')
    with pytest.raises(ConfigError, match="CONSENTFLOW_REVIEW__ELIGIBLE_COUNTRIES is not a JSON"):
        load_settings(tmp_path)


def test_a_misspelt_environment_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTFLOW_REVIEW__MDOE", "auto")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert "unknown key 'mdoe' in [review]" in str(caught.value)
    assert "CONSENTFLOW_REVIEW__MDOE" in str(caught.value)
    assert "did you mean 'mode'?" in str(caught.value)


def test_other_consentflow_variables_are_not_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONSENTFLOW_HOME, CONSENTFLOW_SEAL_PASSPHRASE… are not keys and are left alone."""
    monkeypatch.setenv("CONSENTFLOW_SEAL_PASSPHRASE", "x")
    monkeypatch.setenv("CONSENTFLOW_NOSUCH__THING", "x")
    monkeypatch.setenv("consentflow_review__mode", "auto")
    assert load_settings(tmp_path).review.mode == "auto"


def test_overrides_merge_into_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "consentflow.toml").write_text("[intake]\nstability_ms = 5\nlease_s = 9\n")
    monkeypatch.setenv("CONSENTFLOW_INTAKE__LEASE_S", "12")
    settings = load_settings(tmp_path, intake={"stability_ms": 7})
    assert (settings.intake.stability_ms, settings.intake.lease_s) == (7, 12.0)


def test_a_path_list_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example: one trust root, comma-separated form."""
    monkeypatch.setenv("CONSENTFLOW_SIGNATURE__TRUST_ROOTS", "pki/commission-root.pem")
    assert load_settings(tmp_path).signature.trust_roots == (Path("pki/commission-root.pem"),)


def test_the_readme_documents_list_variables() -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert 'export CONSENTFLOW_REVIEW__ELIGIBLE_COUNTRIES=\'["FI", "SE", "NO"]\'' in readme
    assert "# or: FI,SE,NO" in readme


def test_keys_are_a_fields_alias_when_it_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that is a Python keyword (``from``) is a field with an alias: the file and the
    environment use the alias, and a misspelling is compared with it."""
    from pydantic import BaseModel, ConfigDict, Field

    from workflow.config import _check_names, _environment

    class Letters(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
        from_: str = Field("", alias="from")
        to: str = ""

    sections: dict[str, type[BaseModel]] = {"letters": Letters}
    _check_names(tmp_path, {"letters": {"from": "a@example.org"}}, sections)
    with pytest.raises(ConfigError, match="unknown key 'form' in \\[letters\\]; did you mean"):
        _check_names(tmp_path, {"letters": {"form": "x"}}, sections)
    monkeypatch.setenv("CONSENTFLOW_LETTERS__FROM", "b@example.org")
    assert _environment(sections) == {"letters": {"from": "b@example.org"}}
