"""What every front end shares: the default for ``dry_run``, and the runbook (if one is
running in this kernel) that records each result as a step.

The core takes ``dry_run`` explicitly on every mutating call; the front ends (magics,
forms, the ``rbdnb`` CLI) fill it in from a flag when the user gives one, else from
this default: ``$RBDNB_DRY_RUN`` (``1``/``true``) at start, and in a kernel
``%config RbdnbMagics.dry_run = True``, which sets it for the magics and the forms alike.
"""

from __future__ import annotations

import inspect
import os
import weakref


class Settings:
    """Settings every front end shares (the dry-run default); listeners hear changes."""
    def __init__(self):
        self._dry_run = os.environ.get("RBDNB_DRY_RUN", "").strip().lower() in ("1", "true",
                                                                                "yes")
        self._listeners: list = []
        # A runbook running in this kernel: each result a front end produces is given to it
        # (shown once and recorded as one of the runbook's steps).
        self.recorder = None

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    @dry_run.setter
    def dry_run(self, value: bool) -> None:
        self._dry_run = bool(value)
        for ref in list(self._listeners):
            listener = ref()
            if listener is None:
                self._listeners.remove(ref)  # its form is gone
            else:
                listener(self._dry_run)

    def on_dry_run(self, listener) -> None:
        """Call ``listener(value)`` when the default changes (a form's checkbox follows it).
        A bound method is held weakly: a form that is gone is forgotten."""
        self._listeners.append(weakref.WeakMethod(listener) if inspect.ismethod(listener)
                               else (lambda listener=listener: listener))

    def record(self, result) -> bool:
        """Give a result (a Result or Plan) to the runbook running here, if any; whether it
        took it (and showed it)."""
        if self.recorder is None:
            return False
        self.recorder(result)
        return True

    def resolve_dry_run(self, flag: bool | None) -> bool:
        """A flag the user gave wins; without one, the shared default applies."""
        return self.dry_run if flag is None else bool(flag)


settings = Settings()
