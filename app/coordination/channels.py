"""Sending one message on one outside channel: email over SMTP, a DingTalk group robot's
webhook, an SMS gateway over HTTP.

Each sender raises DeliveryError when the message did not get through; `permanent` says
that trying again cannot help (a refused address, a wrong token). Every message carries
the notification's key, so a receiver that gets it twice can tell.
"""

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote, urlsplit

import requests

from app.types import utcnow

# DingTalk answers a bad signature, a stale timestamp or a flood with an errcode and
# HTTP 200; errcode 0 is the only success.
DINGTALK_OK = 0


class DeliveryError(Exception):
    """The channel did not take the message."""

    def __init__(self, message, permanent=False):
        super().__init__(message)
        self.permanent = permanent


def message_id(key, domain):
    """The email Message-ID of a notification: its key, made safe for the left-hand side."""
    return f"<{quote(key, safe='-_').replace('.', '%2E')}@{domain}>"


def key_of_message_id(value):
    """The key a Message-ID written by `message_id` carries, or None."""
    from urllib.parse import unquote

    value = (value or "").strip()
    if not (value.startswith("<") and value.endswith(">") and "@" in value):
        return None
    return unquote(value[1:-1].rsplit("@", 1)[0])


def send_email(*, server, sender, to, subject, body, key, domain, timeout):
    """Send one UTF-8 email through an SMTP server.

    `server` holds host, port and optionally user, password and starttls.
    """
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id(key, domain)
    message["X-Baogong-Key"] = key
    message.set_content(body, charset="utf-8", cte="base64")

    try:
        with smtplib.SMTP(server["host"], int(server.get("port") or 25), timeout=timeout) as smtp:
            if server.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if server.get("user"):
                smtp.login(server["user"], server.get("password") or "")
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        raise DeliveryError(f"SMTP refused {to}: {codes}", permanent=min(codes) >= 500) from None
    except smtplib.SMTPResponseException as error:
        text = error.smtp_error.decode("utf-8", "replace") if error.smtp_error else ""
        raise DeliveryError(
            f"SMTP {error.smtp_code} {text}".strip(), permanent=error.smtp_code >= 500
        ) from None
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"SMTP: {error}") from None


def dingtalk_sign(secret, timestamp_ms):
    """The signature of DingTalk's custom robots: HMAC-SHA256 keyed with the secret over
    "timestamp\\nsecret", in base64 (URL-encoded when it goes into the query)."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def send_dingtalk(*, url, secret, key, title, text, mobiles, timeout, session=None):
    """Post a text message to a group robot's webhook, signed when the robot has a secret.

    The key goes in the body as `msgId` and at the end of the text, so the group (and a
    receiver reading the JSON) can tell a repeat.
    """
    body = {
        "msgtype": "text",
        "text": {"content": f"{title}\n{text}\n消息编号：{key}"},
        "at": {"atMobiles": list(mobiles), "isAtAll": False},
        "msgId": key,
    }
    params = {}
    if secret:
        timestamp = int(time.time() * 1000)
        # requests URL-encodes the parameters, as the format asks of the base64 signature.
        params = {"timestamp": str(timestamp), "sign": dingtalk_sign(secret, timestamp)}
    answer = _post(session, url, params=params, body=body, headers={}, timeout=timeout)
    try:
        result = answer.json()
    except ValueError:
        raise DeliveryError(f"DingTalk answered HTTP {answer.status_code}, not JSON") from None
    errcode = result.get("errcode") if isinstance(result, dict) else None
    if errcode != DINGTALK_OK:
        message = result.get("errmsg") if isinstance(result, dict) else None
        raise DeliveryError(f"DingTalk errcode {errcode}: {message}")


def send_sms(*, url, token, to, text, key, timeout, session=None):
    """Post one text message to the SMS gateway: JSON with the number, the text and the
    key as the message id, and the gateway's bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"to": to, "text": text, "message_id": key}
    _post(session, url, params={}, body=body, headers=headers, timeout=timeout)


def _post(session, url, *, params, body, headers, timeout):
    """POST JSON (UTF-8, Chinese kept as it is); a 2xx answer is returned, anything else
    raises: 4xx other than 408 and 429 for good, the rest to be tried again."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", **headers}
    try:
        answer = (session or requests).post(
            url, params=params, data=data, headers=headers, timeout=timeout
        )
    except requests.RequestException as error:
        # The error's text holds the URL, and a robot's URL holds its access token.
        host = urlsplit(url).netloc
        raise DeliveryError(f"HTTP {type(error).__name__} posting to {host}") from None
    if not 200 <= answer.status_code < 300:
        permanent = 400 <= answer.status_code < 500 and answer.status_code not in (408, 429)
        raise DeliveryError(f"HTTP {answer.status_code}: {answer.text[:200]}", permanent=permanent)
    return answer
