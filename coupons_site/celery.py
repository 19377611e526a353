"""The Celery application; each Django app keeps its tasks in its own tasks.py."""

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coupons_site.settings")

app = Celery("coupons_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

FILESYSTEM_BROKER_FOLDERS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


@app.on_after_configure.connect
def broker_folders_create(sender: Celery, **kwargs) -> None:
    """The filesystem broker (the default without CELERY_BROKER_URL) keeps its messages in folders that must exist
    before the first message is sent or read. Made here, when the app first reads its configuration (in a web
    process, a worker or beat alike), rather than as a side effect of importing the settings."""
    if not sender.conf.broker_url.startswith("filesystem://"):
        return
    options = sender.conf.broker_transport_options or {}
    for key in FILESYSTEM_BROKER_FOLDERS:
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
