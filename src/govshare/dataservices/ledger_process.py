"""The usage ledger's writer process.

A server worker (``govshare serve``) starts one child process that commits its calls' ledger
rows and audit entries, so that a worker spends its time answering calls: building the rows
(the subject HMAC-SM3, the audit details), chaining the audit entries (SM3) and the
database's own work of inserting them run on another CPU, not under the worker's GIL.

The worker sends each loop pass's calls, in frames of :data:`SEND_EVERY` calls, on a private
socket pair (:class:`CallRecord` tuples, pickled: nothing outside the two processes writes to
it); the child reads whatever frames have arrived, commits them in one transaction
(:class:`~govshare.dataservices.ledger.LedgerWriter`, the same code the in-process writer
runs), and answers with the last call it committed. Only then does the worker answer those
calls, so durability is unchanged: a response leaves after its rows are committed.

If the child dies, the calls waiting for it answer 503 (their rows may or may not have been
committed: never a response without its rows), and the next call starts a new child; while
it cannot be started, calls are written in the worker itself. When the worker's connection
closes (the worker stopped, or was killed), the child commits what it has read and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from datetime import date
from typing import Any

from govshare.dataservices.ledger import (
    CallRecord,
    LedgerWriter,
    LookupFailed,
    Pending,
    call_pending,
)

log = logging.getLogger(__name__)

_FRAME = struct.Struct("!I")
#: how long a worker waits for a new child to connect to the database
START_TIMEOUT = 60.0
#: after a child failed to start, calls are written in the worker for this long
RETRY_AFTER = 5.0
#: a loop pass's calls go to the child in groups of this many, as they come: the child
#: starts committing the first while the worker still handles the others. Sent only at the
#: end of the pass, the calls of every connection answered at once came back as one batch,
#: and the worker and the child took turns waiting for each other (measured on SQLite: 0.45
#: of the bare endpoint's throughput at the end of the pass, 0.63 in groups of 8)
SEND_EVERY = 8


def _frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(data)) + data


def _frames(buf: bytearray) -> list[Any]:
    """Take every complete frame off the front of ``buf``."""
    out = []
    while len(buf) >= _FRAME.size:
        (size,) = _FRAME.unpack_from(buf)
        end = _FRAME.size + size
        if len(buf) < end:
            break
        out.append(pickle.loads(buf[_FRAME.size : end]))  # noqa: S301 (our own child)
        del buf[:end]
    return out


class WriterProcess:
    """The worker's side: sends calls, wakes their requests when the child has committed."""

    def __init__(self, url: str, counts: dict[tuple[int, date], int]) -> None:
        self.url = url
        self.counts = counts
        self.loop: asyncio.AbstractEventLoop | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._next_id = 0
        self._waiting: deque[tuple[int, asyncio.Future[Any]]] = deque()
        self._gathered: list[CallRecord] = []
        self._scheduled = False
        self._out = bytearray()
        self._in = bytearray()
        self._writing = False
        self._failed_at = 0.0
        self.restarts = 0

    # ------------------------------------------------------------ lifecycle

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Start a child and wait until it is connected; False (logged) when it cannot."""
        parent, child = socket.socketpair()
        try:
            proc = subprocess.Popen(  # noqa: S603 (this interpreter, this package)
                [sys.executable, "-m", "govshare.dataservices.ledger_process", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C goes to the server, which stops it in order
            )
        except OSError:
            log.exception("usage ledger process: cannot start")
            parent.close()
            child.close()
            self._failed_at = time.monotonic()
            return False
        child.close()
        try:
            parent.sendall(_frame(self.url))
            ready = _read_frame(parent, START_TIMEOUT)
            if ready != ("ready", None):
                raise RuntimeError(f"unexpected answer {ready!r}")
        except Exception:
            log.exception("usage ledger process: did not start")
            parent.close()
            _reap(proc, kill=True)
            self._failed_at = time.monotonic()
            return False
        parent.setblocking(False)
        self._proc, self._sock, self.loop = proc, parent, loop
        self._in.clear()
        self._out.clear()
        self._writing = False
        loop.add_reader(parent.fileno(), self._on_readable)
        return True

    @property
    def alive(self) -> bool:
        return self._sock is not None

    def usable(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether calls on ``loop`` go to a child (starting one if needed)."""
        if self._sock is not None:
            return loop is self.loop
        if self.loop is not None and loop is not self.loop:
            return False
        if time.monotonic() - self._failed_at < RETRY_AFTER:
            return False
        self.restarts += 1
        return self.start(loop)

    async def stop(self, timeout: float = 10.0) -> None:
        """Wait for the calls sent so far, then let the child commit and exit."""
        deadline = time.monotonic() + timeout
        while (self._waiting or self._gathered) and self._sock is not None:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        self._close(None)

    def _close(self, error: BaseException | None) -> None:
        sock, proc = self._sock, self._proc
        self._sock = self._proc = None
        if sock is not None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.remove_reader(sock.fileno())
                if self._writing:
                    self.loop.remove_writer(sock.fileno())
            self._writing = False
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)  # the child commits what it has, then exits
            sock.close()
        if proc is not None:
            _reap(proc, kill=error is not None)
        failure = RuntimeError(f"usage ledger process stopped: {error or 'shut down'}")
        waiting, self._waiting = self._waiting, deque()
        for _, fut in waiting:
            if not fut.done():
                fut.set_exception(failure)
        if self._gathered:
            self._gathered = []
        if error is not None:
            log.error("usage ledger process failed: %s", error)

    # ------------------------------------------------------------ calls

    async def write(self, records: Sequence[CallRecord]) -> list[Any]:
        """Send calls (with this loop pass's others, in groups of :data:`SEND_EVERY`) and
        wait until they are committed; returns what each call's lookup found (None: a call
        without a lookup)."""
        loop = self.loop
        assert loop is not None
        futures = []
        for rec in records:
            self._next_id += 1
            fut: asyncio.Future[Any] = loop.create_future()
            self._waiting.append((self._next_id, fut))
            self._gathered.append(rec)
            futures.append(fut)
        if len(self._gathered) >= SEND_EVERY:
            self._send()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_pass)
        return [await fut for fut in futures]

    def _send_pass(self) -> None:
        self._scheduled = False
        self._send()

    def _send(self) -> None:
        records, self._gathered = self._gathered, []
        if not records or self._sock is None:
            return
        first = self._next_id - len(records) + 1
        self._out += _frame((first, records))
        self._flush()

    def _flush(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._out) if self._out else 0
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._close(exc)
            return
        del self._out[:sent]
        loop = self.loop
        assert loop is not None
        if self._out and not self._writing:
            loop.add_writer(sock.fileno(), self._flush)
            self._writing = True
        elif not self._out and self._writing:
            loop.remove_writer(sock.fileno())
            self._writing = False

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError as exc:
            self._close(exc)
            return
        if not data:
            self._close(EOFError("the ledger process exited"))
            return
        self._in += data
        for last_id, error, totals, found, failed in _frames(self._in):
            self.counts.update(totals)
            failure = (
                None if error is None else RuntimeError(f"usage ledger commit failed: {error}")
            )
            waiting = self._waiting
            while waiting and waiting[0][0] <= last_id:
                call, fut = waiting.popleft()
                if fut.done():
                    continue
                if call in failed:
                    fut.set_exception(LookupFailed(failed[call]))
                elif failure is None:
                    fut.set_result(found.get(call))
                else:
                    fut.set_exception(failure)


def _read_frame(sock: socket.socket, timeout: float) -> Any:
    """One frame from a blocking socket, within ``timeout`` seconds."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        frames = _frames(buf)
        if frames:
            return frames[0]
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise TimeoutError("no answer from the usage ledger process")
        data = sock.recv(1 << 16)
        if not data:
            raise EOFError("the usage ledger process exited")
        buf += data


def _reap(proc: subprocess.Popen[bytes], kill: bool) -> None:
    if kill:
        with contextlib.suppress(OSError):
            proc.kill()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- the child


def serve(sock: socket.socket) -> None:
    """The child's loop: commit what has arrived, answer with the last call committed."""
    from govshare.db import make_engine

    url = _read_frame(sock, START_TIMEOUT)
    engine = make_engine(url)
    writer = LedgerWriter(engine)
    with engine.connect():  # the database answers
        pass
    writer.start_checkpoints()
    sock.sendall(_frame(("ready", None)))
    buf = bytearray()
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            buf += data
            while True:  # take everything that has arrived: one commit for all of it
                ready, _, _ = select.select([sock], [], [], 0)
                if not ready:
                    break
                more = sock.recv(1 << 20)
                if not more:
                    break
                buf += more
            frames = _frames(buf)
            if not frames:
                continue
            batch: list[Pending] = []
            ids: list[int] = []
            for first, records in frames:
                batch.extend(call_pending(rec) for rec in records)
                ids.extend(range(first, first + len(records)))
            error: str | None = None
            totals: dict[tuple[int, date], int] = {}
            try:
                totals = writer.commit(batch)
            except Exception as exc:  # the worker answers 503 for these calls
                log.exception("usage ledger commit failed")
                error = f"{type(exc).__name__}: {exc}"
            found = {  # the records found for the calls committed
                i: p.found
                for i, p in zip(ids, batch, strict=True)
                if p.found is not None and error is None
            }
            failed = {i: str(p.error) for i, p in zip(ids, batch, strict=True) if p.error}
            sock.sendall(_frame((ids[-1], error, totals, found, failed)))
    finally:
        writer.stop()
        engine.dispose()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when this stops
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    fd = int(sys.argv[1])
    sock = socket.socket(fileno=fd)
    try:
        serve(sock)
    except (EOFError, TimeoutError, ConnectionError):
        pass  # the worker went away
    finally:
        with contextlib.suppress(OSError):
            sock.close()
        sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
