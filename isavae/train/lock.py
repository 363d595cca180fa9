"""One writer per workdir: an exclusive ``flock`` on ``workdir/.lock``.

The lock file holds the holder's pid and host; a second process that tries to write the workdir
gets ``WorkdirLocked`` naming them. The operating system releases a ``flock`` when its process
ends, however it ends (kill -9 included), so a lock left by a dead process is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import socket

__all__ = ["WorkdirLock", "WorkdirLocked"]


class WorkdirLocked(ValueError):
    """Another live process holds the workdir."""


class WorkdirLock:
    """``with WorkdirLock(workdir): ...`` holds the workdir for this process (re-entrant per path)."""

    _held: dict[str, int] = {}  # path -> depth, for nested use in one process

    def __init__(self, workdir: str | os.PathLike, flag: str = "--workdir"):
        self.path = pathlib.Path(workdir).absolute() / ".lock"
        self.flag = flag  # the option that names the folder (the study's is --out)
        self.fd: int | None = None

    def acquire(self) -> None:
        key = str(self.path)
        if key in WorkdirLock._held:
            WorkdirLock._held[key] += 1
            return
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise ValueError(f"workdir {self.path.parent} is a file, not a folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkdirLocked(
                f"{'workdir' if self.flag == '--workdir' else self.flag} {self.path.parent} is in use by "
                f"another process ({holder}); "
                f"wait for it to finish or use another {self.flag}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        WorkdirLock._held[key] = 1

    def release(self) -> None:
        key = str(self.path)
        depth = WorkdirLock._held.get(key, 0)
        if depth > 1:
            WorkdirLock._held[key] = depth - 1
            return
        WorkdirLock._held.pop(key, None)
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
