"""The operator commands of the tenants app: create_tenant, create_staff_user, create_api_client."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from core.exceptions import ApplicationError
from tenants.models import ApiClient, StaffMembership, Tenant
from tenants.services import api_client_authenticate
from tests.factories import rows_snapshot

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


class FakeTerminal(io.StringIO):
    """Stands in for stdin at a terminal: the command decides whether to prompt by asking isatty()."""

    def isatty(self) -> bool:
        return True


# --- create_tenant ------------------------------------------------------------------------------------------


def test_create_tenant_stores_it_and_says_so():
    output = run("create_tenant", "acme", "--name", "Acme Ltd", "--timezone", "Europe/Paris")

    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.timezone) == ("Acme Ltd", "Europe/Paris")
    assert "Created tenant 'acme'" in output


def test_create_tenant_defaults_to_utc():
    run("create_tenant", "acme", "--name", "Acme Ltd")

    assert Tenant.objects.get(slug="acme").timezone == "UTC"


@pytest.mark.parametrize(
    "args, message",
    [
        (["Not A Slug", "--name", "Acme"], "slug"),
        (["acme", "--name", "Acme", "--timezone", "Mars/Olympus"], "time zone"),
        (["acme", "--name", "   "], "needs a name"),
        (["acme"], "--name"),
    ],
)
def test_create_tenant_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_tenant", *args)

    assert not Tenant.objects.exists()


def test_create_tenant_refuses_a_taken_slug(tenant):
    with pytest.raises(CommandError, match="exists already"):
        run("create_tenant", tenant.slug, "--name", "Again")

    assert Tenant.objects.filter(slug=tenant.slug).count() == 1


# --- create_staff_user --------------------------------------------------------------------------------------


def test_create_staff_user_takes_the_password_from_the_environment(tenant, monkeypatch):
    monkeypatch.setenv("COUPONS_STAFF_PASSWORD", "a-long-secret-phrase")

    output = run("create_staff_user", tenant.slug, "mia", "--role", "marketing", "--email", "mia@example.com")

    user = get_user_model().objects.get(username="mia")
    assert user.check_password("a-long-secret-phrase")
    assert user.is_staff and not user.is_superuser
    assert user.email == "mia@example.com"
    assert list(user.groups.values_list("name", flat=True)) == ["marketing"]
    membership = StaffMembership.objects.get(user=user)
    assert (membership.tenant, membership.role) == (tenant, "marketing")
    assert "Created marketing user 'mia'" in output
    assert "a-long-secret-phrase" not in output


def test_create_staff_user_prompts_twice_at_a_terminal(tenant, monkeypatch):
    monkeypatch.delenv("COUPONS_STAFF_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", FakeTerminal())
    answers = iter(["typed-at-the-prompt", "typed-at-the-prompt"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))

    run("create_staff_user", tenant.slug, "ada", "--role", "accountant")

    user = get_user_model().objects.get(username="ada")
    assert user.check_password("typed-at-the-prompt")
    assert user.membership.role == "accountant"


def test_create_staff_user_refuses_two_different_passwords(tenant, monkeypatch):
    monkeypatch.delenv("COUPONS_STAFF_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", FakeTerminal())
    answers = iter(["typed-at-the-prompt", "typo-at-the-prompt"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))

    with pytest.raises(CommandError, match="differ"):
        run("create_staff_user", tenant.slug, "ada", "--role", "accountant")

    assert not get_user_model().objects.filter(username="ada").exists()


def test_create_staff_user_without_password_or_terminal_fails(tenant, monkeypatch):
    monkeypatch.delenv("COUPONS_STAFF_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO())

    with pytest.raises(CommandError, match="COUPONS_STAFF_PASSWORD"):
        run("create_staff_user", tenant.slug, "ada", "--role", "admin")

    assert not get_user_model().objects.filter(username="ada").exists()


@pytest.mark.parametrize(
    "args, password, message",
    [
        (["no-such-tenant", "ada", "--role", "admin"], "a-long-secret-phrase", "No tenant"),
        (["{tenant}", "ada", "--role", "owner"], "a-long-secret-phrase", "invalid choice"),
        (["{tenant}", "ada"], "a-long-secret-phrase", "--role"),
        (["{tenant}", "ada", "--role", "admin"], "short", "too short"),
        (["{tenant}", "ada", "--role", "admin"], "password123", "too common"),
    ],
)
def test_create_staff_user_refuses_bad_input(tenant, monkeypatch, args, password, message):
    monkeypatch.setenv("COUPONS_STAFF_PASSWORD", password)

    with pytest.raises(CommandError, match=message):
        run("create_staff_user", *[arg.format(tenant=tenant.slug) for arg in args])

    assert not get_user_model().objects.filter(username="ada").exists()
    assert not StaffMembership.objects.exists()


def test_create_staff_user_refuses_a_taken_username(tenant, monkeypatch):
    monkeypatch.setenv("COUPONS_STAFF_PASSWORD", "a-long-secret-phrase")
    run("create_staff_user", tenant.slug, "ada", "--role", "admin")

    with pytest.raises(CommandError, match="exists already"):
        run("create_staff_user", tenant.slug, "ada", "--role", "marketing")

    assert StaffMembership.objects.get(user__username="ada").role == "admin"


# --- create_api_client --------------------------------------------------------------------------------------


def test_create_api_client_prints_credentials_that_work(tenant):
    output = run("create_api_client", tenant.slug, "Web shop")

    client = ApiClient.objects.get(tenant=tenant)
    assert client.name == "Web shop"
    assert client.client_id in output
    secret = output.split("client_secret:")[1].split()[0]
    assert secret not in client.secret_hash  # stored hashed only
    assert api_client_authenticate(client_id=client.client_id, secret=secret) == client


def test_create_api_client_json_prints_one_object(tenant):
    output = run("create_api_client", tenant.slug, "Checkout", "--json")

    payload = json.loads(output)
    assert set(payload) == {"client_id", "client_secret", "tenant"}
    assert payload["tenant"] == tenant.slug
    client = ApiClient.objects.get(client_id=payload["client_id"])
    assert client.tenant == tenant
    assert api_client_authenticate(client_id=payload["client_id"], secret=payload["client_secret"]) == client


def test_create_api_client_gives_each_client_its_own_credentials(tenant):
    first = json.loads(run("create_api_client", tenant.slug, "One", "--json"))
    second = json.loads(run("create_api_client", tenant.slug, "Two", "--json"))

    assert first["client_id"] != second["client_id"]
    assert first["client_secret"] != second["client_secret"]
    assert api_client_authenticate(client_id=first["client_id"], secret=second["client_secret"]) is None


@pytest.mark.parametrize("args, message", [(["no-such-tenant", "Checkout"], "No tenant"), (["{tenant}", "  "], "needs a name")])
def test_create_api_client_refuses_bad_input(tenant, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_client", *[arg.format(tenant=tenant.slug) for arg in args], "--json")

    assert not ApiClient.objects.exists()


# --- The edges' input rules (tenants.inputs), moved here from the service tests ---------------------------------


def refused_input(*args) -> ApplicationError:
    """The command refuses with invalid_input (the ApplicationError behind its CommandError) and writes nothing."""
    before = (rows_snapshot(), list(get_user_model().objects.values()), list(ApiClient.objects.values()))
    with pytest.raises(CommandError, match=r"\(invalid_input\)") as caught:
        run(*args)
    assert (rows_snapshot(), list(get_user_model().objects.values()), list(ApiClient.objects.values())) == before
    return caught.value.__cause__


def test_create_tenant_strips_the_name():
    run("create_tenant", "acme-shop", "--name", "  Acme Shop ", "--timezone", "Europe/Paris")
    tenant = Tenant.objects.get()
    assert (tenant.slug, tenant.name, tenant.timezone) == ("acme-shop", "Acme Shop", "Europe/Paris")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"slug": "Acme Shop", "name": "Acme"},
        {"slug": "UPPER", "name": "Acme"},
        {"slug": "", "name": "Acme"},
        {"slug": "ünï", "name": "Acme"},
        {"slug": "acme", "name": "   "},
        {"slug": "acme", "name": "Acme", "timezone_name": "Mars/Olympus"},
        {"slug": "acme", "name": "Acme", "timezone_name": ""},
    ],
)
def test_create_tenant_refuses_bad_input_with_invalid_input(kwargs):
    refused_input("create_tenant", kwargs["slug"], "--name", kwargs["name"], "--timezone", kwargs.get("timezone_name", "UTC"))
    assert not Tenant.objects.exists()


@pytest.mark.parametrize("password", ["short1", "password", "12345678", ""])
def test_create_staff_user_refuses_a_weak_password_with_invalid_input(tenant, monkeypatch, password):
    monkeypatch.setenv("COUPONS_STAFF_PASSWORD", password)
    error = refused_input("create_staff_user", tenant.slug, "weak", "--role", "marketing")
    assert error.details["password"]
    assert not get_user_model().objects.filter(username="weak").exists()


def test_create_api_client_strips_the_name(tenant):
    run("create_api_client", tenant.slug, "  Checkout ")
    assert ApiClient.objects.get().name == "Checkout"


@pytest.mark.parametrize("name", ["", "   "])
def test_create_api_client_refuses_a_blank_name_with_invalid_input(tenant, name):
    refused_input("create_api_client", tenant.slug, name)
