"""Celery tasks of the API app."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from .services import idempotency_keys_purge


@shared_task(name="api.tasks.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Beat task: drop stored Idempotency-Key answers past their retention. Running it twice changes nothing more."""
    return idempotency_keys_purge(older_than=timedelta(hours=settings.COUPONS["API_IDEMPOTENCY_KEY_HOURS"]))
