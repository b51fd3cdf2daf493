"""Property-based tests of the REST API with schemathesis, against the running server's own OpenAPI
document: whatever it generates (valid and invalid), the server never fails with a 5xx, and every answer
has a documented status, content type and body."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from bot.config import Settings
from bot.process import App, start_app, stop_app
from bot.storage.tokens import TokenStore
from bot.tokens import SCOPES, acting_as

WORKFLOW = """
name: hello
inputs:
  who: {type: string, default: world}
  count: {type: integer, default: 1}
steps:
  greet:
    run: ["echo", "hello ${{ inputs.who }}"]
"""
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]


class Served:
    """The app running on a loop of its own in a thread: schemathesis calls it with blocking requests."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.app: App | None = None
        self.token = ""

    def __enter__(self) -> Served:
        self.thread.start()
        self.app, self.token = self._run(self._start())
        return self

    def __exit__(self, *_: Any) -> None:
        assert self.app is not None
        self._run(stop_app(self.app, grace=1.0, flush=1.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self) -> tuple[App, str]:
        workflows = self.tmp / "workflows"
        workflows.mkdir()
        (workflows / "hello.yaml").write_text(WORKFLOW)
        app = await start_app(
            Settings(
                database_url=f"sqlite+aiosqlite:///{self.tmp / 'fuzz.db'}",
                workflows_dir=workflows,
                port=0,
                poll_interval=0.05,
                card_update_interval=0.0,
                admins=["token:fuzz"],
            )
        )
        _, text = await TokenStore(app.engine).create(
            "fuzz", frozenset(SCOPES), acting_as("user:fuzz"), "tests", 1.0
        )
        return app, text


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("api-fuzz")) as running:
        yield running


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_to_its_own_document(served: Served, mode: GenerationMode) -> None:
    assert served.app is not None
    schema = schemathesis.openapi.from_url(f"{served.app.url}/api/v1/openapi.json")
    auth = {"Authorization": f"Bearer {served.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        # Derandomized: the same cases on every run, so CI never flakes on a new draw; widen max_examples
        # (or drop derandomize) locally to look further.
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=CHECKS, timeout=20)

        try:
            check()
        except Unsatisfiable:
            # Nothing to break: an operation without parameters or body has no invalid request.
            assert mode is GenerationMode.NEGATIVE, operation.label
