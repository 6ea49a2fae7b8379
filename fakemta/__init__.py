"""fakemta: the stand-in mail system that mailsla measures when no real one is given."""

from bench.config.delays import Delay, parse_delay, parse_duration
from fakemta.server import FakeMta, FakeMtaConfig

__all__ = ["Delay", "FakeMta", "FakeMtaConfig", "parse_delay", "parse_duration"]
