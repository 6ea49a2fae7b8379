"""Keep the garbage collector's full passes off the load.

A process's start-up leaves tens of thousands of long-lived objects (modules, classes, the
scenario), and every full (generation 2) collection walks all of them: 14-16 ms with the event
loop stopped, seen once or twice per 20 s run in mailsla's process and the fake MTA's, which
delays every send and reply due meanwhile. :func:`freeze_startup` collects once, then moves
what survived into the collector's permanent generation (:func:`gc.freeze`), so that a full
pass during the load looks only at what the run itself made. Nothing is leaked: frozen objects
are still freed by reference counting; only cycles among them would wait (start-up makes none
that matter).
"""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Call once the process is set up, before the load starts."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Undo :func:`freeze_startup` where the process goes on after its load (mailsla's own,
    which may run again: ``mailsla selftest``, the tests), so that what a run left alive and
    later drops in a cycle is collected."""
    gc.unfreeze()
