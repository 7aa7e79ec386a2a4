"""Keep gRPC's completions flowing into a busy event loop.

grpc.aio hands every completed operation to the event loop through a socket pair:
its poller thread queues the event and writes one byte; the loop's reader reads
ONE byte per loop iteration and handles every queued event. A 1-byte write costs a
whole socket buffer slot, so a few hundred unread bytes fill the buffer and the
poller thread blocks in write(): from then on the process completes one gRPC
operation per loop iteration. A world that runs its engine for a while between
iterations (catching up after a busy minute) then completes almost no calls, its
callers sit at their caps with nothing going out, and the day freezes (seen as
every pool at its cap, 0 calls a second, for minutes; `py-spy dump --native`
shows the poller thread in write()).

`Pump.drain()` reads every pending byte at once, handling the queued events as
the loop's own reader would; the world calls it between slices of its engine.
It relies on asyncio's selector loop internals and does nothing when it cannot
find gRPC's reader.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

# The method gRPC's poller completion queue registers with loop.add_reader.
_READER = "_handle_events"


class Pump:
    def __init__(self, sock: socket.socket | None, handle: asyncio.Handle | None) -> None:
        self._sock = sock
        self._handle = handle
        self.drained = 0

    @classmethod
    def find(cls, loop: asyncio.AbstractEventLoop) -> Pump:
        """gRPC's notification reader on `loop` (call after a channel exists)."""
        selector: Any = getattr(loop, "_selector", None)
        if selector is None:
            return cls(None, None)
        for key in list(selector.get_map().values()):
            reader = key.data[0] if isinstance(key.data, tuple) else None
            callback = getattr(reader, "_callback", None)
            # A bound method, or (for a loop bound later) a partial of one.
            callback = getattr(callback, "func", callback)
            if getattr(callback, "__name__", "") == _READER and isinstance(
                key.fileobj, socket.socket
            ):
                return cls(key.fileobj, reader)
        return cls(None, None)

    @property
    def found(self) -> bool:
        return self._sock is not None

    def drain(self, most: int = 100_000) -> int:
        """Handle every completion gRPC has queued; returns how many bytes were read."""
        sock, handle = self._sock, self._handle
        if sock is None or handle is None or handle.cancelled():
            return 0
        done = 0
        while done < most:
            try:
                ready, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):  # closed: the channel was shut down
                self._sock = None
                break
            if not ready:
                break
            handle._run()  # the loop's own reader, run once more
            done += 1
        self.drained += done
        return done
