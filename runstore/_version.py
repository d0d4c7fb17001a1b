"""The released version of runstore (the git-aware version is ``get_version()``)."""

__version__ = "0.1.0"
