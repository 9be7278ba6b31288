"""Real local receivers for notifications: an SMTP server, a DingTalk group robot and an
SMS gateway, for tests and for drills that send to their own endpoints.

Each records what it takes by the message's key and counts the repeats of a key. It can
be told to fail the first N requests (refused before anything is recorded) or to lose
the answer of the first N (recorded, then refused, so the sender tries again and the
receiver sees a repeat). Each is a context manager:

    with LocalReceivers(secret="SEC...", token="t") as receivers:
        run.notification_endpoints = receivers.endpoints()
        ...
        receivers.duplicates   # repeats seen, over all three
"""

import hmac
import json
import logging
import socket
import threading
import time
from collections import Counter
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from app.coordination.channels import dingtalk_sign, key_of_message_id

log = logging.getLogger(__name__)

# DingTalk refuses a timestamp more than an hour away from its own clock.
DINGTALK_MAX_SKEW_MS = 3600 * 1000
DINGTALK_BAD_SIGN = 310000


class _Recorder:
    """What a receiver saw: messages in order, a count per key, and its failure plan."""

    def __init__(self, fail_first=0, lose_first=0):
        self.lock = threading.Lock()
        self.messages = []
        self.seen = Counter()
        self.requests = 0
        self.refused = 0
        self._fail = fail_first
        self._lose = lose_first

    def fail_next(self, count):
        """Refuse the next `count` requests before recording them."""
        with self.lock:
            self._fail = count

    def lose_next(self, count):
        """Record the next `count` requests, then answer with an error."""
        with self.lock:
            self._lose = count

    def take(self, key, message):
        """Count a request; returns "fail", "lose" or "ok" for how to answer it."""
        with self.lock:
            self.requests += 1
            if self._fail > 0:
                self._fail -= 1
                return "fail"
            self.messages.append(message)
            self.seen[key] += 1
            if self._lose > 0:
                self._lose -= 1
                return "lose"
            return "ok"

    def refuse(self):
        with self.lock:
            self.requests += 1
            self.refused += 1

    @property
    def keys(self):
        with self.lock:
            return set(self.seen)

    def count(self, key):
        with self.lock:
            return self.seen[key]

    @property
    def duplicates(self):
        """Messages taken again under a key already seen."""
        with self.lock:
            return sum(n - 1 for n in self.seen.values())

    def duplicates_for(self, keys):
        with self.lock:
            return sum(n - 1 for key, n in self.seen.items() if key in keys)


def _free_port(host):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class SmtpReceiver(_Recorder):
    """A real SMTP server (aiosmtpd) on a local port; the key is read from the Message-ID.

    A refused or lost message is answered 451, a temporary failure the sender retries.
    """

    def __init__(self, host="127.0.0.1", port=None, fail_first=0, lose_first=0):
        super().__init__(fail_first, lose_first)
        self.host = host
        self.port = port
        self._controller = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        from aiosmtpd.controller import Controller

        self.port = self.port or _free_port(self.host)
        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        log.info("smtp receiver: listening on %s:%s", self.host, self.port)

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def endpoint(self):
        """The `email` endpoint of a drill run."""
        return {"host": self.host, "port": self.port}

    async def handle_DATA(self, server, session, envelope):
        """aiosmtpd's hook for each message."""
        message = message_from_bytes(envelope.content, policy=policy.default)
        key = key_of_message_id(message["Message-ID"]) or message["X-Baogong-Key"]
        answer = self.take(key, message)
        if answer == "ok":
            return "250 Message accepted"
        return "451 4.3.0 Try again later"


class _HttpReceiver(_Recorder):
    """A local HTTP server in a thread; subclasses read each POST."""

    path = "/"

    def __init__(self, host="127.0.0.1", port=0, fail_first=0, lose_first=0):
        super().__init__(fail_first, lose_first)
        self.host = host
        self.port = port
        self._server = None
        self._thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = receiver.handle(self, self.rfile.read(length))
                data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):
                log.debug("%s receiver: " + format, type(receiver).__name__, *args)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        log.info("%s: listening on %s", type(self).__name__, self.url)

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}{self.path}"

    def handle(self, request, body):
        raise NotImplementedError


class DingTalkReceiver(_HttpReceiver):
    """A group robot's webhook: checks the signature as DingTalk does and answers in its
    format (errcode 0, or an errcode with HTTP 200); the key is the body's `msgId`."""

    path = "/robot/send"

    def __init__(self, secret=None, **kwargs):
        super().__init__(**kwargs)
        self.secret = secret

    def endpoint(self):
        return {"url": self.url + "?access_token=local", "secret": self.secret}

    def signed(self, query):
        if not self.secret:
            return True
        timestamp = (query.get("timestamp") or [""])[0]
        given = (query.get("sign") or [""])[0]
        if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > (
            DINGTALK_MAX_SKEW_MS
        ):
            return False
        return hmac.compare_digest(dingtalk_sign(self.secret, timestamp).encode(), given.encode())

    def handle(self, request, body):
        if not self.signed(parse_qs(urlsplit(request.path).query)):
            self.refuse()
            return 200, {"errcode": DINGTALK_BAD_SIGN, "errmsg": "sign not match"}
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.refuse()
            return 200, {"errcode": 300001, "errmsg": "body is not JSON"}
        answer = self.take(message.get("msgId"), message)
        if answer != "ok":
            return 500, {"errcode": -1, "errmsg": "system busy"}
        return 200, {"errcode": 0, "errmsg": "ok"}


class SmsGatewayReceiver(_HttpReceiver):
    """An SMS gateway taking JSON {to, text, message_id} with a bearer token."""

    path = "/sms"

    def __init__(self, token=None, **kwargs):
        super().__init__(**kwargs)
        self.token = token

    def endpoint(self):
        return {"url": self.url, "token": self.token}

    def handle(self, request, body):
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refuse()
            return 401, {"error": "bad token"}
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.refuse()
            return 400, {"error": "body is not JSON"}
        answer = self.take(message.get("message_id"), message)
        if answer != "ok":
            return 500, {"error": "gateway busy"}
        return 200, {"accepted": True, "message_id": message.get("message_id")}


class LocalReceivers:
    """All three receivers at once, with the endpoints a drill run takes."""

    def __init__(self, secret="SEC-local-drill", token="local-drill", host="127.0.0.1"):
        self.email = SmtpReceiver(host=host)
        self.dingtalk = DingTalkReceiver(secret=secret, host=host)
        self.sms = SmsGatewayReceiver(token=token, host=host)
        self.all = (self.email, self.dingtalk, self.sms)

    def __enter__(self):
        started = []
        try:
            for receiver in self.all:
                receiver.start()
                started.append(receiver)
        except BaseException:
            for receiver in started:
                receiver.stop()
            raise
        return self

    def __exit__(self, *exc):
        for receiver in self.all:
            receiver.stop()
        return False

    def endpoints(self):
        """What DrillRun.notification_endpoints takes to send here."""
        return {
            "email": self.email.endpoint(),
            "dingtalk": self.dingtalk.endpoint(),
            "sms": self.sms.endpoint(),
        }

    @property
    def duplicates(self):
        return sum(receiver.duplicates for receiver in self.all)

    def duplicates_for(self, keys):
        return sum(receiver.duplicates_for(keys) for receiver in self.all)
