"""WSGI entry point for gunicorn and other servers.

Requests under settings.API_PATH_PREFIX go to a handler built with settings.API_MIDDLEWARE (the middleware list
without what only the browser pages need, see settings); every other request to the usual one.
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coupons_site.settings")


def api_dispatch(browser_application: WSGIHandler):
    """The WSGI application: the API's paths to a handler with the API's middleware, the rest to the full one."""
    from django.conf import settings

    full_middleware = settings.MIDDLEWARE
    settings.MIDDLEWARE = settings.API_MIDDLEWARE  # read once, by the handler's constructor (load_middleware)
    try:
        api_application = WSGIHandler()
    finally:
        settings.MIDDLEWARE = full_middleware
    prefix = settings.API_PATH_PREFIX

    def application(environ, start_response):
        chosen = api_application if environ.get("PATH_INFO", "").startswith(prefix) else browser_application
        return chosen(environ, start_response)

    return application


application = api_dispatch(get_wsgi_application())
