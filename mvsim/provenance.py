"""Where a results directory's numbers come from: DIR/provenance.json.

Each sweep over a directory appends one entry: mvsim's version, the git commit (and whether the
checkout had uncommitted changes), a hash of the mvsim package's source (the code that produced the
numbers, committed or not), jax and jaxlib versions, the backend and devices, and start and end
times. Resuming a directory with code whose hash differs from the one that wrote it is refused in
one line unless asked for (`--allow-code-change`), so that results of two versions of the dynamics
are never mixed silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

from mvsim.config import ConfigError

FILE = "provenance.json"
PACKAGE = Path(__file__).resolve().parent


def code_hash() -> str:
    """sha256 (first 16 hex digits) of the mvsim package's .py files, by relative path and content."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def entry(devices) -> dict:
    """This process's provenance (without its end time)."""
    import jax
    import jaxlib

    from importlib.metadata import PackageNotFoundError, version

    try:
        mvsim_version = version("mvsim")
    except PackageNotFoundError:
        mvsim_version = "unknown"
    status = _git("status", "--porcelain", "--", str(PACKAGE))
    return {"mvsim": mvsim_version, "commit": _git("rev-parse", "HEAD"),
            "dirty": None if status is None else bool(status), "code_hash": code_hash(),
            "jax": jax.__version__, "jaxlib": jaxlib.__version__, "backend": devices[0].platform,
            "devices": [str(d) for d in devices], "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "end": None}


def read(out) -> list[dict]:
    path = Path(out) / FILE
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())["runs"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"'{path}' is damaged; move it aside to resume this directory") from None


def check(out, allow_change: bool = False) -> None:
    """Refuse (ConfigError, one line) to add to a directory written by other code, unless allowed."""
    runs = read(out)
    if runs and runs[0].get("code_hash") != code_hash() and not allow_change:
        first = runs[0]
        raise ConfigError(f"--out '{out}' was written by other code (mvsim {first.get('mvsim')}, commit "
                          f"{(first.get('commit') or 'unknown')[:10]}, code {first.get('code_hash')}; this is code "
                          f"{code_hash()}): its results would mix two versions of the dynamics; use a new --out, "
                          f"or --allow-code-change to add to it anyway")


def write(out, runs: list[dict]) -> None:
    path = Path(out) / FILE
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    os.replace(tmp, path)


def start(out, devices) -> list[dict]:
    """Append this process's entry to DIR/provenance.json; returns the runs (pass them to `finish`)."""
    runs = read(out) + [entry(devices)]
    write(out, runs)
    return runs


def finish(out, runs: list[dict]) -> None:
    """Stamp the end time of the last entry (this process's)."""
    runs[-1]["end"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write(out, runs)
