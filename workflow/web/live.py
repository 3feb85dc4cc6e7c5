"""The live processing log: server-sent events that follow the events table by id.

One poller per process asks the database for the newest event id every
``interval_s`` (one indexed query, whatever the number of browsers) and wakes the
streams when it grows; each stream then reads the events after the last one it
sent. Reading by id is gap-free because events are appended under the chain head's
row lock, so ids are assigned in commit order; any process on any host sees the work
of every worker. A browser that reconnects sends ``Last-Event-ID`` (or ``?after=``
when the page's script reconnects by itself) and gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool

from workflow.printable import printable
from workflow.records import event_json
from workflow.store import Store

#: Events sent per read; a browser far behind catches up in batches.
BATCH = 500
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0
#: What the browser waits before reconnecting (the SSE ``retry`` field), in ms.
RETRY_MS = 1000

log = logging.getLogger("consentflow.web")


class LiveLog:
    """The poller and the streams that follow it."""

    def __init__(self, store: Store, *, interval_s: float = 0.1) -> None:
        self.store = store
        self.interval_s = interval_s
        self.newest = 0
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """Run the poller while the application serves (FastAPI's lifespan)."""
        self._changed = asyncio.Condition()
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        task = asyncio.create_task(self._poll())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._end_streams()

    def close(self) -> None:
        """End every stream now, from any thread (before the server shuts down): a stream
        that ends cleanly lets the browser reconnect at once, where one cut off by the
        server's shutdown timeout leaves it a broken response."""
        if self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._end_streams(), self._loop)

    async def _end_streams(self) -> None:
        self._stopping = True
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def _poll(self) -> None:
        assert self._changed is not None
        while True:
            try:
                newest = await run_in_threadpool(self.store.newest_event_id)
            except (OperationalError, DBAPIError) as exc:
                log.warning("live log: database unavailable (%s)", str(exc).splitlines()[0])
                await asyncio.sleep(1.0)
                continue
            if newest != self.newest:
                self.newest = newest
                async with self._changed:
                    self._changed.notify_all()
            await asyncio.sleep(self.interval_s)

    async def stream(
        self, after_id: int, *, keepalive_s: float = KEEPALIVE_S
    ) -> AsyncIterator[str]:
        """SSE text: every event after ``after_id``, then each new one as it commits."""
        assert self._changed is not None, "the application's lifespan is not running"
        yield f"retry: {RETRY_MS}\n\n"
        last = after_id
        while not self._stopping:
            rows = await run_in_threadpool(self.store.events_after, last, BATCH)
            for row in rows:
                assert row.id is not None
                last = row.id
                yield _message(_shown(event_json(row)))
            if len(rows) == BATCH:
                continue  # more to catch up on before waiting
            woke = True
            async with self._changed:  # never yield while holding it
                if self.newest <= last and not self._stopping:
                    try:
                        await asyncio.wait_for(self._changed.wait(), keepalive_s)
                    except TimeoutError:
                        woke = False
            if not woke:
                yield ": keepalive\n\n"


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the live log shows it: the cells it fills are one line each, like the
    page's own rows (`workflow.printable`)."""
    return event | {
        key: printable(event[key]) for key in ("reference", "actor", "kind", "reason") if event[key]
    }


def _message(event: dict[str, Any]) -> str:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"id: {event['id']}\nevent: log\ndata: {data}\n\n"
