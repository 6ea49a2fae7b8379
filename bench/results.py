"""result.json: assembling the document (schema ``mailsla.result/1``) and writing it atomically."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = "mailsla.result/1"
IDENTITY = "planned = not_sent + rejected + failed + delivered + undelivered"


def versions() -> dict[str, str]:
    """Versions of mailsla, Python and the libraries that shape the numbers."""
    out = {"python": platform.python_version()}
    for dist in ("mailsla", "aiosmtpd", "aiosmtplib", "uvloop", "hdrhistogram"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write *doc* to *path* so a reader sees the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".result-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
