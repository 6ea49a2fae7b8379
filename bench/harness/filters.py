"""The throwaway filter stack: ClamAV's clamd, then rspamd as a milter that asks it about every
attachment. ``with ThrowawayFilters() as f: ThrowawayPostfix(..., milter=f.milter)``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.harness.clamav import ThrowawayClamd
from bench.harness.rspamd import ThrowawayRspamd


class ThrowawayFilters:
    """rspamd (GTUBE, its local rules) with clamd (a locally built EICAR signature) behind it,
    each in a folder under *base*; stopped in the reverse order."""

    def __init__(self, base: Path | None = None, *, test_patterns: bool = False) -> None:
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        self.base = base or Path(tempfile.mkdtemp(prefix="mailsla-filters-"))
        self.base.chmod(0o755)
        self.clamd = ThrowawayClamd(self.base / "clamd")
        self.rspamd = ThrowawayRspamd(
            clamd_socket=self.clamd.socket, base=self.base / "rspamd", test_patterns=test_patterns
        )

    @property
    def milter(self) -> str:
        return self.rspamd.milter

    def start(self) -> str:
        self.clamd.start()
        try:
            return self.rspamd.start()
        except BaseException:
            self.clamd.stop()
            raise

    def stop(self) -> None:
        try:
            self.rspamd.stop()
        finally:
            self.clamd.stop()
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayFilters:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
