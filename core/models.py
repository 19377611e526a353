"""Jobs: long-running work (bulk generation, bulk upload, large exports) with status and progress.

The row is the truth about a job; a broker message is only a wake-up call. A worker that runs a job holds a
lease on its row and renews it while it works; the beat sweeper (core.services.jobs_sweep) takes back a job
whose lease ran out (its worker vanished) and re-sends a pending job whose message never came.
"""

from django.db import models


class Job(models.Model):
    class Kind(models.TextChoices):
        """The work a job does: books.tasks.BOOK_JOB_TASKS names the Celery task of each kind."""

        GENERATE = "generate", "Generate codes"
        UPLOAD = "upload", "Upload codes"
        EXPORT = "export", "Export redemptions"
        DISTRIBUTE = "distribute", "Distribute codes"

    class Status(models.TextChoices):
        """pending -> running -> succeeded or failed; the sweeper (core.services.jobs_sweep) puts a running job
        whose lease ran out back to pending, or fails it after its last attempt."""

        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    book = models.ForeignKey("books.CouponBook", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    params = models.JSONField(default=dict, blank=True)
    total = models.PositiveBigIntegerField(default=0)
    done = models.PositiveBigIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    file = models.FileField(upload_to="jobs/%Y/%m/", blank=True)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The Celery task that runs the job (its registered name): the sweeper re-sends it by this name.
    task = models.CharField(max_length=100, blank=True)
    # When a wake-up message was last handed to the broker; null when the broker refused it (sent again at the
    # sweeper's next run).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Runs started so far; a run proves it still owns the job by this number when it finishes.
    attempts = models.PositiveSmallIntegerField(default=0)
    # While running: the worker's lease, renewed by its heartbeat. Past it, the worker is taken for lost.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host and process id of the worker running it")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created_idx"),
            # The sweeper's scan: only unfinished jobs, a handful of rows however many jobs have ever run.
            models.Index(fields=["status"], name="job_unfinished_idx", condition=models.Q(status__in=["pending", "running"])),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(done__lte=models.F("total")) | models.Q(total=0), name="job_done_lte_total"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}

    @property
    def download_ready(self) -> bool:
        """A finished job with a result file stored (an export's workbook, a distribution's CSV; other kinds' files
        are their input): the one test for "this job has a download"."""
        return self.kind in (self.Kind.EXPORT, self.Kind.DISTRIBUTE) and self.status == self.Status.SUCCEEDED and bool(self.file)
