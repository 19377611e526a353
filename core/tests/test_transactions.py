"""core.transactions: a transaction PostgreSQL failed as a deadlock's victim runs again, whole and outermost only."""

import pytest
from django.db import OperationalError, transaction

from core.transactions import ATTEMPTS, deadlock_retried, is_deadlock
from tests.helpers import deadlock


def failing(times: int, error: Exception):
    calls = []

    @deadlock_retried
    def service():
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return service, calls


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_victim_runs_again_and_goes_through():
    service, calls = failing(1, deadlock())
    assert service() == "done"
    assert len(calls) == 2


@pytest.mark.django_db(transaction=True)
def test_it_gives_up_after_its_attempts():
    service, calls = failing(ATTEMPTS, deadlock())
    with pytest.raises(OperationalError):
        service()
    assert len(calls) == ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_any_other_database_error_is_not_retried():
    service, calls = failing(1, OperationalError("server closed the connection"))
    with pytest.raises(OperationalError):
        service()
    assert len(calls) == 1


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_enclosing_one_decides():
    service, calls = failing(1, deadlock())
    with pytest.raises(OperationalError), transaction.atomic():
        service()
    assert len(calls) == 1


def test_only_postgresqls_deadlock_counts():
    assert is_deadlock(deadlock())
    assert not is_deadlock(OperationalError("deadlock detected"))
    assert not is_deadlock(RuntimeError())
