"""Users: volunteers, grid leaders, coordinators and admins, each with a scope of grids."""

from datetime import datetime
from enum import StrEnum

from pydantic import model_validator
from sqlalchemy import JSON, Column, String
from sqlmodel import Field, SQLModel

from server.db.models._common import utc_field

__all__ = ["Role", "User", "UserBase", "UserCreate", "UserPublic", "UserUpdate", "check_department"]


class Role(StrEnum):
    VOLUNTEER = "volunteer"
    GRID_LEADER = "grid_leader"
    COORDINATOR = "coordinator"
    ADMIN = "admin"
    DEPARTMENT = "department"
    """A responsible department's account (吹哨报到): acknowledges and reports on cases dispatched to
    its department through the case API; never syncs."""


class UserBase(SQLModel):
    username: str = Field(min_length=2, max_length=64, regex=r"^[a-z0-9][a-z0-9_.\-]*$")
    display_name: str = Field(default="", max_length=100)
    role: Role = Field(sa_type=String(16))
    grids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Codes of the grids (or micro-grids) this user works in; admins see every grid."""
    department: str | None = Field(default=None, max_length=32)
    """Department code (taxonomy) of a ``department`` account; None for everyone else."""


def check_department(role: Role | str | None, department: str | None, grids: list[str]) -> None:
    """A department account names its department and no grid; nobody else names a department."""
    if role == Role.DEPARTMENT:
        if not department:
            raise ValueError("a department account needs a department code / 部门账号须指定部门代码")
        if grids:
            raise ValueError("a department account has no grids / 部门账号不属于任何网格")
    elif department:
        raise ValueError("only department accounts have a department / 只有部门账号可以指定部门")


class UserCreate(UserBase):
    password: str = Field(min_length=8, max_length=256)

    @model_validator(mode="after")
    def _department_matches_role(self) -> "UserCreate":
        check_department(self.role, self.department, list(self.grids))
        return self


class UserUpdate(SQLModel):
    display_name: str | None = None
    role: Role | None = None
    grids: list[str] | None = None
    department: str | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)
    is_active: bool | None = None


class User(UserBase, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    password_hash: str
    is_active: bool = True
    created_at: datetime = utc_field()


class UserPublic(UserBase):
    id: int
    is_active: bool
