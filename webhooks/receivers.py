"""Writes to the outbox for changes recorded outside the books app (core's jobs)."""

from .services import outbox_add


def job_finished_outbox(sender, job, **kwargs) -> None:
    outbox_add(
        tenant_id=job.tenant_id,
        event_type="job.finished",
        data={
            "job": job.pk,
            "kind": job.kind,
            "status": job.status,
            "book": job.book_id,
            "total": job.total,
            "done": job.done,
            "error": job.error,
        },
        occurred_at=job.finished_at,
        ordering_key=f"job:{job.pk}",
    )
