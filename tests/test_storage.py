"""The study storage as hpo opens it (hpo.study.storage): Optuna's cache over a patient RDB
storage, which also remembers study ids by name."""

from __future__ import annotations

import optuna
import pytest

from hpo.study.storage import NamedStudyCache, open_storage, patient_storage


def test_a_study_id_is_asked_of_the_database_once_and_forgotten_with_the_study(tmp_path):
    storage, patient = patient_storage(open_storage(f"sqlite:///{tmp_path}/s.db"), print)
    assert isinstance(storage, NamedStudyCache) and patient is not None
    asked = []
    real = patient._backend.get_study_id_from_name
    patient._backend.get_study_id_from_name = lambda name: asked.append(name) or real(name)

    study = optuna.create_study(storage=storage, study_name="s")
    first = len(asked)  # creating asks too (is the name taken?)
    for _ in range(5):  # as Hyperband's bracket views do, once per knob and epoch
        optuna.load_study(study_name="s", storage=storage)
    assert storage.get_study_id_from_name("s") == study._study_id
    assert len(asked) == first <= 2

    optuna.delete_study(study_name="s", storage=storage)
    with pytest.raises(KeyError):  # asked again, and gone
        storage.get_study_id_from_name("s")


def test_an_unreachable_server_is_told_by_the_driver_not_by_its_words():
    """Opening a storage retries the schema race of workers that start together, but not a
    server that never answered: libpq translates its messages, so the rule reads the driver's
    error (no SQLSTATE), and a German 'connection failed' is not retried for seconds."""
    import sqlite3
    import time

    import psycopg2
    from sqlalchemy import exc

    from hpo.study.storage import never_connected
    from hpo.util.errors import UserError

    german = psycopg2.OperationalError("Verbindung zum Server auf »10.0.0.1« fehlgeschlagen")
    assert never_connected(exc.OperationalError("connect", {}, german))
    locked = sqlite3.OperationalError("database is locked")  # a race among local workers
    assert not never_connected(exc.OperationalError("INSERT", {}, locked))
    assert not never_connected(exc.IntegrityError("CREATE", {}, Exception("duplicate")))
    t0 = time.monotonic()  # nothing listens on port 9: one line, at once (retries: 7.5 s)
    with pytest.raises(UserError, match="cannot open storage"):
        open_storage("postgresql+psycopg2://u:pw@127.0.0.1:9/db")
    assert time.monotonic() - t0 < 5
