"""A misspelt setting is an error with a did-you-mean, as a keyword and as a SWITCHBOARD_* variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings, load_settings
from bot.errors import BadInput


def test_a_misspelt_keyword_is_refused_with_the_name_meant() -> None:
    with pytest.raises(ValidationError, match="unknown setting poll_intervall; did you mean poll_interval"):
        Settings(poll_intervall=0.01)  # type: ignore[call-arg]


def test_a_misspelt_variable_is_refused_by_settings_and_by_load_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_POLL_INTERVALL", "1")
    with pytest.raises(BadInput, match="did you mean SWITCHBOARD_POLL_INTERVAL"):
        load_settings()
    with pytest.raises(BadInput, match="did you mean SWITCHBOARD_POLL_INTERVAL"):
        Settings()


def test_known_names_and_the_ecosystem_aliases_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///./elsewhere.db")
    settings = Settings(kill_grace=1.0)
    assert (settings.poll_interval, settings.kill_grace) == (0.5, 1.0)
    assert settings.database_url.endswith("elsewhere.db")
