"""Tag rules with Metaflow's limits and messages (SPEC §6): runstore.tags, without a store."""

from __future__ import annotations

import pytest

from runstore.errors import TaggingError
from runstore.tags import MAX_TAG_SIZE, MAX_USER_TAGS, validate_tag, validate_tags


def _refused(value: object, *, many: bool = False) -> str:
    with pytest.raises(TaggingError) as info:
        validate_tags(value) if many else validate_tag(value)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_limits_are_metaflows() -> None:
    assert (MAX_TAG_SIZE, MAX_USER_TAGS) == (500, 50)


def test_valid_tags_come_back_as_str() -> None:
    assert validate_tag("exp:1") == "exp:1"
    assert validate_tag("x" * MAX_TAG_SIZE) == "x" * MAX_TAG_SIZE
    assert validate_tag(b"caf\xc3\xa9") == "café"
    assert validate_tag("日本語 ok") == "日本語 ok"


@pytest.mark.parametrize("value, message", [
    ("", "Tags must not be empty string"),
    (b"", "Tags must not be empty string"),
    ("x" * (MAX_TAG_SIZE + 1), "Tag is too long 501 > 500"),
    (5, "Tags must be strings, got int"),
    (None, "Tags must be strings, got NoneType"),
    (["a"], "Tags must be strings, got list"),
    (b"\xff\xfe", "Tags must be UTF-8 decodable"),
    ("\udcff", "Tags must be UTF-8 encodable"),  # a lone surrogate
])
def test_bad_tag_messages(value: object, message: str) -> None:
    assert _refused(value) == message


def test_a_set_of_tags_drops_duplicates_and_keeps_order() -> None:
    assert validate_tags(["b", "a", "b", b"a"]) == ["b", "a"]
    assert validate_tags(iter(("x", "y"))) == ["x", "y"]
    assert validate_tags([]) == []


@pytest.mark.parametrize("value, message", [
    ("abc", "Expected a list of tags, got a single string"),
    (b"abc", "Expected a list of tags, got a single string"),
    (5, "Tags must be given as an iterable of strings"),
    (["ok", ""], "Tags must not be empty string"),
    (["ok", 3], "Tags must be strings, got int"),
])
def test_bad_tag_sets(value: object, message: str) -> None:
    assert _refused(value, many=True) == message


def test_at_most_50_user_tags_but_an_oversized_set_may_shrink() -> None:
    tags = [f"t{i}" for i in range(MAX_USER_TAGS + 10)]
    assert validate_tags(tags[:MAX_USER_TAGS]) == tags[:MAX_USER_TAGS]  # exactly 50 is fine
    assert _refused(tags[:MAX_USER_TAGS + 1], many=True) == "Cannot increase size of tag set beyond 50"
    assert validate_tags(tags[:55], existing=tags) == tags[:55]  # 60 -> 55: shrinking is allowed
    assert validate_tags(tags[:55], existing=tags[:55]) == tags[:55]  # 55 -> 55: not growing
    with pytest.raises(TaggingError, match="beyond 50"):
        validate_tags(tags[:56], existing=tags[:55])  # 55 -> 56
    with pytest.raises(TaggingError, match="beyond 50"):
        validate_tags(tags[:56], existing=tags[:55] + tags[:55])  # duplicates in existing count once


@pytest.mark.parametrize("prefix", ["user:", "production:", "project:", "project_branch:", "runtime:",
                                    "python_version:", "runstore_version:", "date:"])
def test_every_reserved_prefix_is_refused_as_a_user_tag(prefix: str) -> None:
    """SPEC §13.5: each reserved prefix is a system tag only, alone or in a set; the message names it."""
    from runstore.tags import RESERVED_PREFIXES, validate_user_tag, validate_user_tags

    assert prefix in RESERVED_PREFIXES
    expected = f"the prefix {prefix!r} is reserved for system tags"
    with pytest.raises(TaggingError, match=expected):
        validate_user_tag(f"{prefix}x:y")
    with pytest.raises(TaggingError, match=expected):
        validate_user_tags(["fine", f"{prefix}x"])
    assert validate_user_tag(f"my{prefix}x") == f"my{prefix}x"  # only as a prefix
    assert validate_tags([f"{prefix}x"]) == [f"{prefix}x"]  # system tags pass the plain check
