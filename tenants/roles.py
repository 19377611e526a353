"""The staff roles as Django groups, and the permissions each one carries.

marketing works on books and codes; accountant reads redemptions (and exports them); admin does both and manages
the tenant's staff and API clients. The back office issue refines this matrix; it is kept in one place here.
"""

from django.contrib.auth.models import Group, Permission

from .models import Role

# (app_label, model) -> actions, per role
ROLE_PERMISSIONS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    Role.MARKETING: {
        ("books", "couponbook"): ("view", "add", "change"),
        ("books", "code"): ("view", "add", "change"),
        ("books", "reservation"): ("view", "change"),
        ("books", "event"): ("view",),
        ("redemptions", "redemption"): ("view",),
        ("core", "job"): ("view",),
    },
    Role.ACCOUNTANT: {
        ("books", "couponbook"): ("view",),
        ("books", "code"): ("view",),
        ("books", "event"): ("view",),
        ("redemptions", "redemption"): ("view",),
        ("core", "job"): ("view",),
    },
    Role.ADMIN: {
        ("books", "couponbook"): ("view", "add", "change", "delete"),
        ("books", "code"): ("view", "add", "change"),
        ("books", "reservation"): ("view", "change"),
        ("books", "event"): ("view",),
        ("redemptions", "redemption"): ("view", "change"),
        ("core", "job"): ("view",),
        ("tenants", "apiclient"): ("view", "add", "change"),
        ("tenants", "staffmembership"): ("view", "add", "change", "delete"),
        ("auth", "user"): ("view", "add", "change"),
    },
}


def role_groups_sync() -> dict[str, Group]:
    """Create or update the three role groups with exactly their permissions. Safe to run any number of times."""
    groups = {}
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for (app_label, model), actions in grants.items():
            codenames = [f"{action}_{model}" for action in actions]
            wanted.extend(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
        group.permissions.set(wanted)
        groups[role] = group
    return groups
