"""The data migration that fills the currency of redemptions stored without one (0002), called as migrate calls it."""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from redemptions.models import Redemption
from tests.factories import CouponBookFactory
from tests.helpers import redemption_make

fill = importlib.import_module("redemptions.migrations.0002_redemption_currency_from_book")

pytestmark = pytest.mark.django_db


def _run(batch_ids: int) -> tuple[int, list[str]]:
    with connection.schema_editor() as editor, CaptureQueriesContext(connection) as captured:
        filled = fill.currency_fill(apps, editor, batch_ids=batch_ids)
    return filled, [query["sql"] for query in captured if query["sql"].startswith("UPDATE")]


def test_rows_without_a_currency_get_their_books_in_batches_and_nothing_else_changes(tenant, other_tenant):
    # Given: rows stored before redemptions had a currency
    later_priced = CouponBookFactory(tenant=tenant, currency="")  # a percent book that got a currency later
    unpriced = CouponBookFactory(tenant=tenant, currency="")  # a percent book that still has none
    fixed = CouponBookFactory(tenant=other_tenant, discount_type="fixed", discount_value="5", currency="USD")
    to_fill = [redemption_make(later_priced, user_id=f"a{i}", currency="") for i in range(5)]
    sent = redemption_make(later_priced, user_id="sent", currency="GBP")  # a currency an integrator sent stays
    unknown = [redemption_make(unpriced, user_id=f"u{i}", currency="") for i in range(3)]
    stored = redemption_make(fixed, user_id="f", currency="USD")
    type(later_priced).objects.filter(pk=later_priced.pk).update(currency="EUR")
    before = {r.pk: (r.discount, r.amount, r.redeemed_at) for r in Redemption.objects.all()}
    ids = sorted(before)

    # When: batches of 3 ids
    filled, updates = _run(batch_ids=3)

    # Then: every range of ids was its own statement, and only the known currencies were filled
    assert len(updates) == -(-(ids[-1] - ids[0] + 1) // 3)
    assert filled == 5
    currencies = dict(Redemption.objects.values_list("pk", "currency"))
    assert {currencies[r.pk] for r in to_fill} == {"EUR"}
    assert (currencies[sent.pk], currencies[stored.pk]) == ("GBP", "USD")
    assert {currencies[r.pk] for r in unknown} == {""}
    assert {r.pk: (r.discount, r.amount, r.redeemed_at) for r in Redemption.objects.all()} == before
    assert Redemption.objects.get(pk=to_fill[0].pk).discount == Decimal("5.00")

    # And a second run changes nothing.
    assert _run(batch_ids=3)[0] == 0


def test_an_empty_log_needs_no_statement(db):
    assert _run(batch_ids=3) == (0, [])


def test_the_migration_is_reversible():
    from django.db.migrations.loader import MigrationLoader

    migration = MigrationLoader(connection).get_migration("redemptions", "0002_redemption_currency_from_book")
    assert all(operation.reversible for operation in migration.operations)
    assert migration.atomic is False  # each batch commits on its own
