"""The one place that maps a step kind to the driver that runs it.

The scheduler, recovery and control ask this mapping (``driver.start``,
``driver.restore``, ``resumes_on_retry`` ...) and never a step type's name. A new
structural kind is a :class:`~flowledger.steps.base.StepKind` member plus its
driver class here; a test checks that every kind has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from flowledger.runtime.children import ChildWaits
from flowledger.runtime.loops import LoopDriver
from flowledger.runtime.ports import Driver, Scheduler
from flowledger.runtime.tasks import ConditionDriver, NoActionDriver, TaskDriver
from flowledger.runtime.waits import InputWaits
from flowledger.steps.base import StepKind

#: Kind → driver class. Each runner makes one driver of each (they hold its waiting steps).
DRIVERS: Mapping[StepKind, Callable[[Scheduler], Driver]] = {
    StepKind.TASK: TaskDriver,
    StepKind.CONDITION: ConditionDriver,
    StepKind.NO_ACTION: NoActionDriver,
    StepKind.LOOP: LoopDriver,
    StepKind.SUB_WORKFLOW: ChildWaits,
    StepKind.WAIT_FOR_INPUT: InputWaits,
}

#: Kinds whose failed steps a retry resumes (their driver's ``resumes_on_retry``).
RESUMED_ON_RETRY: frozenset[StepKind] = frozenset(
    kind for kind, driver in DRIVERS.items() if getattr(driver, "resumes_on_retry", False)
)

D = TypeVar("D")


def build_drivers(scheduler: Scheduler) -> dict[StepKind, Driver]:
    """One driver per kind for the scheduler of one execution."""
    return {kind: make(scheduler) for kind, make in DRIVERS.items()}


def driver_of(drivers: Mapping[StepKind, Driver], cls: type[D]) -> D:
    """The runner's driver of class ``cls`` (for what the runner asks of it by name)."""
    for driver in drivers.values():
        if isinstance(driver, cls):
            return driver
    raise LookupError(f"no {cls.__name__} among the drivers")  # pragma: no cover - wiring bug
