"""The capacity search (``mailsla capacity``; issue 16): the highest open-loop rate the mail
system carries within the SLA and keeping up, found by growth, bisection and repeats of
borderline steps, then confirmed at 80, 100 and 120 %."""
