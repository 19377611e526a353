"""The back office: shared admin code (tenant scoping, a paginator that never counts millions, charts, the
dashboard, job progress and downloads) used by every app's admin.py."""
