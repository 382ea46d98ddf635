"""Who is asking: the authenticated user as every handler sees it."""

from dataclasses import dataclass

from server.db.models import Role, User

__all__ = ["Principal"]


@dataclass(frozen=True)
class Principal:
    id: int
    username: str
    role: Role
    grids: tuple[str, ...]
    display_name: str = ""
    department: str | None = None
    """Department code of a ``department`` account."""

    @classmethod
    def of(cls, user: User) -> "Principal":
        assert user.id is not None
        return cls(
            id=user.id,
            username=user.username,
            role=Role(user.role),
            grids=tuple(user.grids),
            display_name=user.display_name,
            department=user.department,
        )

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
