"""JAX's on-disk compilation cache for the entry points (CLI, app, benchmarks), so repeated runs skip most JIT time."""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV_VAR = "ADFLOOR_JAX_CACHE"
# Cache every compiled program, however quick to compile or small (JAX's defaults skip the short ones).
SETTINGS = {"jax_persistent_cache_min_compile_time_secs": 0.0, "jax_persistent_cache_min_entry_size_bytes": 0}


def enable_compilation_cache() -> Path | None:
    """Cache compiled XLA programs under $ADFLOOR_JAX_CACHE (default ~/.cache/adfloor/jax; "off" disables)."""
    setting = os.environ.get(ENV_VAR, str(Path.home() / ".cache" / "adfloor" / "jax"))
    if setting.lower() in ("off", "0", "false", ""):
        return None
    path = Path(setting).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home is no reason to fail a run; it only costs compile time
    jax.config.update("jax_compilation_cache_dir", str(path))
    for name, value in SETTINGS.items():
        jax.config.update(name, value)
    return path


def environment(path: str | Path) -> dict[str, str]:
    """The environment variables that give a process started with them the same cache (JAX reads each flag
    from its upper-cased name), so a subprocess reuses what this one compiled."""
    return {"JAX_COMPILATION_CACHE_DIR": str(path), **{name.upper(): str(value) for name, value in SETTINGS.items()}}
