"""The worker side: claim executions, keep their leases, and run the background duties
(schedules, entity events, job runs). It drives the runtime; nothing below imports it."""
