from bench.verdict.sla import evaluate


class _S:
    def __init__(self, **v: float) -> None:
        self.v = v

    def stat(self, name: str) -> float | None:
        return self.v.get(name)


def test_exchange_judges_the_mean_only() -> None:
    slow = evaluate("exchange", (), {"send_delay": _S(mean=61.0, max=70.0)}, 0)
    assert [c.name for c in slow.checks] == ["send_delay.mean"] and not slow.passed
    assert evaluate("exchange", (), {"send_delay": _S(mean=59.0)}, 0).passed


def test_google_judges_its_uptime() -> None:
    down = evaluate("google", (), {}, 0, availability={"google_uptime": 0.998})
    assert not down.passed and down.checks[0].name == "availability.google_uptime"
    assert evaluate("google", (), {}, 0, availability={"google_uptime": 0.9995}).passed
    assert not evaluate("google", (), {}, 0, availability={"google_uptime": None}).passed
