"""Where atlas-bot keeps its state on disk, and where its bundled Node.js mermaid worker lives."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "ATLAS_DATA_DIR"
MERMAID_DIR_ENV = "ATLAS_MERMAID_DIR"
RULES_DIR_ENV = "ATLAS_RULES_DIR"
APP_NAME = "atlas-bot"


def data_dir() -> Path:
    """State and caches: ``$ATLAS_DATA_DIR``, else ``$XDG_CACHE_HOME/atlas-bot``, else ``~/.cache/atlas-bot``.

    The directory is not created here; whoever writes into it creates it.
    """
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache_home).expanduser() if cache_home else Path.home() / ".cache"
    return base / APP_NAME


def mermaid_dir() -> Path:
    """The mermaid worker's npm package (worker.mjs, package.json, node_modules): ``$ATLAS_MERMAID_DIR`` or
    ``bot/mermaid`` next to this module (a deployment may install node_modules elsewhere and point here)."""
    explicit = os.environ.get(MERMAID_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(__file__).resolve().parent / "mermaid"


def default_rules_dir() -> Path:
    """The default rules: ``$ATLAS_RULES_DIR``, else ``bot/rules`` of an installed package, else the checkout's
    ``rules/`` next to the bot package (an editable install)."""
    override = os.environ.get(RULES_DIR_ENV)
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent
    installed = package / "rules"
    return installed if installed.is_dir() else package.parent / "rules"
