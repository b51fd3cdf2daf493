"""The live preview's coalescing and failure rules, over a recording live message (a plain test double of
the platform side, whose real adapters are exercised in test_live_slack/discord/console)."""

from __future__ import annotations

import asyncio

from bot.delivery.contract import DeliveryError, Sent
from bot.delivery.live import Preview


class Recorder:
    def __init__(self, fail_after: int | None = None) -> None:
        self.shown: list[str] = []
        self.finished: str | None = None
        self.fail_after = fail_after

    async def begin(self) -> None:
        return None

    async def show(self, text: str) -> None:
        if self.fail_after is not None and len(self.shown) >= self.fail_after:
            raise DeliveryError("ratelimited", retry_after=30)
        await asyncio.sleep(0)  # a platform call yields to the stream
        self.shown.append(text)

    async def finish(self, text: str) -> Sent | None:
        self.finished = text
        return Sent("m1")


async def test_a_hundred_pieces_reach_the_platform_as_a_few_calls_newest_text_first() -> None:
    message = Recorder()
    preview = Preview(message, every=0.2)
    text = ""
    for n in range(100):
        text += f" w{n}"
        await preview.show(text)
        await asyncio.sleep(0.001)
    assert await preview.finish() == Sent("m1")
    assert 1 <= len(message.shown) <= 3  # the first piece at once, then at most one per interval
    assert message.shown[0] == " w0"
    assert all(a != b and b.startswith(a) for a, b in zip(message.shown, message.shown[1:], strict=False))
    assert message.finished == text  # the end of the stream gets all of it


async def test_a_platform_that_refuses_stops_the_preview_but_not_the_answer() -> None:
    message = Recorder(fail_after=1)
    preview = Preview(message, every=0.01)
    await preview.show("one")
    await asyncio.sleep(0.05)
    await preview.show("one two")
    await asyncio.sleep(0.05)
    await preview.show("one two three")
    assert preview.broken and message.shown == ["one"]
    assert await preview.finish() == Sent("m1")  # the reply still replaces what was shown


async def test_nothing_shown_hands_over_no_message() -> None:
    message = Recorder()
    preview = Preview(message, every=0.01)
    assert await preview.finish() is None and message.finished is None


async def test_a_status_the_platform_refuses_does_not_stop_the_answer() -> None:
    class NoStatus(Recorder):
        async def begin(self) -> None:
            raise DeliveryError("not an assistant thread", permanent=True)

    message = NoStatus()
    preview = Preview(message, every=0.01)
    await preview.begin()
    await preview.show("hello")
    assert await preview.finish() == Sent("m1") and message.shown == ["hello"]
