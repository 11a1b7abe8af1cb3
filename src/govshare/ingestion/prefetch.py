"""Reading and validating a large file in a second process, while the first one writes.

``govshare import`` spends about as much time parsing and validating cells (pure Python)
as the database spends storing them. A thread cannot overlap the two (the validator holds
the interpreter lock, and the database driver gives it up and takes it back once per
row), so a child process reads the file and validates its rows, and sends them through a
pipe, :data:`CHUNK` rows at a time. Sending blocks while the pipe is full, so a chunk or
two are in flight and memory stays bounded whatever the file size. The parent does
everything else exactly as for any batch (duplicate keys, writing, error report, one
transaction): the child never touches the database.

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux; elsewhere the parent's
closed pipe ends it), so an import killed mid-batch leaves no orphan behind. A file the
reader refuses (mixed encodings, an over-long cell...) raises the same
``ValidationFailed`` in the parent, with the same Chinese message.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing as mp
import signal
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from govshare.errors import ValidationFailed
from govshare.ingestion.validators import Problem, make_rules, validate_row

CHUNK = 1000
#: how much the child may run ahead of the parent, in bytes of pickled rows
PIPE_BYTES = 1024 * 1024
_F_SETPIPE_SZ = 1031
_DONE = "done"
_FAILED = "failed"
_ROWS = "rows"

Checked = tuple[int, dict[str, Any], list[Problem]]


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a dead parent's closed pipe ends the child (BrokenPipeError)


def _produce(
    conn: Connection,
    path: str,
    items: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Mapping[str, Any]] | None,
    max_bytes: int,
) -> None:
    _die_with_parent()
    # a row's values hold no reference cycles: collect rarely (the default collects every
    # 700 allocations, a sizeable share of the time on millions of small rows)
    gc.freeze()
    gc.set_threshold(100_000, 50, 50)
    from govshare.ingestion import readers

    # send() pickles and writes in this thread (no feeder thread fighting the validator
    # for the interpreter lock) and blocks while the pipe is full: the backpressure that
    # keeps at most a chunk or two in flight
    send = conn.send
    try:
        try:
            rules = make_rules(items, settings)
            chunk: list[Checked] = []
            with readers.open_table(path, items, max_bytes=max_bytes) as table:
                for number, raw in table:
                    values, problems = validate_row(rules, raw)
                    chunk.append((number, values, problems))
                    if len(chunk) >= CHUNK:
                        send((_ROWS, chunk))
                        chunk = []
            if chunk:
                send((_ROWS, chunk))
            send((_DONE, None))
        except ValidationFailed as exc:
            send((_FAILED, (exc.message, exc.field)))
        except (BrokenPipeError, EOFError):
            raise
        except Exception as exc:  # reported to the parent, which raises it
            send((_FAILED, (f"读取文件时出错：{type(exc).__name__}: {exc}", None)))
    except (BrokenPipeError, EOFError):
        pass  # the parent is gone or stopped reading
    finally:
        conn.close()


def _widen(conn: Connection) -> None:
    """Let the child run up to about a megabyte ahead (Linux pipes hold 64 KB, less than
    one chunk: the two processes would wait for each other at every chunk)."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, OSError):
        pass  # not Linux, or a lower system limit: the default size works, a little slower


@contextlib.contextmanager
def checked_rows(
    path: Path | str,
    items: Sequence[Mapping[str, Any]],
    *,
    max_bytes: int,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[Iterator[Checked]]:
    """``(row number, converted values, problems)`` of every row of the file at ``path``,
    read and validated by a child process. Use as a context manager: leaving it stops the
    child."""
    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    _widen(sender)
    child = ctx.Process(
        target=_produce,
        args=(sender, str(path), list(items), settings, max_bytes),
        name="govshare-import-reader",
        daemon=True,
    )
    child.start()
    sender.close()  # the child's end: EOF here once the child is gone

    def rows() -> Iterator[Checked]:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                raise ValidationFailed("读取文件的子进程意外退出，请重试", field="file") from None
            if kind == _ROWS:
                yield from payload
            elif kind == _DONE:
                return
            else:
                message, field = payload
                raise ValidationFailed(message, field=field)

    try:
        yield rows()
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(timeout=5)
