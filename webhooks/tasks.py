"""Celery tasks of webhooks: send deliveries (woken after the commit that wrote them) and the beat sweeper."""

from celery import shared_task

from .services import deliveries_due, deliveries_orphaned_delete, deliveries_send

SWEEP_BATCH = 50  # deliveries per task the sweeper queues: several workers share a backlog


@shared_task(name="webhooks.tasks.deliver")
def deliver(delivery_ids: list[int]) -> int:
    """Send these deliveries if they are due and first in their queue. A second run finds them claimed or done."""
    return sum(outcome.succeeded for outcome in deliveries_send(delivery_ids=delivery_ids))


@shared_task(name="webhooks.tasks.sweep_deliveries")
def sweep_deliveries() -> int:
    """Beat task: queue every delivery that is due for a retry or was stranded (its message or its worker lost), and
    remove the deliveries of an endpoint deleted while they were written."""
    deliveries_orphaned_delete()
    due = deliveries_due()
    for start in range(0, len(due), SWEEP_BATCH):
        deliver.delay(due[start : start + SWEEP_BATCH])
    return len(due)
