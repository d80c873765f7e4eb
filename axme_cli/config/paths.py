"""Where things live. ``AXME_CONFIG_DIR`` and ``AXME_DATA_DIR`` override the platform defaults."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    override = os.environ.get("AXME_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("axme", appauthor=False))


def data_dir() -> Path:
    """The runtime's data folder (the dev database, its key, mails), created 0700 or made so if it was looser."""
    from axme_cli.config.files import private_folder

    override = os.environ.get("AXME_DATA_DIR")
    if override:
        return private_folder(Path(override).expanduser())
    import platformdirs

    return private_folder(Path(platformdirs.user_data_dir("axme", appauthor=False)))


def config_file() -> Path:
    return config_dir() / "config.json"


def secrets_file() -> Path:
    return config_dir() / "secrets.json"


def default_database() -> Path:
    return data_dir() / "dev.db"
