"""Worker duty: job runs: start each workflow of a job run after the one before it ended.

It advances job runs that nobody drives: created for the workers (``POST /job-runs``),
or left between two workflows by a killed ``flowledger jobs run``. The executions
themselves are run by the workers like any other.
"""

from __future__ import annotations

import logging

from flowledger.logs import log_extra
from flowledger.runtime.engine import Engine
from flowledger.runtime.job_runs import JobRuns

log = logging.getLogger(__name__)

#: Job runs looked at per round; more wait for the next round, which comes soon.
BATCH = 50
#: Seconds to the next look after a round that started a workflow, and after one that
#: found nothing. The worker that ends a job run's workflow runs this duty at once
#: (``Worker.run_duty_now``): these paces only matter for workflows ended elsewhere.
BUSY, IDLE = 0.1, 1.0


class JobAdvancer:
    name = "jobs"
    paced = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.job_runs = JobRuns(engine)

    async def run_once(self) -> float:
        due = await self.engine.store.job_runs_to_advance(BATCH)
        for job_run_id in due:
            try:
                await self.job_runs.advance(job_run_id)
            except Exception:  # one broken job run must not stall the others
                log.exception(
                    "job run %s: cannot start its next workflow",
                    job_run_id,
                    extra=log_extra("advance_job_run", job_run_id=job_run_id),
                )
        return BUSY if due else IDLE
