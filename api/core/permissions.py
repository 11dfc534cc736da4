"""Strawberry permission classes: declared on the fields they guard, decided by `policy`."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from api.core import policy
from api.core.errors import Unauthenticated


class IsAuthenticated(BasePermission):
    message = "Log in first: send 'Authorization: Bearer <token>'"
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        ctx = info.context
        if ctx.user is None:
            if ctx.auth_problem:
                raise Unauthenticated(ctx.auth_problem)
            return False
        return True


class _UserPermission(BasePermission):
    """A permission on the caller alone; unauthenticated callers get UNAUTHENTICATED."""

    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        user = info.context.require_user()
        return bool(self.allows(user))

    def allows(self, user: Any) -> bool:
        raise NotImplementedError


class IsAdmin(_UserPermission):
    message = "Only admins can do this"

    def allows(self, user: Any) -> bool:
        return policy.is_admin(user)


class SeesWholeOffice(_UserPermission):
    message = "Needs admin or office-wide access"

    def allows(self, user: Any) -> bool:
        return policy.sees_whole_office(user)


class MayDelete(_UserPermission):
    message = "Needs the canDelete right"

    def allows(self, user: Any) -> bool:
        return policy.may_delete(user)


class MayExport(_UserPermission):
    message = "Needs the canExport right"

    def allows(self, user: Any) -> bool:
        return policy.may_export(user)


class MaySeeContactPII(BasePermission):
    """R3: a contact's email and phone."""

    message = "Masked: this contact belongs to another agent"
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return policy.may_see_contact_pii(info.context.require_user(), source)


class MaySeeUserEmail(BasePermission):
    """R3: a user's email is for the user themself and admins."""

    message = "Only the user themself and admins see this email"
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return policy.may_see_user_email(info.context.require_user(), source)
