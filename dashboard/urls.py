"""URLs of the dashboard's job views, mounted under /admin/backoffice/ (each behind the admin's login; the paths
predate the dashboard app and stay as they were)."""

from django.contrib import admin
from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("jobs/<int:job_id>/progress/", admin.site.admin_view(views.job_progress), name="job_progress"),
    path("jobs/<int:job_id>/download/", admin.site.admin_view(views.job_download), name="job_download"),
]
