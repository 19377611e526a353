"""Celery tasks of the back office."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

logger = logging.getLogger(__name__)

# django-import-export's MediaStorage keeps the files waiting for their confirm step here.
PREVIEW_FOLDER = "django-import-export"


@shared_task(name="backoffice.tasks.purge_import_previews")
def purge_import_previews() -> int:
    """Beat task: delete upload previews never confirmed (the confirm step deletes its own file at once)."""
    cutoff = timezone.now() - timedelta(hours=settings.COUPONS["IMPORT_PREVIEW_MAX_AGE_HOURS"])
    try:
        _, names = default_storage.listdir(PREVIEW_FOLDER)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        path = f"{PREVIEW_FOLDER}/{name}"
        try:
            if default_storage.get_modified_time(path) < cutoff:
                default_storage.delete(path)
                removed += 1
        except FileNotFoundError:  # confirmed (and deleted) meanwhile
            continue
    if removed:
        logger.info("deleted %s abandoned upload preview file(s)", removed)
    return removed
