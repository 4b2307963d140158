"""MLflow tracking for the course: SQLite and a local artifact store, or your tracking server.

::

    from coursekit import tracking
    tracking.configure()                      # sets MLflow's tracking URI
    tracking.experiment("brightcart-eta")     # get or create, with artifacts in the state dir

By default runs go to ``sqlite:///<state>/mlflow/mlflow.db`` and artifacts to
``<state>/mlflow/artifacts``. ``MLFLOW_TRACKING_URI`` (e.g. ``http://mlflow:5000``) switches to a
tracking server, which then decides where artifacts go.
"""

from __future__ import annotations

import logging
import os

from coursekit import naming
from coursekit.config import engine_dir

URI_ENV = "MLFLOW_TRACKING_URI"
_exported: set[str] = set()  # MLflow exports the URI we set into MLFLOW_TRACKING_URI; those are not the user's


def _user_uri() -> str | None:
    configured = os.environ.get(URI_ENV, "").strip()
    return configured if configured and configured not in _exported else None


def tracking_uri() -> str:
    """The tracking URI in use: ``$MLFLOW_TRACKING_URI``, else the course's SQLite store."""
    return _user_uri() or f"sqlite:///{engine_dir('mlflow') / 'mlflow.db'}"


def artifact_root() -> str:
    """Where the embedded store keeps artifacts (a ``file://`` URI)."""
    path = engine_dir("mlflow") / "artifacts"
    path.mkdir(exist_ok=True)
    return path.as_uri()


def configure() -> str:
    """Point MLflow at :func:`tracking_uri` (quietly, without telemetry); return the URI."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)

    uri = tracking_uri()
    if _user_uri() is None:
        _exported.add(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def sqlite_store(folder: str | os.PathLike[str]) -> str:
    """A SQLite tracking store of its own in ``folder`` (created if needed); its URI. Does not switch to it.

    MLflow creates a new store's tables by running its database migrations, 2-4 s each time; the first
    call makes an empty, migrated copy in the state dir (one per MLflow version) and later calls copy it,
    in milliseconds. Tests and labs that want a fresh registry each run use this.
    """
    import shutil
    import tempfile
    from pathlib import Path

    import mlflow

    target = Path(folder).expanduser().absolute() / "mlflow.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        template = engine_dir("mlflow") / f"empty-{mlflow.__version__}.db"
        if not template.exists():
            made = Path(tempfile.mkdtemp(dir=template.parent, prefix="empty-")) / "mlflow.db"
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(f"sqlite:///{made}", made.parent.as_uri())  # runs the migrations
            os.replace(made, template)   # whole, under its name at once: two kernels may race here
            shutil.rmtree(made.parent, ignore_errors=True)
        shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def name(base: str) -> str:
    """The name of an experiment or registered model: ``base`` in the learner's own store,
    ``<learner>.<base>`` on a shared tracking server (:mod:`coursekit.naming`). Idempotent."""
    return naming.namespaced(base, _user_uri() is not None)


def experiment(base: str) -> str:
    """Make :func:`name` of ``base`` the active experiment, creating it if needed; return its id."""
    import mlflow

    configure()
    name = naming.namespaced(base, _user_uri() is not None)  # what name(base) gives
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        location = None if _user_uri() else f"{artifact_root()}/{name}"
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
