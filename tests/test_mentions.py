"""People in cards: a Slack or Discord mention on that platform, "@name" everywhere else."""

from __future__ import annotations

from cards.discord import render_message
from cards.html import render_html
from cards.mentions import mention, plain, resolve
from cards.model import Card, Field
from cards.slack import render_blocks, render_text


def test_a_person_is_a_mention_on_their_platform_and_a_name_elsewhere() -> None:
    bob = mention("slack", "U0BOB", "bob")
    card = Card(
        title=f"Asked by {bob}", text=f"Approved by {bob} <!channel>", fields=(Field("Asked by", bob),)
    )
    blocks = str(render_blocks(card))
    assert "Approved by <@U0BOB> &lt;!channel&gt;" in blocks  # user text stays escaped
    assert "'text': 'Asked by @bob'" in blocks  # a plain_text header never draws mentions
    assert render_text(card).startswith("Asked by @bob")
    embed = render_message(card)["embeds"][0]
    assert embed["description"] == "Approved by @bob <!channel>"  # not Discord's user: by name
    assert "@bob" in render_html(card) and "\ue000" not in render_html(card)
    dana = mention("discord", "80351110224678912", "Dana")
    embed = render_message(Card(title="t", text=f"by {dana}", fields=(Field("Claimed by", dana),)))["embeds"][
        0
    ]
    assert embed["description"] == "by <@80351110224678912>"
    assert embed["fields"][0]["value"] == "<@80351110224678912>"


def test_a_marker_cannot_be_forged_or_left_half() -> None:
    # A user id that is not the platform's shape is shown by name, never pasted into markup.
    assert resolve(mention("slack", "U0X> <!here", "x"), "slack") == "@x"
    cut = f"Approved by {mention('slack', 'U0BOB', 'bob')}"[:-4]
    assert resolve(cut, "slack") == "Approved by …"
    assert plain(mention("slack", "U0BOB", "@bo\ue002b")) == "@bob"
