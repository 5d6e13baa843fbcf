"""The worker's state directory (`LOYALTY_DATA_DIR`) and what happens when it cannot be
written: a check before the worker starts, and a RocksDB store that stops the worker at the
first write it cannot make.

A disk error is not something to carry on from: a state write that failed leaves the local
store behind the changelog, and every later record of that customer would be applied to a
stale state. So the worker stops at once (fail-stop) with exit status 74 (EX_IOERR) and one
log line naming the directory and the cause; the record being applied is not acked, so
whoever runs the partition next (this worker restarted on a good disk, or another one) reads
it again. The exit is immediate, as a SIGKILL is, not Faust's graceful shutdown: that would
commit and write the store again (the persisted changelog offsets), on the same bad disk.
The worker is built to survive a SIGKILL at any moment (see `loop`), so nothing is lost.

The store also opens every partition's database on the worker's one RocksDB memory budget
(see `rocksdb_memory`). Registered with Faust under the URL scheme `loyalty-rocksdb://`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

import faust.stores
import structlog
from faust.stores.rocksdb import Store
from faust.types import TP

from streams.worker.rocksdb_memory import SharedBudgetOptions

log = structlog.get_logger(__name__)

SCHEME = "loyalty-rocksdb"
# sysexits.h: an error while doing I/O on some file
EX_IOERR = 74
PROBE_BYTES = 64 * 1024


class StateDirError(Exception):
    """The state directory cannot be written; says which and why, and what to do."""

    def __init__(self, data_dir: Path, cause: str) -> None:
        self.data_dir = data_dir
        self.cause = cause
        super().__init__(
            f"the worker cannot write its state directory {data_dir} (LOYALTY_DATA_DIR): "
            f"{cause}. Free space or fix the directory's permissions, or point "
            f"LOYALTY_DATA_DIR (--data-dir) at another, then start the worker again"
        )


def check_writable(data_dir: Path) -> None:
    """Creates the directory if needed and writes, syncs and removes a probe file in it;
    StateDirError if any of that fails. Root ignores permission bits, so only a real write
    tells (a read-only mount, a full disk, a file in the directory's place)."""
    probe = data_dir / f".write-probe-{os.getpid()}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as out:
            out.write(b"\0" * PROBE_BYTES)
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        raise StateDirError(data_dir, _reason(error)) from error
    finally:
        with suppress(OSError):  # a directory we cannot write: the error above says so
            probe.unlink(missing_ok=True)


def _reason(error: OSError) -> str:
    if error.filename is None or error.strerror is None:
        return str(error)
    return f"{error.filename}: {error.strerror}"


def fail_stop(error: StateDirError) -> NoReturn:
    """Logs the error once and ends the process with EX_IOERR at once (see the module)."""
    log.critical("state_dir_failed", data_dir=str(error.data_dir), cause=error.cause,
                 exit_code=EX_IOERR, message=str(error))  # fmt: skip
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(EX_IOERR)


def is_store_error(error: BaseException) -> bool:
    """RocksDB's errors reach Python as a plain Exception ("IO error: No space left on
    device: While appending to file: ..."); a lock held by another process is not a disk
    error, and Faust retries it (a worker restarting on the same directory)."""
    if isinstance(error, OSError):
        return True
    return type(error) is Exception and "lock" not in str(error).lower()


class FailStopRocksDBStore(Store):
    """Faust's RocksDB store, but a write (or an open) RocksDB refuses stops the worker, and
    the databases of all its partitions share the worker's memory budget."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Faust made its options from the table's (`self.options`, less what it took out of
        # them), with a cache per database: the same options, on the shared budget instead
        self.rocksdb_options = SharedBudgetOptions(
            **(self.options or {}), use_rocksdict=self.use_rocksdict
        )

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            if not is_store_error(error):
                raise
            data_dir = Path(self.app.conf.datadir).parent
            fail_stop(StateDirError(data_dir, str(error)))

    def _set(self, key: bytes, value: bytes | None) -> None:
        with self._writing():
            super()._set(key, value)

    def _del(self, key: bytes) -> None:
        with self._writing():
            super()._del(key)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        with self._writing():
            super().set_persisted_offset(tp, offset)

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        with self._writing():
            super().apply_changelog_batch(batch, to_key, to_value)

    def _open_for_partition(self, partition: int) -> Any:
        with self._writing():
            return super()._open_for_partition(partition)


def register() -> str:
    """Makes `loyalty-rocksdb://` resolve to this store; returns the URL to pass to Faust."""
    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:FailStopRocksDBStore"
    return f"{SCHEME}://"
