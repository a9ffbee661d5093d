"""The run's simpy processes and the next wake-up of each, which the process records itself when it sleeps: the
run's state reads these records, never simpy's private queue, and `Simulation.restore` re-creates the processes
from them in the order they were scheduled (equal-time events keep that order)."""

from __future__ import annotations

import itertools
from collections.abc import Generator
from typing import Any

import simpy

from simulator.loop.state import StateError, Wakeup


class Processes:
    """A simpy environment and its live processes, each with its kind, the snapshot it deploys (go-live
    processes only) and its recorded next wake-up."""

    def __init__(self, now: float = 0, next_order: int = 0):
        self.env = simpy.Environment(initial_time=now)
        self._kinds: dict[simpy.Process, tuple[str, Any]] = {}
        self._wakeups: dict[simpy.Process, Wakeup] = {}
        self._scheduled = itertools.count(next_order)

    @classmethod
    def resumed(cls, now: float, wakeups: list[Wakeup]) -> "Processes":
        """An environment at `now` whose next scheduling order follows the restored wake-ups' (the caller
        starts the processes, in this list's order, with `start(..., wakeup=)`)."""
        return cls(now, max((w.order for w in wakeups), default=-1) + 1)

    def start(self, kind: str, process: Generator, snapshot: Any = None, wakeup: Wakeup | None = None) -> None:
        """Start a process of `kind`; a restored one starts with the wake-up it had recorded."""
        started = self.env.process(process)
        self._kinds[started] = (kind, snapshot)
        if wakeup is not None:
            self._wakeups[started] = wakeup

    def first_sleep(self, minutes: float) -> simpy.Timeout:
        """The running process's first timeout: the wake-up restored with it (`minutes` away), or a new one."""
        if self.env.active_process in self._wakeups:
            return self.env.timeout(minutes)
        return self.sleep(minutes)

    def sleep(self, minutes: float) -> simpy.Timeout:
        """The running process's timeout, with its wake-up recorded."""
        kind, snapshot = self._kinds[self.env.active_process]
        self._wakeups[self.env.active_process] = Wakeup(self.env.now + minutes, next(self._scheduled), kind, snapshot)
        return self.env.timeout(minutes)

    def finish(self) -> None:
        """The running process is done: nothing of it is left to resume."""
        del self._kinds[self.env.active_process], self._wakeups[self.env.active_process]

    def wakeups(self) -> list[Wakeup]:
        """Every live process's next wake-up, in queue order."""
        if self._kinds.keys() != self._wakeups.keys():
            raise StateError("run state: a live process has no recorded wake-up (it must sleep through Processes.sleep)")
        return sorted(self._wakeups.values(), key=lambda w: (w.minute, w.order))
