"""``python -m runstore.cli`` is the ``runstore`` command (as is ``python -m runstore``)."""

from .root import main

if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    main()
