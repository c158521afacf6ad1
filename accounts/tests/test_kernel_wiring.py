"""The kernel imports no app: what its API base classes need from accounts is named in settings
(``API_*``). These names must stay true to accounts."""

from __future__ import annotations

from django.conf import settings

from accounts.authentication import BearerTokenAuthentication, OptionalBearerTokenAuthentication
from accounts.models import ROLE_RANK
from accounts.services.mfa import mfa_enrollment_required
from leanvibe.api import base


def test_the_kernel_roles_are_the_accounts_roles_in_rank_order():
    assert list(settings.API_ROLES) == sorted(ROLE_RANK, key=ROLE_RANK.__getitem__)
    assert base.ROLE_RANK == ROLE_RANK


def test_the_kernel_authenticates_and_checks_two_factor_with_accounts():
    assert base.TenantAPIView.authentication_classes == [BearerTokenAuthentication]
    assert base.StaffAPIView.authentication_classes == [BearerTokenAuthentication]
    assert base.DangerouslyPublicAPIView.authentication_classes == [OptionalBearerTokenAuthentication]
    assert base._mfa_enrollment_required() is mfa_enrollment_required
