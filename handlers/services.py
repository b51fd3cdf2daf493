"""What handlers may use: the runtime, the settings and the workflows folder, passed in, never global."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.runtime.runtime import Runtime
from engine.loader import LoadedWorkflow, WorkflowInvalid, find_workflow, load_workflow, workflow_files

if TYPE_CHECKING:
    from bot.conversations.service import Conversations


@dataclass
class Services:
    """Dependencies of every handler."""

    runtime: Runtime
    settings: Settings
    conversations: Conversations | None = None  # set by the bot process (the CLI has none)
    _cache: dict[Path, tuple[float, LoadedWorkflow]] = field(default_factory=dict)

    def workflow(self, name: str) -> LoadedWorkflow:
        """The workflow called ``name`` (raises WorkflowNotFound with a suggestion, or WorkflowInvalid)."""
        return self._load(find_workflow(self.settings.workflows_dir, name))

    def workflows(self) -> list[LoadedWorkflow]:
        """Every valid workflow in the folder, by name (files are parsed again only when they change)."""
        folder = self.settings.workflows_dir
        loaded = []
        for path in workflow_files(folder) if folder.is_dir() else []:
            try:
                loaded.append(self._load(path))
            except (WorkflowInvalid, OSError):
                continue  # `switchboard workflow validate` reports these; chat lists what can run
        return sorted(loaded, key=lambda w: w.spec.name)

    def _load(self, path: Path) -> LoadedWorkflow:
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        loaded = load_workflow(path)
        self._cache[path] = (mtime, loaded)
        return loaded

    def now(self) -> float:
        """The runtime's clock."""
        return self.runtime.clock()
