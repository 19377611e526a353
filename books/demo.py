"""The demo data that `make run` loads once: a tenant with staff users, an API client, and two coupon books in use.

Everything goes through the services (so the events, counters and reservations are what real use would leave),
in one transaction: the demo is either loaded whole or not at all. Once the demo tenant exists, demo_seed changes
nothing and only reports what is there. The passwords are fixed and printed: this is local demo data, never to be
loaded on a server that faces the internet (the command refuses to run without DEBUG unless told otherwise).
"""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from books.services.codes import code_redeem, redemption_reverse
from core.actors import Actor
from redemptions.models import Redemption
from tenants.models import ApiClient, Role, Tenant
from tenants.services import api_client_create, staff_user_create, tenant_create
from webhooks.models import EVENT_TYPES
from webhooks.services import webhook_endpoint_create, webhook_endpoint_update

from .models import Code, CouponBook, Reservation
from .services.books import book_create
from .services.code_creation import codes_generate, codes_upload
from .services.codes import code_assign_random, code_reserve, code_void

TENANT_SLUG = "demo"
TENANT_NAME = "Demo Shop"
TENANT_TIMEZONE = "Europe/Berlin"
API_CLIENT_NAME = "Demo checkout"
SUPERUSER = ("root", "coupons-demo-root")
# username -> (role, password); each user is created in the group of its role.
STAFF_USERS = {
    "admin": (Role.ADMIN, "coupons-demo-admin"),
    "marketing": (Role.MARKETING, "coupons-demo-marketing"),
    "accountant": (Role.ACCOUNTANT, "coupons-demo-accountant"),
}

WELCOME_BOOK = "Welcome 10%"
WELCOME_CODES = 200
WELCOME_PATTERN = "WELCOME-******"  # 32^6 ≈ 1.07e9 codes: no guessing warning for 200 codes
WELCOME_ASSIGNED = 40  # customer-001 .. customer-040 hold one code each
WELCOME_REDEEMED_WITH_LOCK = 5  # customers 1-5: lock, then redeem with the token (the checkout flow)
WELCOME_REDEEMED_DIRECT = 10  # customers 6-15: redeem without a token
WELCOME_LOCKED = 8  # customers 16-23: checkout in progress for an hour
WELCOME_LOCKED_SHORT = 2  # customers 24-25: a 10-second hold, which the beat task soon marks expired
SHARED_BOOK = "Summer sale"
SHARED_CODE = "SUMMER24"
SHARED_USES = 1000
SHARED_REDEEMED = 12
DEMO_WEBHOOK = "Demo receiver served by this site (make run): every event, verified as a real receiver would."


@dataclass
class DemoLogin:
    username: str
    password: str
    role: str  # what the login may do, for people


@dataclass
class DemoSeed:
    """What demo_seed did (created) or found (already loaded), and how to log in."""

    created: bool
    tenant: Tenant
    logins: list[DemoLogin]
    client_id: str | None
    # Only when this run created the client: its secret is stored hashed and can never be shown again.
    client_secret: str | None
    summary: list[str] = field(default_factory=list)


def _logins() -> list[DemoLogin]:
    return [DemoLogin(SUPERUSER[0], SUPERUSER[1], "superuser: every tenant")] + [
        DemoLogin(username, password, f"{role} of tenant {TENANT_SLUG!r}") for username, (role, password) in STAFF_USERS.items()
    ]


def demo_seed(*, base_url: str = "http://127.0.0.1:8000") -> DemoSeed:
    """Load the demo data unless the demo tenant exists already; either way, say what is there.

    `base_url` is where the site will be served: the demo's webhook endpoint is the site's own demo receiver.
    """
    existing = Tenant.objects.filter(slug=TENANT_SLUG).first()
    if existing is None:
        try:
            return _demo_create(base_url=base_url)
        except IntegrityError:
            # Another run created it between our check and our insert (two `make run` at once).
            existing = Tenant.objects.filter(slug=TENANT_SLUG).first()
            if existing is None:
                raise
    client = ApiClient.objects.filter(tenant=existing, name=API_CLIENT_NAME, is_active=True).order_by("created_at").first()
    return DemoSeed(
        created=False,
        tenant=existing,
        logins=_logins(),
        client_id=client.client_id if client else None,
        client_secret=None,
        summary=_summary(existing),
    )


@transaction.atomic
def _demo_create(*, base_url: str) -> DemoSeed:
    tenant = tenant_create(slug=TENANT_SLUG, name=TENANT_NAME, timezone_name=TENANT_TIMEZONE)
    _demo_webhook_register(tenant=tenant, base_url=base_url)
    get_user_model().objects.create_superuser(username=SUPERUSER[0], password=SUPERUSER[1], email="")
    staff = {
        username: staff_user_create(tenant=tenant, username=username, password=password, role=role)
        for username, (role, password) in STAFF_USERS.items()
    }
    issued = api_client_create(tenant=tenant, name=API_CLIENT_NAME)
    marketing = Actor.staff(staff["marketing"])
    checkout = Actor.api_client(issued.client)

    _welcome_book_load(tenant=tenant, marketing=marketing, checkout=checkout, admin=Actor.staff(staff["admin"]))
    _shared_book_load(tenant=tenant, marketing=marketing, checkout=checkout)
    return DemoSeed(
        created=True,
        tenant=tenant,
        logins=_logins(),
        client_id=issued.client.client_id,
        client_secret=issued.secret,
        summary=_summary(tenant),
    )


def _demo_webhook_register(*, tenant: Tenant, base_url: str) -> None:
    """An endpoint served by the site itself (webhooks/demo.py), registered first so every demo event is delivered to
    it once the worker runs: the delivery log in the admin fills up. Only where local URLs are allowed."""
    if not (settings.COUPONS["WEBHOOKS_DEMO_RECEIVER"] and settings.COUPONS["WEBHOOKS_ALLOW_INSECURE"]):
        return
    base_url = base_url.rstrip("/")
    endpoint = webhook_endpoint_create(
        tenant=tenant, url=f"{base_url}/webhooks/demo-receiver/0/", events=list(EVENT_TYPES), description=DEMO_WEBHOOK
    )
    webhook_endpoint_update(endpoint=endpoint, url=f"{base_url}/webhooks/demo-receiver/{endpoint.pk}/")


def _welcome_book_load(*, tenant: Tenant, marketing: Actor, checkout: Actor, admin: Actor) -> None:
    """One code per new customer: generated codes in every state (free, assigned, locked, redeemed, reversed, voided)."""
    book = book_create(
        tenant=tenant,
        name=WELCOME_BOOK,
        description="10% off the first order of a new customer; one code each.",
        status=CouponBook.Status.ACTIVE,
        discount_type=CouponBook.DiscountType.PERCENT,
        discount_value=Decimal("10"),
        max_codes_per_user=1,
        max_redemptions_per_user=1,
        uses_per_code=1,
    )
    codes_generate(book=book, count=WELCOME_CODES, pattern=WELCOME_PATTERN, actor=marketing)

    customers = [f"customer-{n:03d}" for n in range(1, WELCOME_ASSIGNED + 1)]
    held = {user: code_assign_random(tenant=tenant, book_id=book.pk, user_id=user, actor=checkout).code for user in customers}

    redemptions = []
    redeemers = customers[: WELCOME_REDEEMED_WITH_LOCK + WELCOME_REDEEMED_DIRECT]
    for n, user in enumerate(redeemers, start=1):
        token = None
        if n <= WELCOME_REDEEMED_WITH_LOCK:
            token = code_reserve(tenant=tenant, code=held[user], user_id=user, actor=checkout).token
        redemptions.append(
            code_redeem(
                tenant=tenant,
                code=held[user],
                user_id=user,
                actor=checkout,
                token=token,
                order_ref=f"ORDER-{1000 + n}",
                amount=Decimal("19.90") + Decimal(n * 7),
            )
        )
    # A refund: the use returns to the code, the redemption row stays with its reversal.
    redemption_reverse(tenant=tenant, redemption_id=redemptions[2].pk, actor=admin, reason="Order returned")

    lockers = customers[len(redeemers) : len(redeemers) + WELCOME_LOCKED + WELCOME_LOCKED_SHORT]
    for n, user in enumerate(lockers):
        ttl = 3600 if n < WELCOME_LOCKED else 10
        code_reserve(tenant=tenant, code=held[user], user_id=user, actor=checkout, ttl_seconds=ttl)

    leaked = Code.objects.filter(book=book, state=Code.State.FREE).order_by("shuffle").first()
    code_void(tenant=tenant, code=leaked.code, actor=marketing, reason="Posted on a deal forum")


def _shared_book_load(*, tenant: Tenant, marketing: Actor, checkout: Actor) -> None:
    """A promo code anyone may use (no assignment), like a code printed on a poster, used a few times."""
    book = book_create(
        tenant=tenant,
        name=SHARED_BOOK,
        description=f"5 EUR off with the shared code {SHARED_CODE}, once per customer, {SHARED_USES:,} uses in all.",
        status=CouponBook.Status.ACTIVE,
        discount_type=CouponBook.DiscountType.FIXED,
        discount_value=Decimal("5"),
        currency="EUR",
        requires_assignment=False,
        max_codes_per_user=None,
        max_redemptions_per_user=1,
        uses_per_code=SHARED_USES,
        valid_until=timezone.now() + timedelta(days=90),
    )
    codes_upload(book=book, codes=[SHARED_CODE], actor=marketing)
    for n in range(1, SHARED_REDEEMED + 1):
        code_redeem(
            tenant=tenant,
            code=SHARED_CODE.lower(),  # codes match case-insensitively, as a customer would type them
            user_id=f"shopper-{n:03d}",
            actor=checkout,
            order_ref=f"ORDER-{2000 + n}",
            amount=Decimal("30.00") + Decimal(n),
        )


def _summary(tenant: Tenant) -> list[str]:
    """One line per book of the tenant: its codes by state, its reservations and redemptions."""
    now = timezone.now()
    lines = []
    for book in CouponBook.objects.filter(tenant=tenant).order_by("created_at", "pk"):
        states = dict(Code.objects.filter(book=book).values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
        locked = Reservation.objects.filter(book=book, status=Reservation.Status.ACTIVE, expires_at__gt=now).count()
        redeemed = Redemption.objects.filter(book=book).aggregate(
            all=Count("pk"), reversed=Count("pk", filter=Q(reversed_at__isnull=False))
        )
        codes = ", ".join(f"{states[state]} {state}" for state in Code.State.values if states.get(state))
        lines.append(
            f"{book.name!r} ({book.status}): {sum(states.values())} code(s): {codes or 'none'}; "
            f"{locked} active lock(s); {redeemed['all']} redemption(s), {redeemed['reversed']} reversed"
        )
    return lines
