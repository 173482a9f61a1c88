"""What an ingest tells the stages after it: events, and the hooks that subscribe to them.

The arrows of the data path point one way: ``hub.ingest`` imports nothing of the stages that react to
its commits (publishing open-data releases). Those stages subscribe instead, where the runtime is
assembled: ``hub ingest``, ``hub worker`` and ``hub demo run`` each build one ``RunHooks``, let
``hub.publish.freshness.subscribe`` add the release rebuilds, and hand it to ``run_ingest`` (or to
the ``Worker``). The subscribers live in that object, not in a module: a run without hooks (a library
call, most tests) tells nobody, and two hubs in one process share nothing.

Events:

- **after commit** (``Committed``): a succeeded run made a new snapshot of its table visible. Each
  subscriber returns what it did as ``(dataset, name, outcome)`` triples (publish: the releases it
  rebuilt, ``version 3, built at ...``), which the run reports in ``RunResult.releases``. The run is
  committed whatever a subscriber does: one that raises is logged and reported as
  ``(dataset, "*", "failed: <why>")``, and the next subscriber still runs.
- **periodic** (``every(seconds, job)``): a job the worker runs between ingests, at its first poll and
  then every ``seconds`` (publish: rebuild the releases older than their frequency); it returns its
  triples the same way, and one that raises is logged without stopping the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hub.ingest.connector import WriteMode
from hub.settings import Settings

log = logging.getLogger(__name__)

Followup = tuple[str, str, str]
"""Something a subscriber did after a run: (dataset, name, outcome), e.g. a release it rebuilt."""


@dataclass(frozen=True)
class Committed:
    """A succeeded run made snapshot ``snapshot_id`` of ``dataset``'s table visible."""

    settings: Settings
    dataset: str
    run_id: str
    mode: WriteMode
    snapshot_id: int
    previous_snapshot_id: int | None


AfterCommit = Callable[[Committed], Iterable[Followup]]
PeriodicJob = Callable[[Settings], Iterable[Followup]]


@dataclass
class _Periodic:
    seconds: float
    job: PeriodicJob
    last: float | None = None


class RunHooks:
    """The subscribers of one runtime's ingest events (see the module docstring)."""

    def __init__(self) -> None:
        self._after_commit: list[AfterCommit] = []
        self._periodic: list[_Periodic] = []

    def on_after_commit(self, subscriber: AfterCommit) -> AfterCommit:
        """Call ``subscriber`` after every run that committed a new snapshot."""
        self._after_commit.append(subscriber)
        return subscriber

    def every(self, seconds: float, job: PeriodicJob) -> PeriodicJob:
        """Let the worker run ``job`` every ``seconds`` (the first time at its first poll)."""
        if seconds <= 0:
            raise ValueError("a periodic job needs a positive number of seconds")
        self._periodic.append(_Periodic(seconds, job))
        return job

    def after_commit(self, event: Committed) -> list[Followup]:
        """Tell every subscriber about ``event``; what they did, in order of subscription."""
        done: list[Followup] = []
        for subscriber in self._after_commit:
            try:
                done.extend(subscriber(event))
            except Exception as exc:  # the run is committed: a follow-up never fails it
                log.warning("after the commit of %s, %s failed: %s", event.dataset, _name(subscriber), exc)
                done.append((event.dataset, "*", f"failed: {exc}"))
        return done

    def run_due(self, settings: Settings, now: float) -> list[Followup]:
        """Run the periodic jobs whose time has come at ``now`` (``time.monotonic()``)."""
        done: list[Followup] = []
        for periodic in self._periodic:
            if periodic.last is not None and now - periodic.last < periodic.seconds:
                continue
            periodic.last = now
            try:
                done.extend(periodic.job(settings))
            except Exception:
                log.exception("periodic job %s failed", _name(periodic.job))
        return done


def _name(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
