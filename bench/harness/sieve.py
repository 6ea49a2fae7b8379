"""The Sieve rule a throwaway Dovecot runs on every LMTP delivery when spam goes to Junk:
mail a filter marked as spam (rspamd's ``X-Spam: Yes``, SpamAssassin's ``X-Spam-Flag: YES``) is
filed into the user's Junk folder (made when missing), the rest into INBOX. It is a
``sieve_before`` script, so it runs whatever a user's own scripts would do.

The script is compiled once at set-up with ``sievec`` (Pigeonhole's compiler, Debian's
``dovecot-sieve``): LMTP delivers as the mail's owner, who could not write the compiled binary
next to a script root owns, and would otherwise compile it again for every message.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.harness.daemons import HarnessError

# The headers mailsla's fate reader also takes for "tagged" (bench.observe.fate_reader).
JUNK_SCRIPT = """require ["fileinto", "mailbox"];
# Written by mailsla's harness: what a filter marked as spam goes to Junk.
if anyof (header :is "X-Spam" ["Yes", "yes", "True", "true"],
          header :is "X-Spam-Flag" ["YES", "yes"]) {
  fileinto :create "Junk";
  stop;
}
"""


class SieveError(HarnessError):
    """Pigeonhole (dovecot-sieve) is missing, or the script did not compile."""


def find_sievec() -> str | None:
    for p in ("/usr/bin/sievec", shutil.which("sievec")):
        if p and Path(p).exists():
            return p
    return None


def write_junk_script(folder: Path, dovecot_conf: Path, text: str = JUNK_SCRIPT) -> Path:
    """Write and compile the Junk rule (*text*) in *folder*, readable by all; return the
    script's path, for ``sieve_before``. *dovecot_conf*: the instance's config (sievec reads
    it). Raises :class:`SieveError` with sievec's words when it does not compile."""
    sievec = find_sievec()
    if sievec is None:
        raise SieveError("sievec is not installed: apt-get install -y dovecot-sieve dovecot-lmtpd")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    script = folder / "junk.sieve"
    script.write_text(text)
    script.chmod(0o644)
    out = subprocess.run(
        [sievec, "-c", str(dovecot_conf), str(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    binary = folder / "junk.svbin"
    if out.returncode != 0 or not binary.exists():
        raise SieveError(f"sievec could not compile {script}:\n{out.stdout}{out.stderr}".rstrip())
    binary.chmod(0o644)
    return script
