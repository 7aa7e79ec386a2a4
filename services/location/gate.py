"""A gate between the many writers of guest data and the rare purge.

Ingest and the publisher decide what to write from the in-memory directory,
then spend a few milliseconds writing it. A purge (consent withdrawn, guest
erased) first updates the directory, then closes the gate and waits for the
writes already decided to finish, so that nothing written under the old
consent can land after the purge has run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class WriteGate:
    def __init__(self) -> None:
        self._writers = 0
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._exclusive = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def writer(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._writers += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._exclusive:
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()
