"""The staff roles as Django groups, and the permissions each one carries (the back office's role matrix).

    permission                         marketing  accountant  admin
    books.view_couponbook                  x          x         x
    books.add_couponbook                   x                    x
    books.change_couponbook                x                    x   (edit, pause, archive)
    books.view_code                        x          x         x
    books.add_code                         x                    x   (generate, upload)
    books.change_code                      x                    x   (void, unassign, release reservations, distribute)
    books.view_reservation                 x                    x
    books.view_event                       x          x         x
    redemptions.view_redemption            x          x         x
    redemptions.export_redemption                     x         x   (Excel export)
    redemptions.reverse_redemption                              x   (refunds)
    core.view_job                          x          x         x
    tenants.view/add/change_staffmembership                     x   (the tenant's staff)
    tenants.view/add/change_apiclient                           x   (the tenant's API clients)
    webhooks.view/add/change/delete_webhookendpoint             x   (the tenant's webhook endpoints)
    webhooks.view_webhookdelivery, retry_webhookdelivery        x   (the delivery log; retry, ping)

Nobody (superusers aside) may delete a book, a code or a redemption: books are archived, codes voided and
redemptions reversed, so the history stays. Tenants themselves are managed by superusers only.
Every permission applies inside the user's own tenant only: the admin scopes every row to it.
"""

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from .models import Role

# Permissions that are not one of Django's four defaults: (app_label, model) -> [(codename, name)].
CUSTOM_PERMISSIONS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("redemptions", "redemption"): [
        ("export_redemption", "Can export redemptions to Excel"),
        ("reverse_redemption", "Can reverse (refund) redemptions"),
    ],
}

# (app_label, model) -> codenames, per role
ROLE_PERMISSIONS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    Role.MARKETING: {
        ("books", "couponbook"): ("view_couponbook", "add_couponbook", "change_couponbook"),
        ("books", "code"): ("view_code", "add_code", "change_code"),
        ("books", "reservation"): ("view_reservation",),
        ("books", "event"): ("view_event",),
        ("redemptions", "redemption"): ("view_redemption",),
        ("core", "job"): ("view_job",),
    },
    Role.ACCOUNTANT: {
        ("books", "couponbook"): ("view_couponbook",),
        ("books", "code"): ("view_code",),
        ("books", "event"): ("view_event",),
        ("redemptions", "redemption"): ("view_redemption", "export_redemption"),
        ("core", "job"): ("view_job",),
    },
    Role.ADMIN: {
        ("books", "couponbook"): ("view_couponbook", "add_couponbook", "change_couponbook"),
        ("books", "code"): ("view_code", "add_code", "change_code"),
        ("books", "reservation"): ("view_reservation",),
        ("books", "event"): ("view_event",),
        ("redemptions", "redemption"): ("view_redemption", "export_redemption", "reverse_redemption"),
        ("core", "job"): ("view_job",),
        ("tenants", "apiclient"): ("view_apiclient", "add_apiclient", "change_apiclient"),
        ("tenants", "staffmembership"): ("view_staffmembership", "add_staffmembership", "change_staffmembership"),
        ("webhooks", "webhookendpoint"): (
            "view_webhookendpoint",
            "add_webhookendpoint",
            "change_webhookendpoint",
            "delete_webhookendpoint",
        ),
        ("webhooks", "webhookdelivery"): ("view_webhookdelivery", "retry_webhookdelivery"),
    },
}


def _custom_permissions_ensure() -> None:
    for (app_label, model), perms in CUSTOM_PERMISSIONS.items():
        content_type = ContentType.objects.get_for_model(apps.get_model(app_label, model))
        for codename, name in perms:
            Permission.objects.get_or_create(content_type=content_type, codename=codename, defaults={"name": name})


@transaction.atomic
def role_groups_sync() -> dict[str, Group]:
    """Create or update the three role groups with exactly their permissions. Safe to run any number of times."""
    _custom_permissions_ensure()
    groups = {}
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for (app_label, model), codenames in grants.items():
            wanted.extend(
                Permission.objects.filter(content_type__app_label=app_label, content_type__model=model, codename__in=codenames)
            )
        group.permissions.set(wanted)
        groups[role] = group
    return groups


@transaction.atomic
def membership_role_set(*, membership, role: str):
    """Move a staff user to another role: the membership's role and the user's role group change together."""
    from core.exceptions import ApplicationError

    if role not in Role.values:
        raise ApplicationError("invalid_input", f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    groups = role_groups_sync()
    user = membership.user
    user.groups.remove(*[group for name, group in groups.items() if name != role])
    user.groups.add(groups[role])
    # An update, not a comparison with the instance: a form may have set the new role on it already.
    type(membership).objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    return membership
