"""What handlers may use: the runtime, the settings and the workflows folder, passed in, never global."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Settings
from bot.runtime import Runtime
from engine.loader import LoadedWorkflow, find_workflow, load_dir, load_workflow


@dataclass
class Services:
    """Dependencies of every handler."""

    runtime: Runtime
    settings: Settings
    _cache: dict[Path, tuple[float, LoadedWorkflow]] = field(default_factory=dict)

    def workflow(self, name: str) -> LoadedWorkflow:
        """The workflow called ``name`` (raises WorkflowNotFound with a suggestion, or WorkflowInvalid)."""
        path = find_workflow(self.settings.workflows_dir, name)
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        loaded = load_workflow(path)
        self._cache[path] = (mtime, loaded)
        return loaded

    def workflows(self) -> list[LoadedWorkflow]:
        """Every valid workflow in the folder, by name."""
        loaded, _errors = load_dir(self.settings.workflows_dir)
        return sorted(loaded, key=lambda w: w.spec.name)

    def now(self) -> float:
        """The runtime's clock."""
        return self.runtime.clock() if self.runtime else time.time()
