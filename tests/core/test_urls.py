"""segport.urls: one way to keep a password out of what is shown or passed on."""

from segport.urls import without_password


def test_the_password_is_masked_for_messages_or_dropped_for_tasks() -> None:
    url = "postgresql://segport:hunter2@[::1]:5432/segport"
    assert without_password(url, "***") == "postgresql://segport:***@[::1]:5432/segport"
    assert without_password(url) == "postgresql://segport@[::1]:5432/segport"
    assert without_password("redis://:hunter2@127.0.0.1:6379/0", "***") == "redis://***@127.0.0.1:6379/0"
    assert without_password("redis://127.0.0.1:6379/0", "***") == "redis://127.0.0.1:6379/0"
