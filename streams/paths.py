"""Where loyalty-streams keeps files of its own on this machine. Apart from the settings, so
that the broker room can use it while the settings use the broker room's security model."""

from __future__ import annotations

import os
from pathlib import Path


def xdg_cache_dir() -> Path:
    """Cache root for Kafka jars and default data: `$LOYALTY_CACHE_DIR`, else the XDG cache."""
    override = os.environ.get("LOYALTY_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "loyalty-streams"
