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
from .util import printable

__all__ = ["MAX_TAG_SIZE", "MAX_USER_TAGS", "RESERVED_PREFIXES", "is_reserved", "validate_tag",
           "validate_tags", "validate_user_tag", "validate_user_tags", "check_merged_tags"]

#: Longest tag, in characters.
MAX_TAG_SIZE = 500
#: Most user tags on one run.
MAX_USER_TAGS = 50
#: Prefixes only runstore itself may put on a run (as system tags): the namespaces
#: ``user:``/``production:`` and the facts it records. A user tag with one would put a
#: run into someone else's namespace (SPEC §13, promise 5).
RESERVED_PREFIXES = ("user:", "production:", "project:", "project_branch:", "runtime:",
                     "python_version:", "runstore_version:", "date:")


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


def is_reserved(tag: str) -> bool:
    """Whether ``tag`` starts with a reserved prefix (so only a system tag may carry it).

    Example
    -------
    >>> is_reserved("production:TrainFlow-0-x"), is_reserved("exp:1")
    (True, False)
    """
    return tag.startswith(RESERVED_PREFIXES)


def validate_user_tag(tag: Any) -> str:
    """:func:`validate_tag`, and refuse the reserved prefixes (system tags only).

    Every way a user tag is made goes through this: ``--tag`` at run, ``tag
    add/replace`` (both command lines), ``Run.add_tag(s)/replace_tag(s)`` and
    ``merge`` of a file carrying such a user tag.

    Example
    -------
    >>> validate_user_tag("best")
    'best'
    >>> validate_user_tag("user:will")
    Traceback (most recent call last):
    ...
    runstore.errors.TaggingError: 'user:will' is not allowed as a user tag: the prefix 'user:' is reserved for system tags
    """
    tag = validate_tag(tag)
    if is_reserved(tag):
        prefix = tag.split(":", 1)[0] + ":"
        raise TaggingError(
            f"{_shown(tag)} is not allowed as a user tag: the prefix {prefix!r} is reserved for system tags"
        )
    return tag


def _shown(tag: str) -> str:
    return printable(repr(tag))


def validate_user_tags(tags: Iterable[Any], existing: Iterable[str] = ()) -> list[str]:
    """:func:`validate_tags` for user tags: also refuses the reserved prefixes.

    Example
    -------
    >>> validate_user_tags(["a", "b", "a"])
    ['a', 'b']
    """
    checked = validate_tags(tags, existing)
    for tag in checked:
        validate_user_tag(tag)
    return checked


def check_merged_tags(pathspec: str, tags: Iterable[tuple[str, Any]]) -> None:
    """Refuse a run about to be merged in if it carries a user tag with a reserved prefix.

    ``tags`` are the ``(tag, is_system)`` rows of the run in the source file; only a
    hand-edited file has such a user tag (runstore never writes one), so the whole
    merge is refused, naming the run and the tag.

    Example
    -------
    >>> check_merged_tags("F/1", [("user:anne", 1), ("best", 0)])
    >>> check_merged_tags("F/2", [("production:F-0-x", 0)])
    Traceback (most recent call last):
    ...
    runstore.errors.TaggingError: run F/2 of the file carries the user tag 'production:F-0-x' with a reserved prefix (system tags only); the merge is refused
    """
    for tag, is_system in tags:
        if not is_system and isinstance(tag, str) and is_reserved(tag):
            raise TaggingError(f"run {printable(pathspec)} of the file carries the user tag {_shown(tag)} "
                               "with a reserved prefix (system tags only); the merge is refused")


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
