"""An approval request as an e-mail, pure: the card's fields in HTML and plain text, with its links.

The body shows what the approval card shows (``cards.approval_card``: title, text, fields, the rules
line), and one link per decision. The links open a confirmation page; nothing is decided by opening one.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape

from cards.approval_card import ApprovalView, approval_card
from cards.model import Card


@dataclass(frozen=True)
class Envelope:
    """Who the mail is from and to, and the id that makes it one message however often it is retried."""

    sender: str
    to: str
    key: str  # the outbox item's key, e.g. "sb-email-12"


def approval_email(view: ApprovalView, envelope: Envelope, links: dict[str, str]) -> EmailMessage:
    """The e-mail asking for a decision; ``links`` maps "approve" / "reject" to their page's URL."""
    card = approval_card(view)
    message = EmailMessage()
    message["Subject"] = f"Approval needed: {view.title}"
    message["From"] = envelope.sender
    message["To"] = envelope.to
    domain = envelope.sender.rpartition("@")[2] or "switchboard.invalid"
    message["Message-ID"] = make_msgid(idstring=envelope.key, domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(plain_text(card, view, links))
    message.add_alternative(html_body(card, view, links), subtype="html")
    return message


def _form_note(view: ApprovalView) -> str:
    return (
        "Approving asks for details, so approve it in chat or on the console." if view.kind == "form" else ""
    )


def plain_text(card: Card, view: ApprovalView, links: dict[str, str]) -> str:
    """The plain-text part."""
    lines = [card.title, "=" * min(len(card.title), 70), ""]
    if card.text:
        lines += [card.text, ""]
    lines += [f"{f.label}: {f.value}" for f in card.fields]
    lines += ["", *card.context, ""]
    for decision, url in links.items():
        lines.append(f"{decision.capitalize()}: {url}")
    if note := _form_note(view):
        lines.append(note)
    lines += ["", "Each link opens a page where you confirm; it works once, until the request expires."]
    return "\n".join(lines) + "\n"


BUTTON = (
    '<a href="{url}" style="display:inline-block;padding:10px 18px;margin-right:8px;border-radius:4px;'
    'color:#fff;background:{colour};text-decoration:none;font-weight:bold">{label}</a>'
)
COLOURS = {"approve": "#1a7f37", "reject": "#cf222e"}


def html_body(card: Card, view: ApprovalView, links: dict[str, str]) -> str:
    """The HTML part (every value escaped: titles and fields come from workflow inputs)."""
    rows = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0'>{escape(f.label)}</th>"
        f"<td>{escape(f.value)}</td></tr>"
        for f in card.fields
    )
    text = "<br>".join(escape(line) for line in card.text.splitlines())
    notes = "".join(f"<p style='color:#57606a;font-size:12px'>{escape(c)}</p>" for c in card.context)
    buttons = "".join(
        BUTTON.format(
            url=escape(url, quote=True), colour=COLOURS.get(d, "#444"), label=escape(d.capitalize())
        )
        for d, url in links.items()
    )
    note = f"<p>{escape(_form_note(view))}</p>" if _form_note(view) else ""
    return (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h2>{escape(card.title)}</h2><p>{text}</p><table>{rows}</table>{notes}"
        f"<p>{buttons}</p>{note}"
        "<p style='color:#57606a;font-size:12px'>Each link opens a page where you confirm; "
        "it works once, until the request expires.</p></body></html>"
    )
