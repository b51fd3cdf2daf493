"""The workflows a process may run: the workflows folder's files, parsed once per change, found by name."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import BadInput, NotFound, NotPermitted
from bot.identity import Identity, Place, allowed, describe
from bot.storage import redaction
from engine.loader import (
    LoadedWorkflow,
    WorkflowInvalid,
    WorkflowNotFound,
    find_workflow,
    load_workflow,
    workflow_files,
)
from engine.spec import Permissions

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    """The workflows folder, read lazily: a file is parsed again only when its modification time changes."""

    folder: Path
    _cache: dict[Path, tuple[float, LoadedWorkflow]] = field(default_factory=dict)

    def workflow(self, name: str) -> LoadedWorkflow:
        """The workflow called ``name`` (raises WorkflowNotFound with a suggestion, or WorkflowInvalid).

        A name from chat is data, never a path: anything that could leave the workflows folder (a
        separator, a suffix, a leading dot) is simply not a workflow name, so chat cannot load, or learn
        whether there is, a file elsewhere on the server.
        """
        if not _plain_name(name):
            raise WorkflowNotFound(str(self.folder), f"'{name}' is not a workflow name")
        path = find_workflow(self.folder, name)
        if not self._inside(path):
            raise WorkflowNotFound(str(self.folder), f"'{name}' leads out of the workflows folder")
        return self._load(path)

    def workflows(self) -> list[LoadedWorkflow]:
        """Every valid workflow in the folder, by name (files are parsed again only when they change)."""
        loaded = []
        for path in workflow_files(self.folder) if self.folder.is_dir() else []:
            if not self._inside(path):
                continue
            try:
                loaded.append(self._load(path))
            except (WorkflowInvalid, OSError):
                continue  # `switchboard workflow validate` reports these; chat lists what can run
        return sorted(loaded, key=lambda w: w.spec.name)

    def find(self, name: str) -> LoadedWorkflow:
        """A workflow by name, with the errors a user should read (a did-you-mean, or why it cannot run)."""
        try:
            return self.workflow(name)
        except WorkflowNotFound:
            names = [w.spec.name for w in self.workflows()]
            close = difflib.get_close_matches(name, names, n=1)
            listed = f" Workflows: {', '.join(names)}." if names else ""
            hint = f" Did you mean {close[0]}?" if close else listed
            raise NotFound(f"No workflow named {name}.{hint}") from None
        except WorkflowInvalid as exc:
            raise BadInput(f"Workflow {name} is invalid and cannot run:\n{exc}") from None

    def check_may_steer(
        self,
        workflow: str,
        started_by: str,
        what: str,
        who: Identity,
        where: Place,
        doing: str | None = None,
    ) -> None:
        """Cancel and rollback: the starter, admins, and whoever the workflow's permissions name.

        ``doing`` names the request when it follows another one's permission (a rewind follows rollback's).
        """
        if who.admin or who.ref == started_by:
            return
        try:
            perms: Permissions | None = self.workflow(workflow).spec.permissions
        except (WorkflowNotFound, WorkflowInvalid):
            perms = None
        check_steer_permissions(perms, workflow, what, who, where, doing)

    def _inside(self, path: Path) -> bool:
        """Whether ``path``, every symlink followed, is a file of the workflows folder itself.

        A symlink in the folder that leads elsewhere is not a workflow chat may run or see: it is
        logged for the operator, and chat gets the same answer as for a name that does not exist.
        """
        try:
            real, folder = path.resolve(strict=True), self.folder.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link, or a loop of links
            return False
        if real.is_relative_to(folder):
            return True
        log.warning("ignoring %s: it is a symlink to %s, outside the workflows folder %s", path, real, folder)
        return False

    def _load(self, path: Path) -> LoadedWorkflow:
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        loaded = load_workflow(path)
        redaction.read(loaded.spec)  # a secret pasted into chat is masked before any run reads it
        self._cache[path] = (mtime, loaded)
        return loaded


def check_steer_permissions(
    perms: Permissions | None,
    workflow: str,
    what: str,
    who: Identity,
    where: Place,
    doing: str | None = None,
) -> None:
    """The workflow's rule for someone other than the starter or an admin (None: its file is gone)."""
    verb = doing or what
    if perms is None:
        raise NotPermitted(f"Only the person who started this run or an admin may {verb} it.")
    entries = getattr(perms, what) if getattr(perms, what) is not None else perms.run
    if not allowed(entries, who, where):
        rule = f" (the '{what}' permission)" if doing else ""
        raise NotPermitted(
            f"You may not {verb} runs of {workflow}{rule}. Allowed: its starter, admins, {describe(entries)}."
        )


def check_may_run(loaded: LoadedWorkflow, who: Identity, where: Place) -> None:
    """Refuse, saying who may, when ``who`` may not start this workflow here."""
    entries = loaded.spec.permissions.run
    if not allowed(entries, who, where):
        raise NotPermitted(f"You may not run {loaded.spec.name}. Allowed: {describe(entries)}.")


def _plain_name(name: str) -> bool:
    return (
        bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\:\0")
        and (Path(name).suffix.lower() not in (".yaml", ".yml"))
    )
