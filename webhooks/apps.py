from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # core's jobs cannot import this app (core is the toolkit every app builds on), so a job's end reaches the
        # outbox through core's job_finished signal, sent inside the transaction that records the end.
        from core.signals import job_finished

        from .receivers import job_finished_outbox

        job_finished.connect(job_finished_outbox, dispatch_uid="webhooks.job_finished_outbox")
