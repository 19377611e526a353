"""The Celery application; each Django app keeps its tasks in its own tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coupons_site.settings")

app = Celery("coupons_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
