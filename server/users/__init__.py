"""User administration."""

from server.users._controller import UserController, me

__all__ = ["UserController", "me"]
