"""factory_boy factories for the whole project (tenants, books, codes, reservations, redemptions)."""

import secrets
from datetime import timedelta

import factory
import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from books.models import Code, CouponBook, Reservation
from books.services.book_limits import book_counter_start
from core.exceptions import ApplicationError
from redemptions.models import Redemption
from tenants.models import Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Shop {n}")
    slug = factory.Sequence(lambda n: f"shop-{n}")
    timezone = "Europe/Berlin"


class CouponBookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CouponBook
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    status = CouponBook.Status.ACTIVE
    discount_type = CouponBook.DiscountType.PERCENT
    discount_value = 10

    @factory.post_generation
    def counter(book, create, extracted, **kwargs):
        """A book built with a book-wide limit gets its shards, as book_create gives it them."""
        if create and book.has_book_limits:
            with transaction.atomic():
                book_counter_start(book=book)


class CodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Code

    book = factory.SubFactory(CouponBookFactory)
    tenant = factory.SelfAttribute("book.tenant")
    code = factory.Sequence(lambda n: f"CODE{n:06d}")
    max_uses = factory.LazyAttribute(lambda o: o.book.uses_per_code)
    book_limited = factory.LazyAttribute(lambda o: o.book.has_book_limits)
    shuffle = factory.LazyFunction(lambda: secrets.randbits(63))


class ReservationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reservation

    code = factory.SubFactory(CodeFactory)
    book = factory.SelfAttribute("code.book")
    tenant = factory.SelfAttribute("code.tenant")
    user_id = "user-1"
    token = factory.LazyFunction(lambda: secrets.token_urlsafe(24))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=5))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # As code_reserve does: an active hold counts in its code's `held`.
        reservation = super()._create(model_class, *args, **kwargs)
        if reservation.status == Reservation.Status.ACTIVE:
            Code.objects.filter(pk=reservation.code_id).update(held=F("held") + 1)
        return reservation


class RedemptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Redemption

    code = factory.SubFactory(CodeFactory)
    book = factory.SelfAttribute("code.book")
    tenant = factory.SelfAttribute("code.tenant")
    user_id = "user-1"
    redeemed_at = factory.LazyFunction(timezone.now)
    actor_type = "system"
    actor_id = "test"


# --- Added for the service tests ---------------------------------------------------------------------------


class SharedBookFactory(CouponBookFactory):
    """A book of shared promo codes (like SUMMER24): no assignment needed, unlimited uses and redemptions."""

    requires_assignment = False
    uses_per_code = None
    max_redemptions_per_user = None
    max_codes_per_user = None


class AssignedCodeFactory(CodeFactory):
    """A code already assigned to `user_id` (default "user-1")."""

    state = Code.State.ASSIGNED
    user_id = "user-1"
    assigned_at = factory.LazyFunction(timezone.now)


def rows_snapshot() -> dict[str, list[dict]]:
    """Every row of the service's tables, field by field: equal before and after a refused call means it changed nothing."""
    from books.models import BookUser, Event
    from core.models import Job

    models = (Tenant, CouponBook, Code, BookUser, Reservation, Event, Redemption, Job)
    return {model._meta.label: list(model.objects.order_by("pk").values()) for model in models}


def refused(error_code: str, call, /, **kwargs) -> ApplicationError:
    """Given a call that must break a rule: it raises `error_code` and leaves every row as it was."""
    before = rows_snapshot()
    with pytest.raises(ApplicationError) as caught:
        call(**kwargs)
    assert caught.value.code == error_code, caught.value
    assert rows_snapshot() == before
    return caught.value
