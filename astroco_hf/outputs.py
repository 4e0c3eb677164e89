"""Output folders and files that are never mixed, never half-written: a run lock and atomic writes.

For every command that writes results (standard library only, safe to import anywhere)::

    from astroco_hf.outputs import atomic_output, lock_output_dir, refuse_existing

    refuse_existing(out, overwrite=args.overwrite)          # before any work: exists -> OutputError
    with lock_output_dir(folder, take_over=args.overwrite):  # a second run on `folder` -> OutputError
        with atomic_output(out, overwrite=args.overwrite) as tmp:   # write `tmp` (a file or a folder)
            write(tmp)                                       # renamed to `out` only on success

- :func:`lock_output_dir` holds ``FOLDER/.astroco.lock`` (JSON: pid, host, start time, command line) for
  the ``with`` block (creating FOLDER, and removing it again if it is still empty at the end). A lock of a live process refuses; a lock left by a dead process on this host is
  reported and taken over only with ``take_over=True`` (``--overwrite`` / ``--resume``, as
  ``take_over_hint`` tells the caller); a lock from
  another host is never guessed dead (the message names the file to delete).
- :func:`atomic_output` yields a temporary sibling path (``.NAME.tmp-PID``); on success it is renamed
  onto the final path (``os.replace``: readers see the old or the new output, never a mix), on an
  exception or a signal it is deleted. An existing output is refused unless ``overwrite``.
- :func:`atomic_write_text` is the one-call form for small text files.
- :func:`sigterm_unwinds` makes SIGTERM (``kill``, cluster schedulers) raise :class:`Terminated`, a
  ``KeyboardInterrupt``, so that the ``with`` blocks above clean up as on Ctrl-C instead of the process
  dying where it stands (every ``astroco`` command runs under it).

All refusals raise :class:`~astroco_hf.errors.OutputError` (a user error: the CLI prints one line).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

__all__ = ["LOCK_NAME", "Terminated", "atomic_output", "atomic_write_text", "lock_output_dir", "read_lock",
           "refuse_existing", "sigterm_unwinds"]

LOCK_NAME = ".astroco.lock"


def read_lock(folder: str | Path) -> dict | None:
    """The lock record of ``folder`` (pid, host, started, command), or None when it is not locked."""
    try:
        return json.loads((Path(folder) / LOCK_NAME).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return {"pid": None, "host": None, "started": "?", "command": "?"}  # unreadable: treat as held


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(record: dict) -> str:
    return (f"pid {record.get('pid')} on {record.get('host')} since {record.get('started')} "
            f"({record.get('command')})")


@contextmanager
def lock_output_dir(folder: str | Path, *, take_over: bool = False,
                    take_over_hint: str = "pass --resume or --overwrite") -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block (creates the folder); yields the lock file's path.

    ``take_over_hint`` is what the refusal of a stale lock tells the caller to do, in the caller's terms
    (a flag at the CLI, e.g. ``"pass overwrite=True"`` in Python).

    Raises:
        OutputError: the folder is a file or not writable, is locked by a live process (or one on another
            host), or holds a stale lock and ``take_over`` is False.
    """
    folder = Path(folder)
    if folder.is_file():
        raise OutputError(f"output folder {folder} is a file; choose another output folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"output folder {folder} is not writable ({error.strerror or error}); "
                          "choose another output folder") from None
    lock = folder / LOCK_NAME
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)}
    for _ in range(2):  # the second try follows the removal of a stale lock
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(folder) or {}
            if held.get("host") != record["host"] or held.get("pid") is None:
                raise OutputError(f"{folder} is locked by {_describe(held)}; if that run is gone, delete {lock}") from None
            if _alive(int(held["pid"])):
                raise OutputError(f"{folder} is in use by another run: {_describe(held)}; wait for it or choose "
                                  "another output folder") from None
            if not take_over:
                raise OutputError(f"{folder} holds a stale lock of a dead process ({_describe(held)}); "
                                  f"{take_over_hint} to take it over") from None
            print(f"Taking over the stale lock of {folder} ({_describe(held)}).", file=sys.stderr)
            lock.unlink(missing_ok=True)
            continue
        except OSError as error:
            raise OutputError(f"output folder {folder} is not writable ({error.strerror or error}); "
                              "choose another output folder") from None
        with os.fdopen(descriptor, "w") as handle:
            json.dump(record, handle)
        break
    try:
        yield lock
    finally:
        if (read_lock(folder) or {}).get("pid") == record["pid"]:
            lock.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):  # a run that failed before writing leaves no folder
            folder.rmdir()


def refuse_existing(path: str | Path, *, overwrite: bool, flag: str = "--overwrite") -> None:
    """Raise :class:`OutputError` when ``path`` exists (a non-empty folder or a file) and ``overwrite`` is False."""
    path = Path(path)
    exists = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if exists and not overwrite:
        raise OutputError(f"{path} already exists; pass {flag} to replace it or choose another output path")


@contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a folder); rename it onto ``path`` on success.

    On an exception (including KeyboardInterrupt) the temporary output is removed and ``path`` is untouched.

    Raises:
        OutputError: ``path`` exists and ``overwrite`` is False (checked before and after the work).
    """
    path = Path(path)
    refuse_existing(path, overwrite=overwrite)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(temporary)
    try:
        yield temporary
        refuse_existing(path, overwrite=overwrite)  # another process may have written it meanwhile
        if path.is_dir() and temporary.is_dir():  # os.replace cannot replace a non-empty folder
            _remove(path)
        os.replace(temporary, path)
    finally:
        _remove(temporary)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (replacing any earlier content)."""
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text(text)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C (see :func:`sigterm_unwinds`); ``signal_number`` gives the exit status."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"signal {signal_number}")
        self.signal_number = signal_number


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` for the ``with`` block: the stack unwinds as on Ctrl-C, so
    atomic outputs remove their temporary files. Code that stops more gently installs its own handler
    meanwhile (pretraining saves a checkpoint first). Outside the main thread signals are left alone."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated(signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
