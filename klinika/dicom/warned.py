"""pydicom's warnings caught per call, safely across threads.

``warnings.catch_warnings`` swaps process-wide state (the filters and ``showwarning``): two
threads that enter and leave it interleaved restore each other's state, so one thread's
warnings land in another's list or are lost. Python before 3.14 has no context-local warnings
state, so every catch in Klinika takes this one lock and stays whole.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()


@contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning raised inside the block, in a list (none is shown or raised)."""
    with _LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


@contextmanager
def silenced() -> Iterator[None]:
    """No warning raised inside the block is shown, raised or kept."""
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
