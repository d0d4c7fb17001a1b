"""Tag validation, with Metaflow's limits and messages (SPEC §6).

Example
-------
>>> validate_tags(["exp:1", "hello world"])
['exp:1', 'hello world']
>>> validate_tag("")
Traceback (most recent call last):
...
runstore.errors.TaggingError: Tags must not be empty string
"""

from __future__ import annotations

from typing import Any, Iterable

from .errors import TaggingError

__all__ = ["MAX_TAG_SIZE", "MAX_USER_TAGS", "validate_tag", "validate_tags"]

#: Longest tag, in characters.
MAX_TAG_SIZE = 500
#: Most user tags on one run.
MAX_USER_TAGS = 50


def validate_tag(tag: Any) -> str:
    """Check one tag and return it as ``str`` (UTF-8 ``bytes`` are decoded).

    Example
    -------
    >>> validate_tag(b"caf\\xc3\\xa9")
    'café'
    """
    if isinstance(tag, bytes):
        try:
            tag = tag.decode("utf-8")
        except UnicodeDecodeError:
            raise TaggingError("Tags must be UTF-8 decodable") from None
    if not isinstance(tag, str):
        raise TaggingError(f"Tags must be strings, got {type(tag).__name__}")
    if tag == "":
        raise TaggingError("Tags must not be empty string")
    if len(tag) > MAX_TAG_SIZE:
        raise TaggingError(f"Tag is too long {len(tag)} > {MAX_TAG_SIZE}")
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:
        raise TaggingError("Tags must be UTF-8 encodable") from None
    return tag


def validate_tags(tags: Iterable[Any], existing: Iterable[str] = ()) -> list[str]:
    """Check a set of user tags; it may not grow beyond 50 (shrinking is allowed).

    Duplicates are dropped, order is kept. A single string is refused, because
    iterating it would tag the run with its letters.

    Example
    -------
    >>> validate_tags(["a", "b", "a"])
    ['a', 'b']
    """
    if isinstance(tags, (str, bytes)):
        raise TaggingError("Expected a list of tags, got a single string")
    try:
        checked = list(dict.fromkeys(validate_tag(t) for t in tags))
    except TypeError:
        raise TaggingError("Tags must be given as an iterable of strings") from None
    before = len(set(existing))
    if len(checked) > MAX_USER_TAGS and len(checked) > before:
        raise TaggingError(f"Cannot increase size of tag set beyond {MAX_USER_TAGS}")
    return checked
