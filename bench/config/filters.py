"""The fake MTA's filter stage, as a scenario's ``[fakemta.filter]`` table sets it: how often it
catches spam and viruses, how often it misjudges ham, and what it does with what it catches.
Pure. The fake MTA acts on it (:mod:`fakemta.filter`); mailsla judges the outcome
(:mod:`bench.core.filters`).
"""

from __future__ import annotations

from dataclasses import dataclass

SPAM_ACTIONS = ("reject", "tag", "quarantine", "junk")
VIRUS_ACTIONS = ("reject", "strip", "replace")
# The standard test signatures: GTUBE (spam) and the 68-byte EICAR file (virus).
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# rspamd's variants of it (GTUBE-like test patterns, honoured with gtube_patterns = "all"):
# the standard one is rejected whatever rspamd's actions say; this one asks for its
# "add header" action instead, as a filter that tags spam (and files it into Junk) would act.
GTUBE_ADD_HEADER = b"Y" + GTUBE[1:]
GTUBE_PATTERNS = {"standard": GTUBE, "add_header": GTUBE_ADD_HEADER}  # message.gtube
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLASSES = ("ham", "spam", "virus")  # the classes of labelled traffic
SPAM_REJECT = "554 5.7.1 Spam message rejected"  # rspamd's reply to a reject action
VIRUS_REJECT = "554 5.7.1 clamav: virus found: Eicar-Test-Signature"  # rspamd + clamd's


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """The fake MTA's filter: P(catch) per class, P(ham judged spam), and the actions."""

    spam_detection: float = 0.98
    virus_detection: float = 0.98
    false_positive: float = 0.001
    spam_action: str = "reject"
    virus_action: str = "reject"
    subject_tag: str = "***SPAM***"

    def __post_init__(self) -> None:
        for name in ("spam_detection", "virus_detection", "false_positive"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"filter {name} {p!r}: must be in 0..1")
        if self.spam_action not in SPAM_ACTIONS:
            raise ValueError(f"filter spam_action {self.spam_action!r}: use {SPAM_ACTIONS}")
        if self.virus_action not in VIRUS_ACTIONS:
            raise ValueError(f"filter virus_action {self.virus_action!r}: use {VIRUS_ACTIONS}")
        if not self.subject_tag or not self.subject_tag.isprintable() or len(self.subject_tag) > 40:
            raise ValueError("filter subject_tag: 1 to 40 printable characters")

    def as_dict(self) -> dict[str, object]:
        return {
            "spam_detection": self.spam_detection,
            "virus_detection": self.virus_detection,
            "false_positive": self.false_positive,
            "spam_action": self.spam_action,
            "virus_action": self.virus_action,
            "subject_tag": self.subject_tag,
        }
