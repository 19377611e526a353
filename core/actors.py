"""Who did something: recorded on every event and redemption."""

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Actor:
    """The author of a change: an API client, an end user, a staff user, or the system (tasks, commands)."""

    API_CLIENT: ClassVar[str] = "api_client"
    END_USER: ClassVar[str] = "end_user"
    STAFF: ClassVar[str] = "staff"
    SYSTEM: ClassVar[str] = "system"

    kind: str
    id: str = ""

    @classmethod
    def system(cls, name: str = "system") -> "Actor":
        return cls(kind=cls.SYSTEM, id=name)

    @classmethod
    def staff(cls, user) -> "Actor":
        return cls(kind=cls.STAFF, id=str(user.pk))

    @classmethod
    def api_client(cls, client) -> "Actor":
        return cls(kind=cls.API_CLIENT, id=str(client.client_id))

    @classmethod
    def end_user(cls, user_id: str) -> "Actor":
        return cls(kind=cls.END_USER, id=user_id)


ACTOR_KIND_CHOICES = [
    (Actor.API_CLIENT, "API client"),
    (Actor.END_USER, "End user"),
    (Actor.STAFF, "Staff user"),
    (Actor.SYSTEM, "System"),
]
