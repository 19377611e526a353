"""Code.held: a counter of the code's active reservations, filled from them (books/models.py says why)."""

from django.db import migrations, models

HELD_FILL = """
    UPDATE books_code c SET held = r.n
    FROM (SELECT code_id, count(*) AS n FROM books_reservation WHERE status = 'active' GROUP BY code_id) r
    WHERE c.id = r.code_id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("books", "0003_book_campaign_limits"),
    ]

    operations = [
        migrations.AddField(model_name="code", name="held", field=models.PositiveIntegerField(default=0, db_default=0)),
        migrations.RunSQL(HELD_FILL, reverse_sql=migrations.RunSQL.noop),
    ]
