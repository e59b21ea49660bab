"""Optuna studies shared by several sweeper processes: the RDB storage is checked and created once, before a sweeper opens it.

``python -m mbdl -m hparams_search=unfolded hydra.sweeper.storage=sqlite:///outputs/optuna.db`` run twice at
once (or on two machines with a PostgreSQL/MySQL URL) adds both processes' trials to one study. optuna 2.10
creates the tables of a new database when a sweeper first opens it, and two sweepers opening the same new
database at once race (``table studies already exists``); :class:`PrepareStudyStorage` creates them first,
one process at a time.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mbdl.config import ConfigError, require
from mbdl.results.loggers import file_lock, sqlite_path

#: the configuration key of the storage URL.
STORAGE_OPTION = "hydra.sweeper.storage"


def prepare_storage(url: Any, attempts: int = 5) -> None:
    """Check that ``url`` is a database URL and create Optuna's tables in it unless they exist.

    A SQLite file (relative paths from the working directory; its folder is created) is prepared under
    a lock on ``<file>.lock``; a server database is retried (``attempts`` times, 1 s apart) when another
    sweeper creates the tables at the same moment.
    """
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its import and migration lines would reach the console through Hydra
    import optuna
    import sqlalchemy

    require(isinstance(url, str), STORAGE_OPTION, f"must be a database URL such as sqlite:///outputs/optuna.db, got {url!r}")
    try:
        sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"{STORAGE_OPTION}: {url!r} is not a database URL (sqlite:///outputs/optuna.db, postgresql://user@host/db)") from None
    with file_lock(sqlite_path(url)):
        for attempt in range(1, attempts + 1):
            try:
                optuna.storages.RDBStorage(url)
                return
            except sqlalchemy.exc.NoSuchModuleError as error:
                raise ConfigError(f"{STORAGE_OPTION}: {url!r}: {error}") from None
            except sqlalchemy.exc.SQLAlchemyError:
                if attempt == attempts:
                    raise
                time.sleep(1.0)


class PrepareStudyStorage(Callback):
    """Hydra callback of ``hparams_search=...``: before the Optuna sweeper starts, prepare ``hydra.sweeper.storage`` (if set)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        url = config.hydra.sweeper.get("storage")
        if url is None:
            return
        try:
            prepare_storage(url)
        except ConfigError as error:
            sys.exit(f"error: {error}")
