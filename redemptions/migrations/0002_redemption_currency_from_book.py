"""Fill the currency of redemptions stored without one where it is known: their book's currency.

Before redemptions took the order's currency, a row got its book's currency, and a percent book without one left
it empty. Where such a book has a currency now, that is the only currency its discounts can have been in. Rows
whose book still has none stay empty: their currency is not known, and the totals show them apart.

Batched for millions of rows: one UPDATE per range of BATCH_IDS ids, each committed on its own (the migration is
not atomic), so no statement holds row locks on more than one batch or runs for long; redemptions may go on
while it runs. Run twice, the second run changes nothing.

Reversible: the reverse is a no-op, because the filled value is what the code before this change stored for
such a book today (its currency), and rows written since carry the currency their integrator sent, which must not
be blanked.
"""

from django.db import migrations
from django.db.models import Max, Min

BATCH_IDS = 50_000


def currency_fill(apps, schema_editor, batch_ids: int = BATCH_IDS) -> int:
    """Set currency = the book's currency on rows that have none and whose book has one; returns the rows filled."""
    Redemption = apps.get_model("redemptions", "Redemption")
    CouponBook = apps.get_model("books", "CouponBook")
    # Bounds from the primary key's index (instant); each batch's WHERE finds its rows within its range.
    bounds = Redemption.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return 0
    redemptions, books = Redemption._meta.db_table, CouponBook._meta.db_table
    filled = 0
    with schema_editor.connection.cursor() as cursor:
        for start in range(bounds["low"], bounds["high"] + 1, batch_ids):
            cursor.execute(
                f"""UPDATE {redemptions} AS r SET currency = b.currency FROM {books} AS b
                WHERE r.book_id = b.id AND r.currency = '' AND b.currency <> '' AND r.id >= %s AND r.id < %s""",
                [start, start + batch_ids],
            )
            filled += cursor.rowcount
    return filled


class Migration(migrations.Migration):
    atomic = False  # each batch commits on its own

    dependencies = [
        ("redemptions", "0001_initial"),
        ("books", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(currency_fill, migrations.RunPython.noop, elidable=True),
    ]
