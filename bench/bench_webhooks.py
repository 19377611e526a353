"""Benchmark: redeem throughput with two active webhook endpoints against none (SPEC: at least 0.9 of none).

Through the services, CLIENTS forked processes (one database connection each, as gunicorn workers would be) redeem
distinct codes of one book without a token, so no hot row hides the outbox's cost. With endpoints, every redemption
also reads the tenant's endpoints, writes two delivery rows and, after its commit, queues one Celery message on the
broker of CELERY_BROKER_URL (no worker runs here: sending happens elsewhere, off the redeem path; the queue is
purged afterwards). Without endpoints the outbox costs its one indexed SELECT, which the baseline includes. The two
modes alternate for ROUNDS rounds, each figure the best round, so a burst of load on the shared machine hits both.
"""

from .common import Result, distinct_codes_redeem_rate, scale, tables_truncate

CLIENTS = int(__import__("os").environ.get("BENCH_CLIENTS", "8"))
ROUNDS = 3


def _broker_warm_up() -> None:
    """Open the client's broker connection, as a long-running web process has it (the first publish of a process
    costs some 65 ms of imports and connecting): an empty wake-up, in both modes; the queue is purged at the end."""
    from webhooks.wakeups import publish

    publish([])


def _round(tenant, count: int, label: str) -> float:
    """Redemptions per second of `count` fresh codes, redeemed by CLIENTS processes."""
    from tests.factories import CouponBookFactory

    book = CouponBookFactory(tenant=tenant, requires_assignment=False, max_redemptions_per_user=None, max_codes_per_user=None)
    return distinct_codes_redeem_rate(book=book, count=count, label=label, clients=CLIENTS, warm_up=_broker_warm_up)


def run() -> Result:
    from django.conf import settings

    from coupons_site.celery import app
    from redemptions.models import Redemption
    from tests.factories import TenantFactory
    from webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
    from webhooks.services import webhook_endpoint_create

    count = scale(4000)
    tables_truncate()
    tenant = TenantFactory()
    for n in (1, 2):
        # Never called: no worker runs during the benchmark (.invalid never resolves, should one start).
        webhook_endpoint_create(tenant=tenant, url=f"https://receiver-{n}.example.invalid/hooks", events=list(EVENT_TYPES))
    rates: dict[str, list[float]] = {"none": [], "two": []}
    try:
        for round_ in range(ROUNDS):
            for mode in ("none", "two"):
                WebhookEndpoint.objects.filter(tenant=tenant).update(is_active=mode == "two")
                rates[mode].append(_round(tenant, count, f"R{round_}{mode[0].upper()}"))
    finally:
        app.control.purge()
    deliveries = WebhookDelivery.objects.filter(event_type="code.redeemed").count()
    redeemed = Redemption.objects.filter(tenant=tenant).count()
    expected = count * ROUNDS * 2  # two endpoints, in the "two" rounds only
    best_none, best_two = max(rates["none"]), max(rates["two"])
    ratio = best_two / best_none
    ok = ratio >= 0.9 and deliveries == expected and redeemed == count * ROUNDS * 2
    broker = settings.CELERY_BROKER_URL.split("://", 1)[0]
    return Result(
        name=f"redeem with 2 webhook endpoints, {CLIENTS} clients, {count:,} codes x {ROUNDS} rounds",
        figure=f"{best_two:,.0f} redemptions/s with 2 endpoints ({deliveries:,} deliveries written, {broker} broker)",
        baseline=f"{best_none:,.0f}/s with none",
        ratio=ratio,
        target=">= 0.9",
        ok=ok,
        notes=[f"rounds none {[round(r) for r in rates['none']]}, two {[round(r) for r in rates['two']]}"],
    )
