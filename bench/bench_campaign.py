"""Benchmark: redeem throughput of a book with max_redemptions set against the same book without (SPEC: at least 0.8).

Through the services, CLIENTS forked processes (one database connection each, as gunicorn workers would be) redeem
distinct codes without a token, so the only rows every redemption of the book shares are the limited book's
allowance shards (books/lock_objects.py book_allowance_take: one of them, picked with SKIP LOCKED, taken last and
held to the commit). The limit is far above what the run redeems, so nothing is refused and both books do the same
work but the shard's one statement. The two books alternate for ROUNDS rounds, each on fresh codes, each figure
the best round, so a burst of load on the shared machine hits both. Afterwards each limited book's counter (the
sum of its shards) must equal its redemptions, and its shards' allowance must be exactly the limit minus them.
"""

import os

from .common import Result, distinct_codes_redeem_rate, scale, tables_truncate

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
ROUNDS = 3


def _rate(tenant, *, count: int, label: str, max_redemptions: int | None) -> tuple[float, int]:
    """Redemptions per second of `count` fresh codes of a new book, by CLIENTS processes; and the book's id."""
    from books.services.books import book_create

    book = book_create(
        tenant=tenant,
        name=label,
        status="active",
        requires_assignment=False,
        max_redemptions_per_user=None,
        max_codes_per_user=None,
        max_redemptions=max_redemptions,
    )
    return distinct_codes_redeem_rate(book=book, count=count, label=label, clients=CLIENTS), book.pk


def run() -> Result:
    from django.db.models import Sum

    from books.models import BookAllowance, BookCounter
    from redemptions.models import Redemption
    from tests.factories import TenantFactory

    count = scale(4000)
    tables_truncate()
    tenant = TenantFactory()
    limit = count * 10  # never reached: the run measures the counter, not refusals
    rates: dict[str, list[float]] = {"without": [], "with": []}
    limited_books = []
    for round_ in range(ROUNDS):
        for mode in ("without", "with"):
            rate, book_id = _rate(
                tenant, count=count, label=f"R{round_}-{mode}", max_redemptions=limit if mode == "with" else None
            )
            rates[mode].append(rate)
            if mode == "with":
                limited_books.append(book_id)
    exact = all(
        BookCounter.objects.get(book_id=book_id).redemptions == Redemption.objects.filter(book_id=book_id).count() == count
        and BookAllowance.objects.filter(book_id=book_id).aggregate(left=Sum("uses_left"))["left"] == limit - count
        for book_id in limited_books
    )
    best_without, best_with = max(rates["without"]), max(rates["with"])
    ratio = best_with / best_without
    return Result(
        name=f"redeem, book with max_redemptions, {CLIENTS} clients, {count:,} codes x {ROUNDS} rounds",
        figure=f"{best_with:,.0f} redemptions/s with max_redemptions ({'counters exact' if exact else 'COUNTERS WRONG'})",
        baseline=f"{best_without:,.0f}/s without",
        ratio=ratio,
        target=">= 0.8",
        ok=ratio >= 0.8 and exact,
        notes=[f"rounds without {[round(r) for r in rates['without']]}, with {[round(r) for r in rates['with']]}"],
    )
