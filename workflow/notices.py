"""Notices: files in the drop folders that a worker waits for or cannot take, for ``status``.

A file that stays in ``inbox/`` or ``signed/`` needs a word somewhere other than a log
line that scrolled by: a worker waiting for it to become a whole PDF, or unable to claim
it, publishes a notice to the database; ``consentflow status`` shows the notices whose
files are still there. Each worker writes only its own rows, and only when its set of
notices changes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from workflow.leases import owner_alive
from workflow.store import IntakeNotice, Store


@dataclass(frozen=True)
class Notice:
    """Why one file is still in its drop folder."""

    folder: str  # inbox | signed
    name: str
    kind: str  # waiting | unclaimable
    message: str
    since: datetime
    until: datetime | None = None  # when the worker stops waiting and takes it as it is


class NoticeBoard:
    """One worker's notices in the store: `publish` writes what changed since last time."""

    def __init__(self, store: Store, *, owner: str, log: logging.Logger | None = None) -> None:
        self.store = store
        self.owner = owner
        self.log = log or logging.getLogger("consentflow.intake")
        self._published: dict[tuple[str, str], Notice] = {}
        self._warned_at = float("-inf")

    def publish(self, notices: Iterable[Notice]) -> None:
        """Make this worker's rows say ``notices``; on a database error, try again next call."""
        current = {(notice.folder, notice.name): notice for notice in notices}
        if current == self._published:
            return
        changed = [n for key, n in current.items() if self._published.get(key) != n]
        gone = [key for key in self._published if key not in current]
        try:
            with self.store.tx() as tx:
                tx.drop_notices(self.owner, gone)
                for notice in changed:
                    tx.put_notice(
                        owner=self.owner,
                        folder=notice.folder,
                        name=notice.name,
                        kind=notice.kind,
                        message=notice.message,
                        since=notice.since,
                        until=notice.until,
                    )
        except DBAPIError as exc:
            if time.monotonic() - self._warned_at >= 3600:
                self._warned_at = time.monotonic()
                self.log.warning("notices for status not written (%s); trying again", exc)
            return
        self._published = current

    def clear_dead(self) -> None:
        """Remove the notices of workers of this host that no longer run."""
        try:
            with self.store.tx() as tx:
                tx.drop_notices_of(lambda owner: owner != self.owner and not owner_alive(owner))
        except DBAPIError as exc:
            self.log.warning("old notices not removed (%s)", exc)


def shown(store: Store, folders: dict[str, Path]) -> list[IntakeNotice]:
    """The notices ``status`` shows, one per file: only while the file is still in its
    folder, and "waiting" only from a worker that may still be running."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for row in store.notices():
        folder = folders.get(row.folder)
        key = (row.folder, row.name)
        if folder is None or key in seen or not os.path.lexists(folder / row.name):
            continue
        if row.kind == "waiting" and not owner_alive(row.owner):
            continue
        seen.add(key)
        rows.append(row)
    return rows
