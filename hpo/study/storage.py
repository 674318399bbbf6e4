"""Optuna study storage: the URL in use, the RDB storage with heartbeats, and a storage that
rides out a database outage (Patient, retrying with tenacity)."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import optuna
import tenacity
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url

from hpo.search.optuna_private import NamedStudyCache, write_together
from hpo.util.errors import UserError, first_line, masked, scrub
from hpo.util.interrupts import shielded

DEFAULT_STORAGE = "sqlite:///hpo.db"  # opens unchanged in optuna-dashboard
HEARTBEAT_SECONDS = 10  # how often a running trial says it is alive (HPO_HEARTBEAT_SECONDS)
GRACE_SECONDS = 30  # after how long without that its trial is failed, rerun (HPO_GRACE_SECONDS)
SCHEMA_TRIES = 5  # workers that start together race to create the schema: a bounded retry
# seconds between tries of one storage call while the database is away (about a minute in all)
RETRY_BACKOFF = (1, 2, 4, 8, 15, 30)


def storage_url(url: str | None = None) -> str:
    """--storage, else HPO_STORAGE, else the local SQLite file."""
    return url or os.environ.get("HPO_STORAGE") or DEFAULT_STORAGE


def _seconds(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    if not text.strip().isdigit() or int(text) <= 0:
        raise UserError(f"{name}={text!r}: expected a whole number of seconds, e.g. {default}")
    return int(text)


def heartbeat() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds, from the environment; a grace that is not
    longer than the interval would fail live workers' trials between two of their beats."""
    beat = _seconds("HPO_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)
    grace = _seconds("HPO_GRACE_SECONDS", GRACE_SECONDS)
    if grace <= beat:
        raise UserError(
            f"HPO_GRACE_SECONDS={grace} must be longer than HPO_HEARTBEAT_SECONDS={beat}: a live "
            f"worker's trial would be failed between two heartbeats (Optuna's default: {2 * beat})"
        )
    return beat, grace


def open_storage(url: str | None = None) -> Any:
    """An Optuna storage for `url` ('memory' = in-process only); one-line UserError if unusable.

    RDB storages get heartbeats, so a trial whose worker died is failed within the grace period
    and re-queued once with the same params (RetryFailedTrialCallback).
    """
    # heartbeats and the stale-trial retry are marked experimental; they are what we want
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = storage_url(url)
    if url in ("memory", ":memory:"):
        return optuna.storages.InMemoryStorage()
    try:
        sqlite = make_url(url).get_backend_name() == "sqlite"
    except (exc.ArgumentError, ValueError):
        raise UserError(
            f"malformed storage URL {masked(url)!r}: expected e.g. sqlite:///hpo.db"
        ) from None
    beat, grace = heartbeat()
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if sqlite:
        engine_kwargs["connect_args"] = {"timeout": 60}  # several local workers share the file

    def connect() -> optuna.storages.RDBStorage:
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=beat,
            grace_period=grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        )
        if sqlite:
            _wal(storage.engine)
        return storage

    # unreachable or refused: no retry, which would only delay the message
    race = (exc.SQLAlchemyError, OSError, ValueError)
    retry = tenacity.retry_if_exception(lambda e: isinstance(e, race) and not never_connected(e))
    tries = tenacity.Retrying(
        retry=retry,
        stop=tenacity.stop_after_attempt(SCHEMA_TRIES),
        wait=tenacity.wait_incrementing(start=0.5, increment=0.5),
        reraise=True,
    )
    try:
        return tries(connect)
    except (ImportError, ModuleNotFoundError) as e:
        raise UserError(f"storage {masked(url)}: missing database driver ({e})") from None
    except race as e:
        reason = scrub(first_line(e), url)
        raise UserError(f"cannot open storage {masked(url)}: {reason}") from None


def _wal(engine: Any) -> None:
    """SQLite in WAL mode with synchronous=NORMAL: far fewer fsyncs per trial (measured here:
    50-70 ms instead of 130-275 ms per trivial trial, benchmarks/storage.py), and readers do
    not block the writer. Local disks only, which is where SQLite belongs anyway."""

    def pragmas(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened during set-up reconnect with the pragmas


class StorageLost(Exception):
    """The study storage stayed unreachable past the retry window."""


class Patient:
    """An RDBStorage whose calls ride out a database outage (a restart, a network cut): a call
    that fails for want of a connection is tried again with backoff (RETRY_BACKOFF), with one
    line when the storage goes away and one when it is back. Past the window, every call raises
    StorageLost at once (heartbeats fall silent instead), so the run can stop in one line and
    leave its running trial to the heartbeat of the next run.

    Optuna's own cache goes on top (`patient_storage`), as Optuna does for an RDB storage;
    without it, a restart surfaced inside Optuna's `tell` as UnboundLocalError.
    """

    def __init__(
        self, backend: Any, echo: Callable[[str], None], backoff: tuple[float, ...] = RETRY_BACKOFF
    ):
        self._backend, self._echo, self._backoff = backend, echo, backoff
        self._lock = threading.Lock()
        self.away = False  # an outage is under way (reported once)
        self.lost: str | None = None  # why the window ran out

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: self._call(name, attr, args, kwargs)

    def _call(self, name: str, fn: Any, args: tuple, kwargs: dict) -> Any:
        heartbeat = name == "record_heartbeat"
        if self.lost is not None:
            if heartbeat:
                return None
            raise StorageLost(self.lost)
        tries = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_went_away),
            wait=tenacity.wait_chain(*map(tenacity.wait_fixed, self._backoff)),
            stop=tenacity.stop_after_attempt(len(self._backoff) + 1),
            before_sleep=self._going_away,
            reraise=True,
        )
        try:
            for attempt in tries:
                with attempt:
                    try:
                        with shielded():  # Ctrl-C waits for the call (hpo.util.interrupts)
                            result = fn(*args, **kwargs)
                    except UpdateFinishedTrialError:
                        # the try that lost its connection had stored it already
                        if attempt.retry_state.attempt_number == 1:
                            raise
                        if name != "set_trial_state_values":
                            raise
                        result = True
        except (exc.SQLAlchemyError, StorageInternalError) as e:
            if not _went_away(e):
                raise
            with self._lock:
                self.lost = f"unreachable for more than {sum(self._backoff):g} s ({self._why(e)})"
            if heartbeat:
                return None
            raise StorageLost(self.lost) from None
        if self.away:
            with self._lock:
                if self.away:
                    self.away = False
                    self._echo("storage reachable again; going on")
        return result

    def write_together(self, writes: list) -> None:
        """Several trial params and attrs in one transaction (hpo.search.optuna_private.
        write_together), riding out an outage as every other call does."""
        self._call("write_together", write_together, (self._backend, writes), {})

    def _why(self, error: BaseException) -> str:
        cause = error.__cause__ if isinstance(error, StorageInternalError) else error
        return scrub(first_line(cause), str(self._backend.url))

    def _going_away(self, state: tenacity.RetryCallState) -> None:
        with self._lock:
            if not self.away:
                self.away = True
                reason = self._why(state.outcome.exception())
                self._echo(f"storage unreachable ({reason}); retrying with backoff")


def never_connected(error: BaseException) -> bool:
    """A database server that could not be reached or refused the connection (no such host,
    nothing listening, authentication failed), as opposed to the schema race of workers that
    start together, which a retry cures. Told by the driver's error, not by its message, which
    libpq translates: psycopg2 raises OperationalError without an SQLSTATE (pgcode) when the
    connection never opened; a race has one (duplicate table, unique violation). SQLite's
    errors carry no pgcode attribute at all and are retried."""
    orig = getattr(error, "orig", None)
    return (
        isinstance(error, exc.OperationalError)
        and orig is not None
        and hasattr(orig, "pgcode")
        and orig.pgcode is None
    )


def _went_away(error: BaseException) -> bool:
    """A database error that a new connection can cure (the server went away), not bad data.
    Optuna wraps SQLAlchemy's error of a failed commit in StorageInternalError."""
    if isinstance(error, StorageInternalError):
        error = error.__cause__
    lost = (
        exc.OperationalError,
        exc.InterfaceError,
        exc.DisconnectionError,
        exc.PendingRollbackError,  # the session of a dropped connection, until rolled back
        exc.ResourceClosedError,
    )
    return isinstance(error, lost) or bool(getattr(error, "connection_invalidated", False))


def patient_storage(storage: Any, echo: Callable[[str], None]) -> tuple[Any, Patient | None]:
    """(the storage a study should use, its Patient or None): an RDBStorage behind a Patient
    and Optuna's cache; anything else unchanged."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        return storage, None
    patient = Patient(storage, echo)
    return NamedStudyCache(patient), patient
