"""Optuna study storage: URL resolution, password masking, RDB storage with heartbeats."""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any

import optuna
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages._cached_storage import _CachedStorage
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url

from hpo.util.errors import UserError, first_line
from hpo.util.interrupts import shielded

DEFAULT_STORAGE = "sqlite:///hpo.db"  # opens unchanged in optuna-dashboard
HEARTBEAT_SECONDS = int(os.environ.get("HPO_HEARTBEAT_SECONDS", "10"))
GRACE_SECONDS = int(os.environ.get("HPO_GRACE_SECONDS", "30"))  # dead worker -> trial FAIL


def storage_url(url: str | None = None) -> str:
    """--storage, else HPO_STORAGE, else the local SQLite file."""
    return url or os.environ.get("HPO_STORAGE") or DEFAULT_STORAGE


def mask(url: str) -> str:
    """The URL with its password replaced by ***, safe to print or log."""
    if url in ("memory", ":memory:"):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show only the scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def scrub(text: str, url: str) -> str:
    """`text` with the URL's password removed wherever it appears (error messages)."""
    try:
        password = make_url(url).password
    except Exception:
        return text.replace(url, mask(url))
    return text.replace(str(password), "***") if password else text


def open_storage(url: str | None = None) -> Any:
    """An Optuna storage for `url` ('memory' = in-process only); one-line UserError if unusable.

    RDB storages get heartbeats, so a trial whose worker died is failed within GRACE_SECONDS
    and re-queued once with the same params (RetryFailedTrialCallback).
    """
    # heartbeats and the stale-trial retry are marked experimental; they are what we want
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = storage_url(url)
    if url in ("memory", ":memory:"):
        return optuna.storages.InMemoryStorage()
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise UserError(
            f"malformed storage URL {mask(url)!r}: expected e.g. sqlite:///hpo.db"
        ) from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 60}  # several local workers share the file
    last: Exception | None = None
    # Workers starting together race to create the schema: retry a few times (bounded).
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
            if parsed.get_backend_name() == "sqlite":
                _wal(storage.engine)
            return storage
        except (ImportError, ModuleNotFoundError) as e:
            raise UserError(f"storage {mask(url)}: missing database driver ({e})") from None
        except (exc.SQLAlchemyError, OSError, ValueError) as e:
            last = e
            if never_connected(e):
                break  # unreachable or refused: retrying would only delay the message
            time.sleep(0.5 * (attempt + 1))
    reason = scrub(first_line(last), url) if last else "unknown error"
    raise UserError(f"cannot open storage {mask(url)}: {reason}")


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


# seconds between tries of one storage call while the database is away (about a minute in all)
RETRY_BACKOFF = (1, 2, 4, 8, 15, 30)


class Patient:
    """An RDBStorage whose calls ride out a database outage (a restart, a network cut): a call
    that fails for want of a connection is tried again with backoff (RETRY_BACKOFF), with one
    line when the storage goes away and one when it is back. Past the window, every call raises
    StorageLost at once (heartbeats fall silent instead), so the run can stop in one line and
    leave its running trial to the heartbeat of the next run.

    Optuna's own `_CachedStorage` goes on top (`patient_storage`), as Optuna does for an RDB
    storage; without it, a restart surfaced inside Optuna's `tell` as UnboundLocalError.
    """

    def __init__(self, backend: Any, echo: Any, backoff: tuple[float, ...] = RETRY_BACKOFF):
        self._backend, self._echo, self._backoff = backend, echo, backoff
        self._lock = threading.Lock()
        self.away = False  # an outage is under way (reported once)
        self.lost: str | None = None  # why the window ran out

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, attr, args, kwargs)

        return call

    def _call(self, name: str, fn: Any, args: tuple, kwargs: dict) -> Any:
        heartbeat = name == "record_heartbeat"
        for attempt, wait in enumerate((*self._backoff, None)):
            if self.lost is not None:
                if heartbeat:
                    return None
                raise StorageLost(self.lost)
            try:
                with shielded():  # Ctrl-C waits for the call (hpo.util.interrupts)
                    result = fn(*args, **kwargs)
            except UpdateFinishedTrialError:
                if attempt and name == "set_trial_state_values":
                    return True  # the try that lost its connection had stored it already
                raise
            except (exc.SQLAlchemyError, StorageInternalError) as e:
                # Optuna wraps SQLAlchemy's error of a failed commit in StorageInternalError
                cause = e.__cause__ if isinstance(e, StorageInternalError) else e
                if not _connection_lost(cause):
                    raise
                reason = scrub(first_line(cause), str(self._backend.url))
                with self._lock:
                    if wait is None:
                        total = sum(self._backoff)
                        self.lost = f"unreachable for more than {total:g} s ({reason})"
                        if heartbeat:
                            return None
                        raise StorageLost(self.lost) from None
                    if not self.away:
                        self.away = True
                        self._echo(f"storage unreachable ({reason}); retrying with backoff")
                time.sleep(wait)
                continue
            if self.away:
                with self._lock:
                    if self.away:
                        self.away = False
                        self._echo("storage reachable again; going on")
            return result
        raise AssertionError("not reached")


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


def _connection_lost(error: BaseException | None) -> bool:
    """A database error that a new connection can cure (the server went away), not bad data."""
    lost = (
        exc.OperationalError,
        exc.InterfaceError,
        exc.DisconnectionError,
        exc.PendingRollbackError,  # the session of a dropped connection, until rolled back
        exc.ResourceClosedError,
    )
    return isinstance(error, lost) or bool(getattr(error, "connection_invalidated", False))


class NamedStudyCache(_CachedStorage):
    """Optuna's cache of an RDB storage, which also remembers each study's id by name.

    Optuna asks the database for it each time it builds a Study object, and a Hyperband
    pruner builds one per bracket view: for each sampled knob and each reported epoch, ~25
    queries a cifar10 trial (benchmarks/trial_overhead.py). A study keeps its id for its life;
    one deleted through this storage is forgotten."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self._ids_by_name: dict[str, int] = {}

    def get_study_id_from_name(self, study_name: str) -> int:
        found = self._ids_by_name.get(study_name)
        if found is None:
            found = self._ids_by_name[study_name] = super().get_study_id_from_name(study_name)
        return found

    def delete_study(self, study_id: int) -> None:
        self._ids_by_name = {n: i for n, i in self._ids_by_name.items() if i != study_id}
        super().delete_study(study_id)


def patient_storage(storage: Any, echo: Any) -> tuple[Any, Patient | None]:
    """(the storage a study should use, its Patient or None): an RDBStorage behind a Patient
    and Optuna's cache; anything else unchanged."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        return storage, None
    patient = Patient(storage, echo)
    return NamedStudyCache(patient), patient
