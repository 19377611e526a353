from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The back office's pages of its own: a tenant's dashboard with its charts, and the job pages (the Job
    admin, its JSON progress, the download of a finished export). Built on the backoffice toolkit."""

    name = "dashboard"
    verbose_name = "Dashboard"
