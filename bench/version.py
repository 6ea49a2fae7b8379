"""Which mailsla this is: the release (:data:`bench.__version__`, the one version source) and,
in a git checkout, the commit it runs from (for ``mailsla --version`` and result.json)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from bench import __version__

_CHECKOUT = Path(__file__).resolve().parents[1]


@functools.cache
def git_commit() -> str | None:
    """The short commit of the checkout mailsla runs from, with ``-dirty`` when it has changes
    to tracked files; None when it is not a git checkout (an installed wheel) or git is
    missing."""
    if not (_CHECKOUT / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(_CHECKOUT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def version_line() -> str:
    """``mailsla 0.1.0 (commit 1234abcd5678)``."""
    commit = git_commit()
    return f"mailsla {__version__}" + (f" (commit {commit})" if commit else "")
