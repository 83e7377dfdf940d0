"""The first admin's credentials: configured ones are checked, else a password is generated."""

from __future__ import annotations

import pytest

from libs.common.settings import SettingsError, load_settings
from services.gateway.auth.bootstrap import GENERATED_ADMIN_EMAIL, admin_credentials


def test_configured_credentials_are_used_and_the_email_normalised() -> None:
    settings = load_settings({"ACUVIM_ADMIN_EMAIL": " Boss@Example.COM ",
                              "ACUVIM_ADMIN_PASSWORD": "long-enough-1"})
    assert admin_credentials(settings) == ("boss@example.com", "long-enough-1", False)


def test_without_a_password_one_is_generated_for_admin_at_localhost() -> None:
    email, password, generated = admin_credentials(load_settings({}))
    assert (email, generated) == (GENERATED_ADMIN_EMAIL, True)
    assert len(password) >= 16
    assert admin_credentials(load_settings({}))[1] != password


@pytest.mark.parametrize(("env", "variable"), [
    ({"ACUVIM_ADMIN_PASSWORD": "short"}, "ACUVIM_ADMIN_PASSWORD"),
    ({"ACUVIM_ADMIN_EMAIL": "no-at-sign", "ACUVIM_ADMIN_PASSWORD": "long-enough-1"},
     "ACUVIM_ADMIN_EMAIL"),
])
def test_bad_configured_credentials_name_the_variable(env: dict[str, str],
                                                      variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        admin_credentials(load_settings(env))
