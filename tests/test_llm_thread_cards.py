"""What an llm step's thread message says: pure functions of its text and the event that ended it."""

from __future__ import annotations

from bot.runtime.llm_threads import THREAD_TEXT, Writing, ended_card, interrupted_card, writing_card

LONG = " ".join(f"w{n}" for n in range(2000))  # about 10,000 characters


def attempt(text: str = "", secrets: tuple[str, ...] = ()) -> Writing:
    return Writing("r1", "summarise", 1, "slack", "C0OPS", secrets, text=text)


def test_while_writing_a_long_text_shows_its_end_and_that_more_is_coming() -> None:
    card = writing_card(attempt(LONG))
    assert card.text.startswith("…") and card.text.endswith("w1999 …")
    assert len(card.text) <= THREAD_TEXT + 2 and card.context == ("✎ summarise is writing…",)


def test_the_end_shows_the_whole_text_or_says_where_the_rest_is() -> None:
    outputs = {"text": "all is well", "usage": {"completion_tokens": 3}}
    done = {"type": "step_succeeded", "data": {"attempt": 1, "duration": 2.5}}
    card = ended_card(attempt("all is well"), done, outputs)
    assert (
        card is not None
        and card.text == "all is well"
        and card.context[0].startswith("✎ summarise · 3 tokens")
    )
    # A server that could not stream: the text comes from the outputs, at once.
    plain = ended_card(attempt(), done, outputs)
    assert plain is not None and plain.text == "all is well"
    long = ended_card(attempt(LONG), done, {"text": LONG})
    assert long is not None and long.text.startswith("w0 w1") and len(long.text) <= THREAD_TEXT
    assert "in the step's outputs" in long.context[-1] and len(long.fallback) <= THREAD_TEXT


def test_secrets_are_masked_as_the_outputs_are() -> None:
    card = writing_card(attempt("the token is s3cr3t-value!", secrets=("s3cr3t-value!",)))
    assert "s3cr3t" not in card.text and "***" in card.text and "s3cr3t" not in card.fallback


def test_a_failure_keeps_the_text_so_far_and_says_why() -> None:
    failed = {"type": "step_failed", "data": {"attempt": 1, "error": "the server broke off"}}
    card = ended_card(attempt("half of"), failed, None)
    assert (
        card is not None
        and card.text == "half of"
        and card.context == ("✗ summarise failed: the server broke off",)
    )
    # Nothing was shown: the thread's failure reply says it, no message of its own.
    assert ended_card(attempt(), failed, None) is None
    retrying = {"type": "step_retrying", "data": {"attempt": 1, "error": "429"}}
    again = ended_card(attempt("so far"), retrying, None)
    assert again is not None and "attempt 1 failed (429)" in again.context[0]


def test_a_crash_is_noted_with_what_happens_next() -> None:
    card = interrupted_card("summarise", {"attempt": 1, "action": "rerun"})
    assert card.text == "⚡ summarise was interrupted by a crash; running it again (attempt 2)"
