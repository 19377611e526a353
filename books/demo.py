"""The demo data that `make run` loads once: a tenant with staff users, an API client, and five coupon books in use
(one with campaign limits), with orders in EUR and in USD over the last 30 days and a few refunds.

Everything goes through the services (so the events, counters and reservations are what real use would leave);
only the redemptions' times are then moved back over the last DEMO_DAYS days (with their `redeemed` events), so
the charts show a month of use rather than one bar. It runs in one transaction: the demo is either loaded whole or not at all. Once the demo tenant exists, demo_seed changes
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

from backoffice.money import money_text
from books.services.codes import code_redeem, redemption_reverse
from core.actors import Actor
from redemptions.models import Redemption
from redemptions.selectors import discount_by_currency
from tenants.models import ApiClient, Role, Tenant
from tenants.services import api_client_create, staff_user_create, tenant_create
from webhooks.models import EVENT_TYPES
from webhooks.services import webhook_endpoint_create, webhook_endpoint_update

from .models import Code, CouponBook, Event, Reservation
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
WELCOME_ABOUT = "10% off the first order of a new customer; one code each."
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
SHARED_VALID_DAYS = 90
US_BOOK = "US launch: $15 off"
US_CODES = 60
US_PATTERN = "USA-######"
US_REDEEMED = 10  # usa-buyer-01 .. 10, in USD
US_REVERSED = 2
US_ABOUT = "15 USD off the first order in the US shop."
MEMBERS_BOOK = "Black Friday 20% for loyalty programme members, EUR and USD shops"  # a long name, for the charts
MEMBERS_CODE = "MEMBERS20"
MEMBERS_REDEEMED = 18  # alternately in the EUR and the USD shop: a percent book takes the order's currency
LIMITED_BOOK = "First 100 customers: 15% off, at most 20 EUR"  # the campaign limits, on the book page
LIMITED_CODES = 150
LIMITED_PATTERN = "FIRST-******"
LIMITED_MAX_REDEMPTIONS = 100
LIMITED_BUDGET = Decimal("800")  # EUR: 100 orders at the 20 EUR cap would need 2,000
LIMITED_REDEEMED = 14  # first-001 .. 014, orders of 45 EUR and up
LIMITED_LOCKED = 3  # first-015 .. 017: checkouts in progress, which hold a use and 20 EUR of the budget each
LIMITED_ABOUT = "15% off orders of 40 EUR or more, at most 20 EUR each; the first 100 customers, 800 EUR in all."
# A promo code anyone may use, as often as its uses allow: no assignment, no limit of codes per customer.
ANYONE_MAY_USE = {"requires_assignment": False, "max_codes_per_user": None}
DEMO_DAYS = 30
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

    admin = Actor.staff(staff["admin"])
    _welcome_book_load(tenant=tenant, marketing=marketing, checkout=checkout, admin=admin)
    _shared_book_load(tenant=tenant, marketing=marketing, checkout=checkout)
    _us_book_load(tenant=tenant, marketing=marketing, checkout=checkout, admin=admin)
    _members_book_load(tenant=tenant, marketing=marketing, checkout=checkout, admin=admin)
    _limited_book_load(tenant=tenant, marketing=marketing, checkout=checkout, admin=admin)
    _redemptions_spread(tenant=tenant)
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


def _active_book(*, tenant: Tenant, name: str, discount: str, **settings) -> CouponBook:
    """An active book whose discount is written as a marketer says it: "10%" (percent) or "5 EUR" (fixed, in EUR)."""
    value, _, currency = discount.partition(" ")
    if value.endswith("%"):
        offer = {"discount_type": CouponBook.DiscountType.PERCENT, "discount_value": Decimal(value.removesuffix("%"))}
    else:
        offer = {"discount_type": CouponBook.DiscountType.FIXED, "discount_value": Decimal(value), "currency": currency}
    return book_create(tenant=tenant, name=name, status=CouponBook.Status.ACTIVE, **offer, **settings)


def _order(ref: str, amount: Decimal, currency: str) -> dict:
    """An order as the demo's checkout sends it with a redeem: its reference, its amount and the shop's currency."""
    return {"order_ref": ref, "amount": amount, "currency": currency}


def _welcome_book_load(*, tenant: Tenant, marketing: Actor, checkout: Actor, admin: Actor) -> None:
    """One code per new customer: generated codes in every state (free, assigned, locked, redeemed, reversed, voided)."""
    # A book's defaults are this book's rules: one code per customer, one use per code and per customer.
    book = _active_book(tenant=tenant, name=WELCOME_BOOK, discount="10%", description=WELCOME_ABOUT)
    codes_generate(book=book, count=WELCOME_CODES, pattern=WELCOME_PATTERN, actor=marketing)

    customers = [f"customer-{n:03d}" for n in range(1, WELCOME_ASSIGNED + 1)]
    held = {user: code_assign_random(tenant=tenant, book_id=book.pk, user_id=user, actor=checkout).code for user in customers}

    redemptions = []
    redeemers = customers[: WELCOME_REDEEMED_WITH_LOCK + WELCOME_REDEEMED_DIRECT]
    for n, user in enumerate(redeemers, start=1):
        token = None
        if n <= WELCOME_REDEEMED_WITH_LOCK:
            token = code_reserve(tenant=tenant, code=held[user], user_id=user, actor=checkout).token
        order = _order(f"ORDER-{1000 + n}", Decimal("19.90") + n * 7, "EUR")
        redemptions.append(code_redeem(tenant=tenant, code=held[user], user_id=user, actor=checkout, token=token, **order))
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
    book = _active_book(
        tenant=tenant,
        name=SHARED_BOOK,
        discount="5 EUR",
        description=f"5 EUR off with the shared code {SHARED_CODE}, once per customer, {SHARED_USES:,} uses in all.",
        uses_per_code=SHARED_USES,
        valid_until=timezone.now() + timedelta(days=SHARED_VALID_DAYS),
        **ANYONE_MAY_USE,
    )
    codes_upload(book=book, codes=[SHARED_CODE], actor=marketing)
    for n in range(1, SHARED_REDEEMED + 1):
        order = _order(f"ORDER-{2000 + n}", Decimal("30.00") + n, "EUR")
        # Codes match case-insensitively, as a customer would type them.
        code_redeem(tenant=tenant, code=SHARED_CODE.lower(), user_id=f"shopper-{n:03d}", actor=checkout, **order)


def _us_book_load(*, tenant: Tenant, marketing: Actor, checkout: Actor, admin: Actor) -> None:
    """A fixed discount in US dollars: its redemptions are in USD (an order in another currency would be refused)."""
    book = _active_book(tenant=tenant, name=US_BOOK, discount="15 USD", description=US_ABOUT)
    codes_generate(book=book, count=US_CODES, pattern=US_PATTERN, actor=marketing)
    redemptions = []
    for n in range(1, US_REDEEMED + 1):
        user = f"usa-buyer-{n:02d}"
        code = code_assign_random(tenant=tenant, book_id=book.pk, user_id=user, actor=checkout).code
        order = _order(f"US-{3000 + n}", Decimal("45.00") + n * 4, "USD")
        redemptions.append(code_redeem(tenant=tenant, code=code, user_id=user, actor=checkout, **order))
    for redemption in redemptions[:US_REVERSED]:
        redemption_reverse(tenant=tenant, redemption_id=redemption.pk, actor=admin, reason="Order cancelled")


def _members_book_load(*, tenant: Tenant, marketing: Actor, checkout: Actor, admin: Actor) -> None:
    """A percent discount with no currency of its own, used in the EUR and the USD shop: its totals are per currency."""
    about = f"20% off with the shared code {MEMBERS_CODE}, once per member, in either shop."
    book = _active_book(tenant=tenant, name=MEMBERS_BOOK, discount="20%", description=about, uses_per_code=None, **ANYONE_MAY_USE)
    codes_upload(book=book, codes=[MEMBERS_CODE], actor=marketing)
    last = None
    for n in range(1, MEMBERS_REDEEMED + 1):
        order = _order(f"BF-{4000 + n}", Decimal("60.00") + n * 3, "EUR" if n % 2 else "USD")
        last = code_redeem(tenant=tenant, code=MEMBERS_CODE, user_id=f"member-{n:03d}", actor=checkout, **order)
    redemption_reverse(tenant=tenant, redemption_id=last.pk, actor=admin, reason="Returned")


def _limited_book_load(*, tenant: Tenant, marketing: Actor, checkout: Actor, admin: Actor) -> None:
    """A campaign with every limit: the first 100 customers, a total budget, a minimum order and a cap per order;
    the book page shows how much of them is used, locks included."""
    book = _active_book(
        tenant=tenant,
        name=LIMITED_BOOK,
        discount="15%",
        description=LIMITED_ABOUT,
        currency="EUR",  # the budget's
        max_redemptions=LIMITED_MAX_REDEMPTIONS,
        budget_amount=LIMITED_BUDGET,
        min_order_amount=Decimal("40"),
        max_discount_amount=Decimal("20"),
    )
    codes_generate(book=book, count=LIMITED_CODES, pattern=LIMITED_PATTERN, actor=marketing)
    redemptions = []
    for n in range(1, LIMITED_REDEEMED + LIMITED_LOCKED + 1):
        user = f"first-{n:03d}"
        code = code_assign_random(tenant=tenant, book_id=book.pk, user_id=user, actor=checkout).code
        if n > LIMITED_REDEEMED:
            code_reserve(tenant=tenant, code=code, user_id=user, actor=checkout, ttl_seconds=3600)
            continue
        order = _order(f"FIRST-{5000 + n}", Decimal("45.00") + n * 11, "EUR")  # from 15% of 56 EUR to the 20 EUR cap
        redemptions.append(code_redeem(tenant=tenant, code=code, user_id=user, actor=checkout, **order))
    redemption_reverse(tenant=tenant, redemption_id=redemptions[0].pk, actor=admin, reason="Order returned")


def _redemptions_spread(*, tenant: Tenant) -> None:
    """Move the demo's redemptions (and their `redeemed` events) back over the last DEMO_DAYS days, a few a day at
    different hours, so the charts show a month of use. Reversals stay at their own (later) time."""
    now = timezone.now()
    redemptions = list(Redemption.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True))
    for index, pk in enumerate(redemptions):
        # Spread evenly from DEMO_DAYS - 1 days ago to today, the hours varied; never in the future.
        days_ago = (DEMO_DAYS - 1) * (len(redemptions) - 1 - index) // max(len(redemptions) - 1, 1)
        when = now - timedelta(days=days_ago, hours=(index * 5) % 11, minutes=(index * 17) % 60)
        Redemption.objects.filter(pk=pk).update(redeemed_at=when)
        Event.objects.filter(tenant_id=tenant.pk, kind=Event.Kind.REDEEMED, data__redemption=pk).update(created_at=when)


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
        given = ", ".join(money_text(total, currency) for currency, total in discount_by_currency(book.redemptions).items())
        lines.append(
            f"{book.name!r} ({book.status}): {sum(states.values())} code(s): {codes or 'none'}; "
            f"{locked} active lock(s); {redeemed['all']} redemption(s), {redeemed['reversed']} reversed; "
            f"discount given: {given or 'none'}"
        )
    return lines
