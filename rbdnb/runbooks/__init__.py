"""Runbooks: the parameters every runbook takes and how it begins (:func:`begin`), running
one unattended with papermill (``rbdnb run``), the HTML site made from executed runbooks
(``rbdnb docs build``), and the Jupyter kernel spec they run in."""

from pathlib import Path

from .runbook import begin

__all__ = ["begin", "bundled"]


def bundled() -> Path:
    """The directory of the runbooks that come with rbdnb: package data of an installed
    wheel; in the repository, links to ``runbooks/``, where they are written."""
    from importlib.resources import files
    return Path(str(files(__package__) / "notebooks"))
