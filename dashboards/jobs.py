"""Long work (a run, a comparison, a sweep) on a background thread, so a page stays live while it goes: it shows
progress and an estimate of the time left, offers Stop, and keeps the result or the one-line error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st


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


def watch(key: str, finished: Callable[[Job], None], stop: str | None = None, stop_help: str = "",
          note: str | None = None) -> None:
    """Show the job in `st.session_state[key]` live: its progress (refreshed every second), `note` before it has
    any, a Stop button labelled `stop`; when it ends, hand it to `finished` and rerun the page to show it."""

    @st.fragment(run_every=1.0)
    def live() -> None:
        job = st.session_state.get(key)
        if job is None:
            return
        if job.done:
            del st.session_state[key]
            finished(job)
            st.rerun(scope="app")
        st.progress(job.fraction, text=f"{job.label}: {job.message} · {job.eta_text()}")
        if note and job.fraction == 0.0:
            st.caption(note)
        if stop and st.button(stop, help=stop_help):
            job.request_stop()
            st.toast("Stopping: what is finished is kept.")

    live()
