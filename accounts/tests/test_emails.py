import pytest

from accounts.emails import email_canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Kiss@Example.COM", "kiss@example.com"),
        ("  kiss@example.com \n", "kiss@example.com"),
        ("k\u0131ss@example.com", "k\u0131ss@example.com"),  # dotless i is another letter
        ("\ufb01@example.com", "fi@example.com"),  # ligature
        ("\uff2b\uff29\uff33\uff33@\uff45\uff58ample.com", "kiss@example.com"),  # fullwidth
        ("straße@example.com", "strasse@example.com"),
        ("STRAẞE@example.com", "strasse@example.com"),
    ],
)
def test_email_canonical(raw: str, canonical: str) -> None:
    assert email_canonical(raw) == canonical


def test_email_canonical_is_stable() -> None:
    for code_point in range(0x110000):
        once = email_canonical(chr(code_point))
        assert email_canonical(once) == once, hex(code_point)
