"""Read receipts over mail: RFC 8098 message disposition notifications.

Delta Chat asks for one with ``Chat-Disposition-Notification-To`` and shows
its message as read when the ``multipart/report`` comes back naming the
``Original-Message-ID``.
"""

from __future__ import annotations

import email.utils
from datetime import datetime
from email.message import EmailMessage

from taube.connectors.email.chatmail import CHAT_VERSION, POLICY


def build(
    *, from_addr: str, to: str, message_id: str, original: str, date: datetime, autocrypt: str
) -> EmailMessage:
    """The receipt that ``original`` (a Message-ID, no brackets) was read."""
    report = EmailMessage(policy=POLICY)
    report["From"] = from_addr
    report["To"] = to
    report["Date"] = email.utils.format_datetime(date)
    report["Message-ID"] = f"<{message_id}>"
    report["Subject"] = "Receipt Notification"
    report["Chat-Version"] = CHAT_VERSION
    report["Auto-Submitted"] = "auto-replied"
    report["Autocrypt"] = autocrypt
    report.set_content("This is a receipt notification.\n", subtype="plain")
    notification = EmailMessage(policy=POLICY)
    notification["Content-Type"] = "message/disposition-notification"
    notification.set_payload(
        f"Reporting-UA: taube\r\n"
        f"Original-Recipient: rfc822;{from_addr}\r\n"
        f"Final-Recipient: rfc822;{from_addr}\r\n"
        f"Original-Message-ID: <{original}>\r\n"
        "Disposition: manual-action/MDN-sent-automatically; displayed\r\n"
    )
    report.make_mixed()
    report.attach(notification)
    report.set_type("multipart/report")
    report.set_param("report-type", "disposition-notification")
    return report
