"""`expire_reservations`: mark reservations past their time expired now (Celery beat also does it every 30 s)."""

from django.core.management.base import BaseCommand

from books.services.codes import reservations_expire


class Command(BaseCommand):
    help = "Mark every reservation past its expiry as expired and record its event. Safe to run at any time."

    def handle(self, *args, **options):
        marked = reservations_expire()
        self.stdout.write(f"Marked {marked} expired reservation(s).")
