"""Saved files are written atomically: a temporary file in the same folder, then a rename.

A crash or Ctrl-C never leaves a half-written file under the final name; temporaries
left by a killed process are removed once their process is gone (ages in seconds).
Bottom layer: imports only ``deepcircuit.errors``; every layer may use it.
(Split out of ``deepcircuit.learning.model_file``, which re-exports these names.)
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import DeepCircuitError, InvalidInputError, OutputWriteError


#: Marker in the names of :func:`atomic_output`'s temporary files:
#: ``.<name>.deepcircuit-tmp-<pid>-<random><suffix>`` beside the target.
TMP_MARKER = ".deepcircuit-tmp-"
#: A temporary file older than this (seconds) is stale even if its process id is in use again.
STALE_TMP_SECONDS = 3600.0
_TMP_RE = re.compile(r"^\..*" + re.escape(TMP_MARKER) + r"(\d+)-[A-Za-z0-9_]+")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # exists but is someone else's (or an absurd number: treat as gone below)
    return True


def remove_stale_temporaries(folder: "str | Path", *, max_age: float | None = None) -> list[Path]:
    """Remove the temporary files :func:`atomic_output` left in ``folder`` when its process was
    killed (SIGKILL, power loss): those whose process is gone, or older than ``max_age`` seconds
    (default :data:`STALE_TMP_SECONDS`). Only regular files named like ours are touched; returns
    what was removed."""
    max_age = STALE_TMP_SECONDS if max_age is None else max_age
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP_RE.match(e.name)
        if not m:
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            pid = int(m.group(1))
            if (pid != os.getpid() and not _pid_alive(pid)) or now - st.st_mtime > max_age:
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            pass  # another process removed or renamed it first
    return removed


@contextmanager
def atomic_output(path: "str | Path", *, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; when the block ends without error, the file
    written there is fsynced and renamed over ``path``, otherwise it is removed. A crash never
    leaves a half-written file, and an existing ``path`` survives a failed write.

    The temporary file is named ``.<name>.deepcircuit-tmp-<pid>-<random><suffix>``; one left by a
    killed process is removed by the next write to the same folder
    (:func:`remove_stale_temporaries`). A write that fails (disk full, no permission) raises
    :class:`~deepcircuit.errors.OutputWriteError` naming ``path``.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise InvalidInputError(f"An output file needs a file name; got {str(path)!r}.")
    if path.is_dir():
        raise InvalidInputError(f"Cannot write {str(path)!r}: it is a folder; give a file name.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        # The name is cut so that a long target name still leaves room for the marker.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:80]}{TMP_MARKER}{os.getpid()}-", suffix=suffix,
                                   dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; saved results are meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, DeepCircuitError):
            raise _write_error(path, exc) from None
        raise


def _write_error(path: Path, exc: OSError) -> OutputWriteError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    err = OutputWriteError(f"Cannot write {str(path)!r}: {reason}; nothing was written there "
                           "(an existing file is unchanged).")
    err.errno, err.strerror, err.filename = exc.errno, reason, str(path)
    return err


def write_atomic(path: "str | Path", text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_output`); returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
