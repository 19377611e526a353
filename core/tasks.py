"""Celery tasks of the core app."""

from dataclasses import asdict

from celery import shared_task

from .services import jobs_sweep


@shared_task(name="core.tasks.sweep_jobs")
def sweep_jobs() -> dict:
    """Beat task: take back jobs whose worker vanished and re-send jobs that waited too long. Running it twice at
    once changes each job once (conditional updates)."""
    return asdict(jobs_sweep())
