"""gunicorn's configuration of the web processes: `gunicorn -c python:coupons_site.gunicorn_conf coupons_site.wsgi`
(README "Running in production"); `bench http` runs the same. Each value can be changed per deployment from the
environment.

Worker model: gthread, WEB_WORKERS processes of WEB_THREADS threads. A checkout call spends most of its time
waiting for PostgreSQL (its row locks and commits) and Redis, so threads keep more calls in flight per process than
sync workers (one call each) for the same memory; and gthread keeps a client's connection open between calls
(keep-alive), where a sync worker closes it after every answer. bench http measured both (README "Performance").
"""

import multiprocessing
import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_WORKERS", 2 * multiprocessing.cpu_count()))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
# gunicorn turns a sync worker with threads into gthread: threads only for gthread.
threads = int(os.environ.get("WEB_THREADS", "4")) if worker_class == "gthread" else 1
# Seconds an idle client connection stays open for its next request (behind a proxy that reuses connections).
keepalive = int(os.environ.get("WEB_KEEPALIVE", "5"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
