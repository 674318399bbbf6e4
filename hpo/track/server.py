"""Where MLflow's tracking store is, and whether its server answers: what the CLI needs before
a study starts (and `hpo ui` throughout), without importing mlflow."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from hpo.util.errors import UserError, masked

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default store, in the working dir
# An http(s) tracking server must answer within this many seconds when a command starts.
SERVER_WAIT_SECONDS = 5.0


def tracking_uri(uri: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the local SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_server(uri: str, wait: float = SERVER_WAIT_SECONDS) -> None:
    """An http(s) tracking URI: one request to the server's /health, waiting at most `wait`
    seconds; a UserError (exit 2) naming the server if nothing answers. Other URIs: nothing."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=wait):
            return
    except urllib.error.HTTPError:  # something answers (a proxy, a prefix): MLflow will tell
        return
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(
            f"MLflow tracking server {masked(uri)} is unreachable ({reason}; waited up to "
            f"{wait:g} s): start it, or choose another --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None
