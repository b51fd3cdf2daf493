"""What handlers may use: runtime, settings, workflow catalog, conversations; passed in, never global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.runtime.catalog import Catalog
from bot.runtime.runtime import Runtime
from engine.loader import LoadedWorkflow

if TYPE_CHECKING:
    from bot.conversations.service import Conversations


@dataclass
class Services:
    """Dependencies of every handler."""

    runtime: Runtime
    settings: Settings
    conversations: Conversations | None = None  # set by the bot process (the CLI has none)
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.settings.workflows_dir)

    def workflow(self, name: str) -> LoadedWorkflow:
        """The workflow called ``name`` (raises WorkflowNotFound with a suggestion, or WorkflowInvalid)."""
        return self.catalog.workflow(name)

    def workflows(self) -> list[LoadedWorkflow]:
        """Every valid workflow in the folder, by name."""
        return self.catalog.workflows()

    def now(self) -> float:
        """The runtime's clock."""
        return self.runtime.clock()
