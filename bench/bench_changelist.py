"""Benchmark 6: the admin codes changelist over N codes: server time per page (target under 300 ms), for a tenant's
marketing user, on the first page, a deep page, the state and book filters and an exact-code search. The raw
baseline is the page's main query alone (the first 100 codes by the changelist's ordering) through psycopg."""

import time

from .common import Result, median, raw_connection, scale, tables_truncate

REPEAT = 5


def run() -> list[Result]:
    from django.test import Client

    from books.factories import CouponBookFactory, TenantFactory
    from books.models import Code
    from books.services.code_creation import codes_generate
    from core.actors import Actor
    from tenants.services import staff_user_create

    n = scale(1_000_000)
    tables_truncate()
    tenant = TenantFactory()
    book = CouponBookFactory(tenant=tenant)
    codes_generate(book=book, count=n, actor=Actor.system("bench"))
    CouponBookFactory(tenant=tenant, name="Small book")
    with raw_connection() as conn:
        conn.execute("ANALYZE books_code")
        conn.commit()
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="bench-marketing").delete()
    user = staff_user_create(tenant=tenant, username="bench-marketing", password="bench-pass-1234", role="marketing")
    sample = Code.objects.filter(book=book).values_list("code", flat=True).first()
    client = Client()
    client.force_login(user)
    pages = {
        "first page": "/admin/books/code/",
        "page 50": "/admin/books/code/?p=50",
        "filter state=free": "/admin/books/code/?state__exact=free",
        f"filter book={book.pk}": f"/admin/books/code/?book__id__exact={book.pk}",
        "exact search": f"/admin/books/code/?q={sample.lower()}",
    }
    results = []
    raw = []
    with raw_connection() as conn:
        for _ in range(REPEAT):
            started = time.perf_counter()
            conn.execute("SELECT * FROM books_code WHERE tenant_id = %s ORDER BY code LIMIT 100", [tenant.pk]).fetchall()
            raw.append(time.perf_counter() - started)
    for label, url in pages.items():
        timings = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        page = median(timings)
        results.append(
            Result(
                name=f"codes changelist, {n:,} codes: {label}",
                figure=f"{page * 1000:.0f} ms (median of {REPEAT})",
                baseline=f"main query {median(raw) * 1000:.1f} ms",
                ratio=page / median(raw),
                target="< 300 ms",
                ok=page < 0.300,
            )
        )
    return results
