"""Signals of core's toolkit, for the apps built on it (core never imports them)."""

from django.dispatch import Signal

# Sent inside the transaction that records a job's end, with `job` (status, result and error set): a receiver's
# writes commit with it or not at all. webhooks connects its outbox here (job.finished).
job_finished = Signal()
