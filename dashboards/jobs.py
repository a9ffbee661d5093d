"""Long work (a run, a comparison, a sweep) on a background thread, so a page stays live while it goes: it shows
progress and an estimate of the time left, offers Stop, and keeps the result or the one-line error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One piece of work: `work(job)` runs on its own thread and reports through `report`, asks `stopping`."""

    label: str
    inputs: dict[str, Any] = field(default_factory=dict)
    fraction: float = 0.0
    message: str = "starting…"
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def report(self, fraction: float, message: str) -> None:
        self.fraction, self.message = min(max(fraction, 0.0), 1.0), message

    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def done(self) -> bool:
        return self.finished is not None

    def eta_text(self) -> str:
        """Elapsed wall time and, once there is enough progress to judge, the time left at the pace so far."""
        elapsed = (self.finished or time.perf_counter()) - self.started
        if self.done or self.fraction < 0.02:
            return f"{elapsed:.0f} s"
        return f"{elapsed:.0f} s, about {elapsed * (1 - self.fraction) / self.fraction:.0f} s left"


def start(job: Job, work: Callable[[Job], Any]) -> Job:
    """Run `work(job)` on a daemon thread; its return value lands in `job.result`, an error's one line in `job.error`
    (never a traceback: the library's errors are one-line messages already)."""

    def target() -> None:
        try:
            job.result = work(job)
        except Exception as err:  # the page shows it in one line; the thread must never die silently
            job.error = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        finally:
            if job.result is None and job.error is None:
                job.error = "ended without a result (interrupted)"
            job.finished = time.perf_counter()

    job._thread = threading.Thread(target=target, name=f"adfloor-{job.label}", daemon=True)
    job._thread.start()
    return job
