"""Metaflow's ``python -m metaflow.cmd.<name>`` spellings of runstore commands (``runstore.cmd.diff``)."""
