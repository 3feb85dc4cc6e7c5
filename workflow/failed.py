"""The ``failed/`` folder: files set aside, each beside ``NAME.error.json``, and put back.

A file goes in by rename from ``.processing/`` (a link as itself), after its report; it
comes back into the folder it came from with ``consentflow retry``. Only regular files
ever come back: never a link, never a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from workflow.archive import (
    PRIVATE,
    Access,
    fsync_dir,
    restrict,
    safe_name,
    unique_path,
    write_atomic,
)
from workflow.dropfolder import kind_of

REPORT_SUFFIX = ".error.json"


class RetryError(FileNotFoundError):
    """``retry`` was named something that is not a failed file to retry (a report, a link):
    like a name that is not there at all, and caught as such; the message says why."""


class FailedFolder:
    """``failed/``: where files that cannot be processed are set aside, and retried from."""

    def __init__(self, root: Path, access: Access = PRIVATE) -> None:
        self.root = root
        self.access = access

    def report(self, original_name: str, report: dict[str, object]) -> Path:
        """Write ``report`` as the error.json of a file about to be set aside; return where
        that file goes. A report of the same item and bytes left by a run killed before its
        commit keeps its name (the file joins it); any other name in use is not reused."""

        def ours(candidate: Path) -> bool:
            return _same_item(candidate, report.get("item"), report.get("sha256"))

        target = unique_path(self.root, safe_name(original_name), reusable=ours)
        data = json.dumps(report, indent=2, ensure_ascii=False).encode()
        write_atomic(_report_of(target), data, self.access)
        return target

    def withdraw(self, target: Path) -> None:
        """Remove the report written for ``target`` (its file was finished elsewhere)."""
        _report_of(target).unlink(missing_ok=True)

    def set_aside(self, path: Path, target: Path) -> None:
        """Move a claimed entry into ``failed/`` as ``target`` (a link moves as itself)."""
        try:
            os.replace(path, target)
        except FileNotFoundError:
            if not os.path.lexists(target):
                raise
            # Another worker's sweep saw the committed row and finished the move for us.
        restrict(target, self.access)
        fsync_dir(self.root)

    def files(self) -> list[str]:
        """The names `retry` accepts: regular files, not reports, not temporaries."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(
            entry.name
            for entry in entries
            if entry.is_file(follow_symlinks=False)
            and not entry.name.endswith(REPORT_SUFFIX)
            and not entry.name.startswith(".")
        )

    def retry(self, folders: dict[str, Path], names: Iterable[str]) -> list[str]:
        """Move files back into the folder they came from; return the names they got there.

        Every name is checked before any file moves. Raises ``FileNotFoundError`` (a
        `RetryError` for a report or a link) naming the first name that cannot be retried.
        """
        sources = [self._retryable(name) for name in names]
        moved = []
        for source in sources:
            folder = "inbox"
            with contextlib.suppress(OSError, ValueError, AttributeError):
                folder = str(json.loads(_report_of(source).read_bytes()).get("folder", "inbox"))
            destination = unique_path(folders.get(folder, folders["inbox"]), source.name)
            # One rename on one filesystem: the watcher sees a complete file appear.
            os.replace(source, destination)
            _report_of(source).unlink(missing_ok=True)
            fsync_dir(destination.parent)
            moved.append(destination.name)
        return moved

    def _retryable(self, name: str) -> Path:
        if name.endswith(REPORT_SUFFIX):
            raise RetryError(
                f"{name} is the report of a failed file, not a file to process: retry "
                f"{name.removesuffix(REPORT_SUFFIX)} instead"
            )
        source = self.root / safe_name(name)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise FileNotFoundError(f"no file {name!r} in {self.root}") from None
        if not stat.S_ISREG(st.st_mode):
            raise RetryError(
                f"{name} in {self.root} is a {kind_of(st.st_mode)}, not a file: it cannot be "
                "processed; remove it once you have looked at it"
            )
        return source


def _report_of(target: Path) -> Path:
    return target.with_name(target.name + REPORT_SUFFIX)


def _same_item(candidate: Path, item: object, sha256: object) -> bool:
    """Whether ``candidate``'s report is of ledger item ``item`` with these bytes."""
    try:
        report = json.loads(_report_of(candidate).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and (report.get("item"), report.get("sha256")) == (
        item,
        sha256,
    )
