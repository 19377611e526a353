"""Operations that migrations share."""

from django.db import migrations, models


def foreign_key_index_drop(*, app_label: str, model_name: str, name: str, field: models.ForeignKey, index: str):
    """Turn a foreign key to db_index=False by dropping only its index, concurrently (in a migration whose
    atomic is False).

    Django's AlterField drops and re-adds the foreign key with its index, and re-adding one checks every row of
    the table while holding its writes: on the tables every redeem writes, the checkout would stop for as long as
    that runs. `index` is the index's name in the database (the one Django generated)."""
    table = f"{app_label}_{model_name}"
    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AlterField(model_name=model_name, name=name, field=field)],
        database_operations=[
            migrations.RunSQL(
                f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"',
                reverse_sql=f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}" ON "{table}" ("{name}_id")',
            )
        ],
    )
