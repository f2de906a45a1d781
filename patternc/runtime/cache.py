"""The on-disk cache of generated kernel modules.

Triton's JIT reads a kernel's source from its file, so generated source is written to
``$PATTERNC_CACHE_DIR`` (default ``~/.cache/patternc``) under ``<kind>/<kind>_<hash>.py`` and
imported from there. ``hash`` is the SHA-256 of the caller's key text (for the forward kernel:
pattern IR text, block sizes, dtype, head dim, GQA ratio, template version). Writes go to a
unique temporary file first and ``os.replace`` it into place, so processes filling the cache at
the same time never leave a torn file; an existing file is reused only if its content is the
expected source (a stale or foreign file is rewritten). Triton's own compiled-binary cache then
makes warm calls in a new process skip compilation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

_LOADED: dict[str, ModuleType] = {}
_LOCK = threading.Lock()


_PARSED: dict[tuple[str, str, Any], Any] = {}  # (name, raw value, what) -> parsed: switches are read per call


def env_flag(name: str, default: bool) -> bool:
    """A yes/no environment switch: unset or empty gives ``default``; an on-by-default switch is
    turned off by 0 / false / no / off, an off-by-default one turned on by 1 / true / yes / on."""
    raw = os.environ.get(name, "")
    hit = _PARSED.get((name, raw, default))
    if hit is None:
        value = raw.strip().lower()
        hit = default if not value else (
            value not in ("0", "false", "no", "off") if default else value in ("1", "true", "yes", "on"))
        _PARSED[(name, raw, default)] = hit
    return bool(hit)


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """A switch among ``choices`` (case-insensitive); unset or empty gives the first; anything
    else is a ``ValueError`` that names the variable and the choices."""
    raw = os.environ.get(name, "")
    hit = _PARSED.get((name, raw, choices))
    if hit is None:
        value = raw.strip().lower() or choices[0]
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        hit = _PARSED[(name, raw, choices)] = value
    return str(hit)


def cache_dir() -> Path:
    """The root of the kernel-source cache (``$PATTERNC_CACHE_DIR`` or ``~/.cache/patternc``)."""
    root = os.environ.get("PATTERNC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "patternc")
    return Path(root)


def digest(key_text: str) -> str:
    return hashlib.sha256(key_text.encode()).hexdigest()[:24]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def load_module(kind: str, key_text: str, source: str) -> ModuleType:
    """The imported module of ``source``, stored as ``<cache>/<kind>/<kind>_<digest(key_text)>.py``.

    Loaded once per process (and per key); the file is written only when missing or different.
    """
    key = f"{kind}_{digest(key_text)}"
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        path = cache_dir() / kind / f"{key}.py"
        if _read(path) != source:
            write_atomic(path, source)
        name = f"patternc_kernel_{key}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import generated kernel {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _LOADED[key] = module
        return module
