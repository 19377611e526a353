"""The book's counter row becomes BOOK_ALLOWANCE_SHARDS shards (BookAllowance) and a view that sums them
(BookCounter), so the uses of a limited book no longer queue on one row (books/services/book_limits.py).

Each counter's standing redemptions and discount go to its book's shard 0. Every shard starts with no allowance
and a recount time far in the future (no hold counted: the old counter held none): the book's first use finds no room, recounts the book
exactly and shares out what is left.
"""

import django.db.models.deletion
from decimal import Decimal
from django.db import migrations, models

SHARDS = 16  # rules.BOOK_ALLOWANCE_SHARDS when this migration was written

FORWARD = f"""
    INSERT INTO books_bookallowance (book_id, shard, redemptions, discount, uses_left, budget_left, hold_value, recounted_at)
    SELECT c.book_id, s.n, CASE WHEN s.n = 0 THEN c.redemptions ELSE 0 END, CASE WHEN s.n = 0 THEN c.discount ELSE 0 END,
           0, 0, 0, '9999-01-01 00:00:00+00'
    FROM books_bookcounter c CROSS JOIN generate_series(0, {SHARDS - 1}) AS s(n);
    DROP TABLE books_bookcounter;
    CREATE VIEW books_bookcounter AS
        SELECT book_id, SUM(redemptions)::integer AS redemptions, SUM(discount) AS discount
        FROM books_bookallowance GROUP BY book_id;
"""

BACKWARD = """
    DROP VIEW books_bookcounter;
    CREATE TABLE books_bookcounter (
        book_id bigint PRIMARY KEY REFERENCES books_couponbook (id) DEFERRABLE INITIALLY DEFERRED,
        redemptions integer NOT NULL CHECK (redemptions >= 0),
        discount numeric(16, 2) NOT NULL
    );
    INSERT INTO books_bookcounter SELECT book_id, SUM(redemptions), SUM(discount) FROM books_bookallowance GROUP BY book_id;
    SET CONSTRAINTS ALL IMMEDIATE;  -- checked now: the CHECK added next alters the table
"""


class Migration(migrations.Migration):
    dependencies = [
        ("books", "0004_code_held"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="bookcounter", name="bookcounter_discount_non_negative"),
        migrations.CreateModel(
            name="BookAllowance",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("shard", models.PositiveSmallIntegerField()),
                ("redemptions", models.IntegerField(default=0)),
                ("discount", models.DecimalField(decimal_places=2, default=Decimal("0"), max_digits=16)),
                ("uses_left", models.IntegerField(null=True)),
                ("budget_left", models.DecimalField(decimal_places=2, max_digits=16, null=True)),
                ("hold_value", models.DecimalField(decimal_places=2, default=Decimal("0"), max_digits=12)),
                ("recounted_at", models.DateTimeField()),
                (
                    "book",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="books.couponbook"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("book", "shard"), name="bookallowance_unique"),
                    models.CheckConstraint(condition=models.Q(("uses_left__gte", 0)), name="bookallowance_uses_non_negative"),
                    models.CheckConstraint(
                        condition=models.Q(("budget_left__gte", 0)), name="bookallowance_budget_non_negative"
                    ),
                ],
            },
        ),
        migrations.RunSQL(FORWARD, reverse_sql=BACKWARD),
        migrations.AlterModelOptions(name="bookcounter", options={"managed": False}),
        migrations.AlterField(
            model_name="bookcounter",
            name="book",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.DO_NOTHING,
                primary_key=True,
                related_name="counter",
                serialize=False,
                to="books.couponbook",
            ),
        ),
        migrations.AlterField(model_name="bookcounter", name="redemptions", field=models.IntegerField()),
        migrations.AlterField(
            model_name="bookcounter", name="discount", field=models.DecimalField(decimal_places=2, max_digits=16)
        ),
    ]
