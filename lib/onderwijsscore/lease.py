"""One run at a time per output root: an exclusive lease.

A run takes the lease before it touches the output root (recovery included) and gives it
back when it ends. The lease is a file `<output>/_LEASE.json` naming its owner (run id,
host, process id, start time) and a heartbeat the owner renews. It is created with an
atomic link of a fully written file, so it is never seen half-written, and only one of
two runs starting together gets it.

A second run finding a live owner stops (`OutputRootLocked`, exit code 2). An owner is
dead when, on this host, its process is gone, or, on another host, its heartbeat is older
than the configured limit; a dead owner's lease is taken over (one rename wins), and the
new owner then recovers what the dead run left half-published.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from onderwijsscore.errors import PipelineError

log = logging.getLogger("onderwijsscore")

LEASE_FILE = "_LEASE.json"


class OutputRootLocked(PipelineError):
    """Another live run holds the output root."""


@dataclass(frozen=True)
class LeaseSettings:
    heartbeat_seconds: float  # how often the owner renews its heartbeat
    stale_after_seconds: float  # an owner on another host whose heartbeat is older is dead


@dataclass(frozen=True)
class Owner:
    run_id: str
    host: str
    pid: int
    started_at: str  # ISO 8601, UTC
    heartbeat_at: str

    def describe(self) -> str:
        return f"run {self.run_id} (host {self.host}, pid {self.pid}) since {self.started_at}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _write_new(path: Path, owner: Owner) -> None:
    """Create `path` holding `owner`, atomically; FileExistsError if it exists."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        with open(temporary, "x") as file:
            json.dump(asdict(owner), file)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)  # atomic, and fails when another run holds the lease
    finally:
        temporary.unlink(missing_ok=True)


def read_owner(root: Path) -> Owner | None:
    """The lease's owner, or None when the root is free (or the owner just released it)."""
    try:
        return Owner(**json.loads((root / LEASE_FILE).read_text()))
    except FileNotFoundError:
        return None


def _alive(owner: Owner, settings: LeaseSettings) -> bool:
    if owner.host == socket.gethostname():
        try:
            os.kill(owner.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return True
    age = datetime.now(UTC) - datetime.fromisoformat(owner.heartbeat_at)
    return age.total_seconds() <= settings.stale_after_seconds


def refuse_if_held(root: Path, settings: LeaseSettings) -> None:
    """Raise `OutputRootLocked` at once when a live run holds `root`: a job checks this
    before it starts Spark. (Only `acquire` takes the lease, atomically.)"""
    _refuse_live(read_owner(root), root, settings)


def _refuse_live(owner: Owner | None, root: Path, settings: LeaseSettings) -> None:
    if owner is not None and _alive(owner, settings):
        raise OutputRootLocked(f"output root {root} locked by {owner.describe()}")


def acquire(root: Path, run_id: str, settings: LeaseSettings) -> Owner | None:
    """Take the lease of `root` for `run_id`; return the dead owner taken over, if any.
    Raises `OutputRootLocked` naming the live owner."""
    root.mkdir(parents=True, exist_ok=True)
    now = _now()
    me = Owner(run_id, socket.gethostname(), os.getpid(), now, now)
    path = root / LEASE_FILE
    try:
        _write_new(path, me)
        return None
    except FileExistsError:
        pass
    owner = read_owner(root)
    _refuse_live(owner, root, settings)
    # A dead owner: move its lease aside (of two runs doing this, one rename succeeds) and
    # check it was the dead one, not a lease another run took over meanwhile.
    aside = path.with_name(f".{LEASE_FILE}.dead.{run_id}")
    with contextlib.suppress(FileNotFoundError):
        path.rename(aside)
        moved = Owner(**json.loads(aside.read_text()))
        if moved != owner:
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            aside.unlink()
            raise OutputRootLocked(f"output root {root} locked by {moved.describe()}")
        aside.unlink()
    try:
        _write_new(path, me)
    except FileExistsError:
        winner = read_owner(root)
        raise OutputRootLocked(
            f"output root {root} locked by {winner.describe() if winner else 'another run'}"
        ) from None
    if owner is not None:
        log.warning("took over the lease of %s: its process is gone", owner.describe())
    return owner


def release(root: Path, run_id: str) -> None:
    """Give the lease back, if `run_id` still holds it."""
    owner = read_owner(root)
    if owner is not None and owner.run_id == run_id:
        (root / LEASE_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def held(root: Path, run_id: str, settings: LeaseSettings) -> Iterator[Owner | None]:
    """The lease of `root` for the duration of the block, its heartbeat renewed meanwhile;
    yields the dead owner taken over, if any."""
    taken_over = acquire(root, run_id, settings)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(settings.heartbeat_seconds):
            owner = read_owner(root)
            if owner is None or owner.run_id != run_id:
                return
            renewed = root / f".{LEASE_FILE}.{run_id}"
            renewed.write_text(json.dumps(asdict(owner) | {"heartbeat_at": _now()}))
            os.replace(renewed, root / LEASE_FILE)

    heartbeat = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
    heartbeat.start()
    try:
        yield taken_over
    finally:
        stop.set()
        heartbeat.join()
        release(root, run_id)
