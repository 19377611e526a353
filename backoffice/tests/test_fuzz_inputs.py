"""Hostile values in every URL path parameter of the API and every admin changelist filter never answer a 500
(SPEC "Abuse resistance": a NUL byte or a malformed value is a 4xx; a filter value out of range is the admin's
"invalid lookup" page or an empty list)."""

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from api.services import api_tokens_issue
from tenants.models import Role
from tenants.services import api_client_create
from tests.factories import CodeFactory, CouponBookFactory
from tests.helpers import logged_in, redemption_make

pytestmark = pytest.mark.django_db

# Raw path segments (already percent-encoded as a client would send them).
HOSTILE_SEGMENTS = [
    "%00",
    "%00x",
    "x%00",
    "%2F",
    "a%2Fb",
    "..",
    "%2E%2E",
    "%C0%AF",
    "%FF%FE",
    "%E2%80%AE",
    "%F0%9F%98%80",
    "%20",
    "%0A",
    "%7F",
    "%25",
    "a" * 5000,
    "9" * 40,
    "-1",
    "0",
]


def api_routes() -> list[str]:
    """Every API route with each of its converters replaced by a marker, e.g. codes/{}/lock/."""
    resolver = get_resolver()
    routes: list[str] = []

    def walk(patterns, prefix: str):
        for pattern in patterns:
            text = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + text)
            elif isinstance(pattern, URLPattern) and "<" in text:
                import re

                routes.append(re.sub(r"<[^>]+>", "{}", prefix + text))

    walk(resolver.url_patterns, "")
    return [route for route in routes if route.startswith("api/")]


@pytest.fixture
def world(tenant, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            scope: "1000000/min" for scope in ("auth", "auth_address", "read", "write", "lookup_failed", "lookup_failed_client")
        },
    }
    issued = api_client_create(tenant=tenant, name="Fuzzer")
    token = api_tokens_issue(client_id=issued.client.client_id, client_secret=issued.secret)["access"]
    book = CouponBookFactory(tenant=tenant)
    CodeFactory(book=book, code="FUZZ-1", user_id="shop/42", state="assigned")
    redemption_make(book, user_id="fuzzer")
    return {"token": token, "book": book}


def test_the_api_routes_are_all_covered():
    routes = api_routes()
    assert any("codes/{}" in route for route in routes) and any("end-user-keys/{}" in route for route in routes)
    assert any("users/{}" in route for route in routes)


@pytest.mark.parametrize("segment", HOSTILE_SEGMENTS)
def test_hostile_path_parameters_never_answer_500(client, world, segment):
    client.raise_request_exception = False  # a crash is counted as the 500 a real client would see
    failures = []
    for route in api_routes():
        path = "/" + route.replace("{}", segment)
        for method in ("get", "post", "patch", "delete"):
            auth = {"HTTP_AUTHORIZATION": f"Bearer {world['token']}"}
            if method == "get":
                answer = client.get(path, **auth)
            else:
                answer = getattr(client, method)(path, data="{}", content_type="application/json", **auth)
            if answer.status_code >= 500 or not answer["Content-Type"].startswith("application/json"):
                failures.append((method.upper(), path[:80], answer.status_code))
    assert not failures, failures


def test_a_nul_in_an_end_user_token_kid_is_a_401(client, world):
    import jwt

    token = jwt.encode({"sub": "x", "exp": 9999999999}, "k" * 40, algorithm="HS256", headers={"kid": "euk_\x00x"})
    answer = client.get("/api/v1/codes/FUZZ-1/validate/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 401


def admin_changelists():
    yield from admin.site._registry.items()


def changelist_params(model, model_admin) -> list[str]:
    """Per field a value of the wrong kind and one too large; per date field the calendar's edges; per list filter
    and changelist parameter the same; NUL bytes in a key and a value."""
    from django.db import models

    params = ["q=x%00", "x%00=1", "q=%FF", "o=999", "o=-", "p=99999999999", "p=abc", "e=1"]
    for field in model._meta.get_fields():
        if not getattr(field, "concrete", False) or field.many_to_many:
            continue
        name = f"{field.name}__id__exact" if field.is_relation else field.name
        params += [f"{name}=abc", f"{name}=99999999999999999999"]
        if isinstance(field, (models.DateField, models.DateTimeField)):
            params += [
                f"{field.name}__year=9999",
                f"{field.name}__gte=0001-01-01",
                f"{field.name}__lt=9999-12-31",
                f"{field.name}__year=9999&{field.name}__month=12&{field.name}__day=31",
            ]
    hierarchy = model_admin.date_hierarchy
    if hierarchy:
        params += [
            f"{hierarchy}__year=9999&{hierarchy}__month=12",
            f"{hierarchy}__year=1&{hierarchy}__month=1&{hierarchy}__day=1",
            f"{hierarchy}__year=2026&{hierarchy}__month=13",
        ]
    for list_filter in model_admin.list_filter:
        name = getattr(list_filter, "parameter_name", None)
        if name:
            params += [f"{name}=abc", f"{name}=9999", f"{name}=x%00"]
    return params


@pytest.mark.parametrize("role", ["superuser", Role.ADMIN])
def test_hostile_admin_filters_never_answer_500(client, world, tenant, role, django_user_model):
    client.raise_request_exception = False
    if role == "superuser":
        client.force_login(django_user_model.objects.create_superuser("root-fuzz", "root@example.com", "Pass-word-1x"))
    else:
        logged_in(client, tenant, role)
    failures = []
    for model, model_admin in admin_changelists():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for query in changelist_params(model, model_admin):
            answer = client.get(f"{url}?{query}")
            if answer.status_code >= 500:
                failures.append((url, query, answer.status_code))
    export = reverse("admin:redemptions_redemption_export")
    for query in changelist_params(*next((m, a) for m, a in admin_changelists() if m._meta.model_name == "redemption")):
        answer = client.get(f"{export}?{query}")
        if answer.status_code >= 500:
            failures.append((export, query, answer.status_code))
    assert not failures, failures[:40]


# --- The five reported cases, one by one -----------------------------------------------------------------------


def test_the_reported_cases_answer_4xx(client, world, tenant):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world['token']}"}
    assert client.delete("/api/v1/end-user-keys/%00x/", **auth).status_code == 400
    logged_in(client, tenant, Role.ADMIN)
    changelist = reverse("admin:redemptions_redemption_changelist")
    assert client.get(f"{changelist}?redeemed_at__year=9999").status_code in (200, 302)
    assert client.get(reverse("admin:redemptions_redemption_export") + "?redeemed_at__year=9999").status_code == 302
    assert client.get(f"{changelist}?user_id=%00").status_code == 400


@pytest.mark.parametrize("product_ids", ["sku-1, a\x00b", "sku-1, " + "x" * 5000, "," + "[" * 5000 + "]" * 5000])
def test_book_product_ids_with_a_nul_or_an_over_long_id_are_a_form_error(client, world, tenant, product_ids):
    logged_in(client, tenant, Role.ADMIN)
    book = world["book"]
    data = {
        "name": book.name,
        "description": "",
        "status": book.status,
        "discount_type": book.discount_type,
        "discount_value": str(book.discount_value),
        "currency": book.currency,
        "product_ids": product_ids,
        "uses_per_code": "1",
        "max_codes_per_user": "1",
        "max_redemptions_per_user": "1",
        "requires_assignment": "on",
        "lock_ttl_seconds": "300",
    }
    answer = client.post(reverse("admin:books_couponbook_change", args=[book.pk]), data)
    assert answer.status_code == 200 and "errorlist" in answer.content.decode()
    book.refresh_from_db()
    assert book.product_ids == []


def test_api_product_ids_with_a_nul_are_a_400(client, world):
    answer = client.post(
        "/api/v1/books/",
        {"name": "N", "product_ids": ["a\x00b"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world['token']}",
    )
    assert answer.status_code == 400
