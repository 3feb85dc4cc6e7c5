"""What needs a person: failed and waiting files, stale claims, unsigned consents, and any
application whose stored state disagrees with its events — each with its reason and
the action that fixes it.

Read-only: the folders are listed with ``lstat`` (a link is listed, never followed)
and each ``NAME.error.json`` is read with a size cap.
"""

from __future__ import annotations

import json
import math
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workflow.config import Settings
from workflow.intake import PROCESSING
from workflow.store import Store

#: A file still in a drop folder this long after it last changed was not taken.
WAITING_AFTER_S = 60.0
#: Larger error reports are not read (they are ours, but the folder is writable by others).
_REPORT_LIMIT = 1 << 20
#: Reminders before the office is told to step in (SPEC §11).
OFFICE_AFTER_REMINDERS = 3


@dataclass(frozen=True)
class FailedFile:
    """A file in ``failed/`` and what its report says."""

    name: str
    size: int
    code: str
    message: str
    folder: str
    original: str
    failed_at: datetime | None


@dataclass(frozen=True)
class WaitingFile:
    """A file in a drop folder that has not been taken."""

    folder: str
    name: str
    size: int
    since: datetime


@dataclass(frozen=True)
class Entry:
    """One line of the *needs attention* view."""

    kind: str  # failed | waiting | retrying | stale_claim | unsigned | state_mismatch
    subject: str  # a file name or an application reference
    reason: str
    action: str  # what fixes it
    since: datetime | None = None
    reference: str | None = None
    failed_name: str | None = None  # for the retry button


def failed_files(folder: Path, *, limit: int = 500) -> tuple[list[FailedFile], int]:
    """The newest ``limit`` files in ``failed/`` with their reports, and how many there are."""
    found: list[FailedFile] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return [], 0
    for path in entries:
        if path.name.endswith(".error.json") or path.name.startswith("."):
            continue
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        report = read_report(path.with_name(path.name + ".error.json"))
        failed_at = _time(report.get("failed_at")) or datetime.fromtimestamp(info.st_mtime, UTC)
        found.append(
            FailedFile(
                name=path.name,
                size=info.st_size,
                code=str(report.get("code") or ("link" if stat.S_ISLNK(info.st_mode) else "?")),
                message=str(report.get("message") or "no report beside this file"),
                folder=str(report.get("folder") or "inbox"),
                original=str(report.get("file") or path.name),
                failed_at=failed_at,
            )
        )
    found.sort(key=lambda entry: entry.failed_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return found[:limit], len(found)


def waiting_files(folders: dict[str, Path], now: datetime) -> list[WaitingFile]:
    """Files left in the drop folders for longer than :data:`WAITING_AFTER_S`."""
    waiting = []
    for folder_name, folder in folders.items():
        try:
            entries = list(folder.iterdir())
        except FileNotFoundError:
            continue
        for path in entries:
            if path.name.startswith(".") or path.name in {PROCESSING, "README.md"}:
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            changed = datetime.fromtimestamp(info.st_mtime, UTC)
            if (now - changed).total_seconds() >= WAITING_AFTER_S:
                waiting.append(WaitingFile(folder_name, path.name, info.st_size, changed))
    return sorted(waiting, key=lambda entry: entry.since)


def attention(settings: Settings, store: Store, now: datetime) -> list[Entry]:
    """Everything that needs a person now, oldest first within each kind."""
    entries: list[Entry] = []
    failed, _ = failed_files(settings.failed, limit=200)
    for file in failed:
        entries.append(
            Entry(
                "failed",
                file.name,
                f"{file.message} ({file.code})",
                "Fix the cause, then retry the file; or remove it from failed/ if it is junk.",
                file.failed_at,
                failed_name=file.name,
            )
        )
    for waiting in waiting_files({"inbox": settings.inbox, "signed": settings.signed}, now):
        entries.append(
            Entry(
                "waiting",
                f"{waiting.folder}/{waiting.name}",
                "The file is still in the drop folder: no engine has taken it.",
                "Check that `consentflow run` is running, and that the file is a regular "
                "*.pdf file (not a link or a folder).",
                waiting.since,
            )
        )
    for item in store.unfinished_items():
        lease = item.lease_until
        if lease is not None and lease < now:
            entries.append(
                Entry(
                    "stale_claim",
                    item.original_name,
                    f"Claimed by {item.owner}, whose hold ran out at "
                    f"{lease:%Y-%m-%d %H:%M:%S} UTC: that worker stopped.",
                    "A running `consentflow run` resumes it at its next sweep; start one if "
                    "none is running.",
                    item.claimed_at,
                )
            )
        elif item.attempts:
            entries.append(
                Entry(
                    "retrying",
                    item.original_name,
                    f"Failed {item.attempts} time(s) for a passing reason: "
                    f"{(item.last_error or '')[:300]}",
                    "Nothing if the cause passes (disk space, database); it is retried with "
                    "backoff, then moved to failed/.",
                    item.claimed_at,
                )
            )
    entries.extend(_unsigned(settings, store, now))
    for reference, stored, derived in store.state_disagreements():
        entries.append(
            Entry(
                "state_mismatch",
                reference,
                f"The application row says {stored}, its events say {derived or 'nothing'}: "
                "the row was changed outside consentflow.",
                "Run `consentflow audit verify` and restore the database from a backup if "
                "history was edited.",
                reference=reference,
            )
        )
    return entries


def _unsigned(settings: Settings, store: Store, now: datetime) -> list[Entry]:
    after = timedelta(days=settings.reminders.signature_after_days)
    repeat = timedelta(days=settings.reminders.repeat_days)
    entries = []
    for reference, org_name, issued_at in store.unsigned_since(now - after):
        overdue = now - issued_at - after
        reminders = 1 + math.floor(overdue / repeat)
        action = (
            "Send the consent to the Commission again (download it here), or reissue it "
            "if its data changed."
        )
        if reminders > OFFICE_AFTER_REMINDERS:
            action = "Past the third reminder: contact the Commission's signer directly. " + action
        entries.append(
            Entry(
                "unsigned",
                reference,
                f"Consent for {org_name} issued {(now - issued_at).days} days ago and still "
                f"not signed (reminder {reminders} is due).",
                action,
                issued_at,
                reference=reference,
            )
        )
    return entries


def read_report(path: Path) -> dict[str, object]:
    """A ``NAME.error.json`` as a dict (empty when absent, too large, a link or not JSON)."""
    try:
        if path.lstat().st_size > _REPORT_LIMIT or not stat.S_ISREG(path.lstat().st_mode):
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
