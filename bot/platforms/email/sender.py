"""Hands an e-mail to the SMTP server (aiosmtplib), and says whether a refusal is worth a retry."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from bot.config import Settings
from bot.delivery.contract import DeliveryError


class SmtpSender:
    """Sends through the server the settings name (``SWITCHBOARD_SMTP_*``)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host, "SmtpSender needs SWITCHBOARD_SMTP_HOST"
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.security = settings.smtp_security
        self.user = settings.smtp_user
        self.password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self.timeout = settings.smtp_timeout

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; ``DeliveryError`` (permanent when the server refused the address)."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.user,
                password=self.password,
                use_tls=self.security == "ssl",
                start_tls=self.security == "starttls",
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"the SMTP server refused {message['To']}: {exc}",
                permanent=True,
                hint="check SWITCHBOARD_EMAIL_ADDRESSES",
            ) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"the SMTP server refused the sign-in: {exc}",
                hint="check SWITCHBOARD_SMTP_USER and SWITCHBOARD_SMTP_PASSWORD",
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            where = f"{self.host}:{self.port}"
            raise DeliveryError(f"the SMTP server {where} is unavailable: {exc}") from None
