"""One runner for every batch of cells (a sweep's scenarios, a study's arms): spawned local processes or Ray
tasks, a cache that skips finished cells, failures recorded instead of raised, and one progress line per cell.

A cell is a `Job`: a cache key, a label for the progress line, and a module-level function with its
arguments (so any worker can run it). The runner only executes and reports; what a finished cell writes
where is the caller's `store`, so only the calling process touches files and a Ray cluster needs no
shared file system.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from simulator.compile_cache import enable_compilation_cache
from simulator.config import ConfigError

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    key: str  # the cell's cache id
    label: str  # what the progress line calls it
    function: Callable[..., Any]  # module level, so a spawned process or a Ray worker can import it
    args: tuple = ()


@dataclass(frozen=True)
class Outcome:
    """A finished cell: its value, or the error that stopped it (`failed`)."""

    job: Job
    value: Any = None
    error: str = ""
    traceback: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True)
class Progress:
    """Where a batch stands after a cell finished: counts, time, and the cell's headline (or its error)."""

    done: int
    failed: int
    skipped: int  # cells the cache already had
    total: int
    elapsed_seconds: float
    eta_seconds: float
    label: str
    line: str

    def text(self) -> str:
        """The progress line every command prints."""
        finished = self.done + self.failed
        return (f"[{finished}/{self.total - self.skipped}  {self.elapsed_seconds:5.0f} s, ETA {self.eta_seconds:5.0f} s] "
                f"{self.label}: {self.line}")


def _execute(job: Job) -> Outcome:
    """Run one cell in a worker; an exception becomes a failed outcome, so one bad cell does not stop the batch."""
    enable_compilation_cache()  # a worker: reuse compiled programs across cells, workers and runs
    try:
        return Outcome(job, value=job.function(*job.args))
    except Exception as err:
        return Outcome(job, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())


def _lost(job: Job, err: BaseException) -> Outcome:
    """A cell whose worker died (killed for memory, crashed) instead of returning: a failure like any other."""
    return Outcome(job, error=f"worker lost: {type(err).__name__}: {err}", traceback=traceback.format_exc())


def _local(jobs: list[Job], workers: int) -> Iterator[Outcome]:
    context = multiprocessing.get_context("spawn")  # JAX is multithreaded: never fork it
    with concurrent.futures.ProcessPoolExecutor(max(1, min(workers, len(jobs))), mp_context=context) as pool:
        futures = {pool.submit(_execute, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            try:
                yield future.result()
            except Exception as err:  # BrokenProcessPool: this and every cell still queued fail, and are recorded
                yield _lost(futures[future], err)


def _ray(jobs: list[Job], workers: int, address: str | None) -> Iterator[Outcome]:
    """Cells as Ray tasks on a local Ray instance (`workers` CPUs) or on the cluster at `address`."""
    import ray  # optional: only this backend needs it

    started_here = not ray.is_initialized()
    folder = None  # the local instance's session files (a short path: Ray's sockets live there), removed after
    if started_here:
        options = dict(include_dashboard=False, log_to_driver=False)
        if address is None:
            folder = tempfile.mkdtemp(prefix="adfray-", dir="/tmp")
            options.update(num_cpus=max(workers, 1), object_store_memory=200 * 2**20, _temp_dir=folder)
        ray.init(address=address, **options)
    try:
        task = ray.remote(num_cpus=1)(_execute)
        by_ref = {task.remote(job): job for job in jobs}
        pending = list(by_ref)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except Exception as err:  # a crashed worker or a lost node
                yield _lost(by_ref[done[0]], err)
    finally:
        if started_here:
            ray.shutdown()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def run_jobs(jobs: Iterable[Job], *, finished: Callable[[Job], bool], store: Callable[[Outcome], None],
             headline: Callable[[Any], str] = lambda value: "done", workers: int = 2, backend: str = "local",
             address: str | None = None, progress: Callable[[Progress], None] | None = None) -> dict[str, int]:
    """Run every job not `finished` yet on `backend`, hand each outcome to `store` as it arrives (in this
    process), and report a `Progress` per finished cell; return the counts."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError("--address: a Ray cluster address needs --backend ray")
    jobs = list(jobs)
    todo = [job for job in jobs if not finished(job)]
    counts = {"done": 0, "failed": 0, "skipped": len(jobs) - len(todo), "total": len(jobs)}
    if not todo:
        return counts
    started = time.perf_counter()
    outcomes = _ray(todo, workers, address) if backend == "ray" else _local(todo, workers)
    for outcome in outcomes:
        store(outcome)
        counts["failed" if outcome.failed else "done"] += 1
        if progress is not None:
            elapsed = time.perf_counter() - started
            left = len(todo) - counts["done"] - counts["failed"]
            progress(Progress(counts["done"], counts["failed"], counts["skipped"], counts["total"], elapsed,
                              elapsed / (len(todo) - left) * left, outcome.job.label,
                              f"FAILED: {outcome.error}" if outcome.failed else headline(outcome.value)))
    return counts
