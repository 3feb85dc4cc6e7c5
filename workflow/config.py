"""Configuration: ``consentflow.toml`` in the home folder, overridden by environment (SPEC §8).

Every key is ``[section] key`` in the file and ``CONSENTFLOW_<SECTION>__<KEY>`` in the
environment (the environment wins). The result is one frozen :class:`Settings`
object, validated at start-up and passed down explicitly; nothing below the CLI
reads the environment or the file. The key names are a contract with operators:
add keys, never rename them. Every key is documented in the README's table
(a test checks this).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

CONFIG_FILE = "consentflow.toml"
ENV_PREFIX = "CONSENTFLOW_"

#: The 27 EU member states: the default list of eligible countries.
EU_COUNTRIES = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseSettings(_Section):
    """``[database]``: where the store lives."""

    url: str = Field(
        "sqlite:///consentflow.db",
        description="SQLAlchemy URL; a relative SQLite path is relative to the home folder",
    )


class IntakeSettings(_Section):
    """``[intake]``: how the watched folders are read.

    Every duration and size is finite and bounded: a value such as ``1e308`` or ``inf``
    would pass a plain ``> 0`` check and overflow later, in the middle of the work.
    """

    stability_ms: int = Field(
        1000,
        ge=0,
        le=3_600_000,
        description="unchanged size/mtime needed when no close/rename event confirms",
    )
    polling_interval_s: float = Field(
        0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="0: native events; > 0: poll every N seconds (network filesystems)",
    )
    rescan_interval_s: float = Field(
        300,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="full rescan, whatever the events said",
    )
    max_file_mb: float = Field(
        20,
        gt=0,
        le=1024,
        allow_inf_nan=False,
        description="larger files go to failed/ as too_large",
    )
    incomplete_grace_s: float = Field(
        60,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="how long a file found by a scan (no close or rename seen) that is not yet "
        "a whole PDF is waited for before it is processed as it is",
    )
    retry_max_attempts: int = Field(
        8, ge=1, le=100, description="attempts for transient errors before the file goes to failed/"
    )
    retry_backoff_s: float = Field(
        2,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="first retry delay; doubles each attempt, at most an hour",
    )
    lease_s: float = Field(
        60,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="a worker's hold on a claimed file; another resumes it after this",
    )


#: The folders whose contents ``[files] group_read`` may open to a group.
SHAREABLE = ("outbox", "archive", "failed")


class FilesSettings(_Section):
    """``[files]``: who may read what the service writes (private to its user by default)."""

    group: str = Field(
        "", description="a group (name or number) that may read the folders in group_read"
    )
    group_read: tuple[Literal["outbox", "archive", "failed"], ...] = Field(
        ("outbox",), description="which of outbox, archive, failed the group may read"
    )

    @field_validator("group")
    @classmethod
    def _known_group(cls, value: str) -> str:
        if value:
            _group_id(value)
        return value

    def gid_for(self, folder: str) -> int | None:
        """The group that may read ``folder`` (one of `SHAREABLE`), or ``None``: private."""
        if not self.group or folder not in self.group_read:
            return None
        return _group_id(self.group)


def _group_id(name: str) -> int:
    import grp  # noqa: PLC0415 - POSIX only, and only when a group is configured

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise ValueError(f"there is no group named {name!r} on this system") from None


class ApplySettings(_Section):
    """``[apply]``: the online EOI (``/apply``): how often one client address may send it."""

    burst: int = Field(10, ge=1, le=100_000, description="forms one address may send at once")
    every_s: float = Field(
        60, gt=0, le=86_400, description="after the burst, one more form per this many seconds"
    )


class ReviewSettings(_Section):
    """``[review]``: the office's eligibility decision."""

    mode: Literal["manual", "auto"] = Field(
        "manual", description="auto: approve and issue the consent when there are no findings"
    )
    eligible_countries: tuple[str, ...] = Field(
        EU_COUNTRIES, description="ISO 3166-1 alpha-2 codes; default: the EU member states"
    )

    @field_validator("eligible_countries")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        codes = tuple(code.strip().upper() for code in value)
        bad = [code for code in codes if not _is_country(code)]
        if bad:
            raise ValueError(
                f"not ISO 3166-1 alpha-2 country codes: {', '.join(bad)} "
                "(two letters such as FI, DE, FR)"
            )
        return codes


def _is_country(code: str) -> bool:
    """Whether ``code`` is an assigned ISO 3166-1 alpha-2 code (pycountry's table)."""
    if not re.fullmatch(r"[A-Z]{2}", code):
        return False
    import pycountry  # noqa: PLC0415 - only when countries are configured

    return pycountry.countries.get(alpha_2=code) is not None


class SignatureSettings(_Section):
    """``[signature]``: what makes a Commission signature acceptable (SPEC §7)."""

    trust_roots: tuple[Path, ...] = Field(
        (), description="PEM files: the only trust anchors (relative to the home folder)"
    )
    signer_subject: str = Field(
        "",
        description="RFC 4514 attributes the signer must have, each whole (else a regex over "
        "the whole subject)",
    )
    signer_fingerprints: tuple[str, ...] = Field(
        (), description="SHA-256 (hex) of accepted signer certificates; empty: any"
    )
    revocation: Literal["off", "soft-fail", "hard-fail"] = Field(
        "soft-fail", description="revocation policy"
    )
    fetch: bool = Field(False, description="fetch OCSP/CRL/certificates from URLs in the PDF")
    require_timestamp: bool = Field(False, description="reject signatures without a timestamp")

    @field_validator("signer_subject")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("signer_fingerprints")
    @classmethod
    def _hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        prints = tuple(fp.replace(":", "").strip().lower() for fp in value)
        bad = [fp for fp in prints if not re.fullmatch(r"[0-9a-f]{64}", fp)]
        if bad:
            raise ValueError(f"not SHA-256 fingerprints (64 hex digits): {', '.join(bad)}")
        return prints


class SealSettings(_Section):
    """``[seal]``: the office's certification of issued consents."""

    p12: Path | None = Field(None, description="PKCS#12 file; empty: issue without certification")
    passphrase_env: str = Field(
        "CONSENTFLOW_SEAL_PASSPHRASE", description="environment variable holding the passphrase"
    )

    @field_validator("p12", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value


class RemindersSettings(_Section):
    """``[reminders]``: when an unsigned consent needs someone's attention."""

    signature_after_days: float = Field(
        7, gt=0, description="an issued consent unsigned this long needs a reminder"
    )
    repeat_days: float = Field(7, gt=0, description="then again every N days")
    max_reminders: int = Field(
        5, ge=1, le=100, description="at most this many reminders per issued consent"
    )


class MailSettings(_Section):
    """``[mail]``: the intake mailbox (IMAP) and the notifications' SMTP server (SPEC §11)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    imap_url: str = Field(
        "", description="imaps://user@host:993/INBOX (imap:// only to a local server); empty: none"
    )
    imap_password_env: str = Field(
        "CONSENTFLOW_IMAP_PASSWORD", description="environment variable holding the IMAP password"
    )
    poll_interval_s: float = Field(
        60, gt=0, le=86_400, allow_inf_nan=False, description="when the server has no IDLE"
    )
    processed_folder: str = Field(
        "", description="move done messages here; empty: keyword $consentflow"
    )
    smtp_url: str = Field(
        "",
        description="smtp+starttls://user@host:587, smtps://…, or smtp://127.0.0.1:25; empty: none",
    )
    smtp_password_env: str = Field(
        "CONSENTFLOW_SMTP_PASSWORD", description="environment variable holding the SMTP password"
    )
    from_: str = Field(
        "Covenant of Mayors office <office@example.org>",
        alias="from",
        description="sender of every message; its address is never answered",
    )
    office_to: str = Field("", description="where the office is told of work waiting")
    commission_to: str = Field("", description="where consents to sign and reminders go")
    retry_backoff_s: float = Field(
        30, gt=0, le=3600, allow_inf_nan=False,
        description="first retry delay of a message; doubles each attempt, at most an hour",
    )  # fmt: skip
    retry_max_attempts: int = Field(
        12, ge=1, le=100, description="attempts before a message is marked failed"
    )
    timeout_s: float = Field(
        30, gt=0, le=600, allow_inf_nan=False, description="network timeout of IMAP and SMTP"
    )

    @model_validator(mode="before")
    @classmethod
    def _one_from(cls, data: Any) -> Any:
        # ``from`` is a Python keyword, so the field is ``from_``. The defaults come by that
        # name, the file and the environment by ``from``: the latter wins.
        if isinstance(data, dict) and "from_" in data:
            data = dict(data)
            default = data.pop("from_")
            data.setdefault("from", default)
        return data

    @field_validator("imap_url", "smtp_url")
    @classmethod
    def _mail_url(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value:
            return value
        schemes = ("imap", "imaps") if info.field_name == "imap_url" else (
            "smtp", "smtps", "smtp+starttls"
        )  # fmt: skip
        scheme = value.partition("://")[0].lower()
        if scheme not in schemes or "://" not in value:
            raise ValueError(f"expected a URL starting with {' or '.join(schemes)}://")
        return value


class FeedbackSettings(_Section):
    """``[feedback]``: supporters' profile links and regular reports (SPEC §12)."""

    period_months: int = Field(
        12, ge=1, le=120, description="an active supporter owes a feedback report this often"
    )
    answer_days: float = Field(
        30, gt=0, le=3650, description="a report not sent this long after it fell due is late"
    )
    reminder_days: float = Field(
        14, gt=0, le=3650, description="remind a supporter of an owed report every N days"
    )
    link_days: float = Field(
        60, gt=0, le=3650, description="how long a link sent to a supporter stays valid"
    )


class WebSettings(_Section):
    """``[web]``: the office dashboard (SPEC §10)."""

    enabled: bool = Field(True, description="consentflow run serves the dashboard too")
    listen: str = Field("127.0.0.1:8765", description="HOST:PORT the dashboard listens on")
    public_url: str = Field(
        "", description="base of links given out, e.g. https://supporters.example.org"
    )
    session_hours: float = Field(12, gt=0, le=24 * 30, description="how long a sign-in lasts")
    read_burst: int = Field(
        60, ge=1, le=1_000_000, description="public pages one address may read at once"
    )
    read_every_s: float = Field(
        1, gt=0, le=3600, description="after the burst, one more page per this many seconds"
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8765, got {value!r}")
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(f"expected an http(s) URL such as https://example.org, got {value!r}")
        return value

    @property
    def host(self) -> str:
        """The host part of ``listen`` (brackets of an IPv6 address removed)."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return int(self.listen.rpartition(":")[2])

    @property
    def secure_cookies(self) -> bool:
        """Cookies are ``Secure`` when the dashboard is published over https."""
        return self.public_url.startswith("https://")


class Settings(BaseModel):
    """Everything configurable, frozen; build it with :func:`load_settings`.

    A section is a pydantic model and one field here; :func:`load_settings` finds the
    sections, their keys and their environment variables from these fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(Path("."), description="runtime folder (inbox/, signed/, outbox/, …)")
    database: DatabaseSettings = DatabaseSettings()
    intake: IntakeSettings = IntakeSettings()
    review: ReviewSettings = ReviewSettings()
    signature: SignatureSettings = SignatureSettings()
    seal: SealSettings = SealSettings()
    reminders: RemindersSettings = RemindersSettings()
    mail: MailSettings = MailSettings()
    web: WebSettings = WebSettings()
    apply: ApplySettings = ApplySettings()
    feedback: FeedbackSettings = FeedbackSettings()
    files: FilesSettings = FilesSettings()

    # Paths of the home folder's layout (SPEC §3).
    @property
    def inbox(self) -> Path:
        """Drop folder for filled EOIs."""
        return self.home / "inbox"

    @property
    def signed(self) -> Path:
        """Drop folder for Commission-signed consents."""
        return self.home / "signed"

    @property
    def outbox(self) -> Path:
        """Issued consents waiting for the Commission."""
        return self.home / "outbox"

    @property
    def archive(self) -> Path:
        """Every received and issued file, content-addressed, never modified."""
        return self.home / "archive"

    @property
    def failed(self) -> Path:
        """Files that could not be processed, each beside ``NAME.error.json``."""
        return self.home / "failed"

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the home folder."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str((self.home / rest).resolve())
        return url

    def resolve(self, path: Path) -> Path:
        """Resolve a configured path against the home folder."""
        return path if path.is_absolute() else self.home / path


class ConfigError(Exception):
    """The configuration is invalid; ``str()`` names each key and the fix."""


def _key_name(location: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in location if not isinstance(part, int)]
    if len(parts) >= 2:
        return f"[{parts[0]}] {'.'.join(parts[1:])}"
    return parts[0] if parts else "(root)"


def _sections() -> dict[str, type[BaseModel]]:
    """Every ``[section]``: the fields of :class:`Settings` that are models."""
    found: dict[str, type[BaseModel]] = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found[name] = annotation
    return found


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """A section's keys as written in the file and the environment (a field's alias, such
    as ``from`` for ``from_``, or its name) and each one's field."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _did_you_mean(word: str, choices: list[str], quote: str = "'{}'") -> str:
    import difflib  # noqa: PLC0415 - only for a mistake

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return "; did you mean " + quote.format(close[0]) + "?"
    return "; known: " + ", ".join(quote.format(choice) for choice in choices)


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's tables, or :class:`ConfigError` naming the line and how to fix it."""
    import tomllib  # noqa: PLC0415

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"line (\d+)", message)
        shown = ""
        if found:
            number = int(found.group(1))
            lines = text.splitlines()
            if 0 < number <= len(lines):
                shown = f"\n  line {number}: {lines[number - 1].strip()}"
        raise ConfigError(
            f"{path} is not valid TOML: {message}{shown}\n  hint: text values need quotes, "
            'e.g. mode = "auto"; lists are written ["FI", "SE"]'
        ) from None


def _env_value(raw: str, annotation: Any, name: str) -> Any:
    """An environment variable's text as the key's value: lists as JSON or comma-separated."""
    origin = getattr(annotation, "__origin__", None)
    if origin not in (tuple, list):
        return raw
    text = raw.strip()
    if text.startswith("["):
        import json  # noqa: PLC0415

        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"{name} is not a JSON list ({exc}): write it as a JSON list such as "
                '\'["FI", "SE"]\' or comma-separated such as FI,SE'
            ) from None
    return [part.strip() for part in text.split(",") if part.strip()]


def _environment(sections: dict[str, type[BaseModel]]) -> dict[str, dict[str, Any]]:
    """``CONSENTFLOW_<SECTION>__<KEY>`` variables (any case) as ``{section: {key: value}}``.

    Variables of sections that do not exist are not ours (``CONSENTFLOW_HOME``,
    ``CONSENTFLOW_SEAL_PASSPHRASE``…) and are left alone; a misspelt key of a known
    section is an error naming the key it probably meant.
    """
    import os  # noqa: PLC0415

    found: dict[str, dict[str, Any]] = {}
    for name, raw in os.environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section, sep, key = name[len(ENV_PREFIX) :].lower().partition("__")
        model = sections.get(section)
        if model is None or not sep:
            continue
        fields = _keys(model)
        if key not in fields:
            raise ConfigError(
                f"unknown key '{key}' in [{section}] (from the environment variable {name})"
                + _did_you_mean(key, list(fields))
            )
        found.setdefault(section, {})[key] = _env_value(raw, fields[key].annotation, name)
    return found


def _check_names(path: Path, data: dict[str, Any], sections: dict[str, type[BaseModel]]) -> None:
    """Unknown sections and keys, each with the name it probably meant."""
    problems: list[str] = []
    for section, table in data.items():
        if section not in sections:
            if isinstance(table, dict):
                problems.append(
                    f"unknown section [{section}]" + _did_you_mean(section, list(sections), "[{}]")
                )
            else:
                problems.append(
                    f"unknown key '{section}' outside any section; keys go under a section "
                    "such as [review]"
                )
            continue
        if not isinstance(table, dict):
            problems.append(f"[{section}] must be a section (a table), not a value")
            continue
        fields = list(_keys(sections[section]))
        problems.extend(
            f"unknown key '{key}' in [{section}]" + _did_you_mean(key, fields)
            for key in table
            if key not in fields
        )
    if problems:
        raise ConfigError(f"in {path}:\n  " + "\n  ".join(problems))


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, given in top.items():
        value = given.model_dump() if isinstance(given, BaseModel) else given
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _message(error: Any) -> str:
    """pydantic's message without its ``Value error, `` prefix."""
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def load_settings(home: Path, **overrides: Any) -> Settings:
    """Read ``home/consentflow.toml`` and the environment into a validated :class:`Settings`.

    The environment wins over the file, ``overrides`` (``section={key: value}``) over
    both. Raises :class:`ConfigError` with one line per bad key, each naming the key in
    file and environment form and what is wrong.
    """
    toml_path = home / CONFIG_FILE
    sections = _sections()
    data = _read_toml(toml_path)
    _check_names(toml_path, data, sections)
    merged = _merge(_merge(data, _environment(sections)), overrides)
    merged["home"] = home.resolve()
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = _key_name(error["loc"])
            env = ENV_PREFIX + "__".join(
                str(part).upper() for part in error["loc"] if not isinstance(part, int)
            )
            lines.append(f"{key} (or {env}): {_message(error)}")
        raise ConfigError(
            f"invalid configuration in {toml_path} or the environment:\n  " + "\n  ".join(lines)
        ) from None


def documented_keys() -> list[str]:
    """Every configuration key as ``section.key``, for the README's table and its test."""
    keys: list[str] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(
                f"{name}.{sub.alias or key}" for key, sub in annotation.model_fields.items()
            )
    return keys
