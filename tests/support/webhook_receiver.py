"""A notification receiver for the tests, on 127.0.0.1.

Every POST is recorded as one JSON line in LOG: its path, headers of
interest, body, arrival time, and, for Standard Webhooks requests, whether
the `standardwebhooks` package (PyPI, an independent implementation)
verifies its signature with SECRET, and whether it refuses the same request
with one byte of the body changed.

Answers follow PLAN, a comma-separated list used in order, one item per
request to the /webhook path: `500`, `429:1` (429 with `Retry-After: 1`) or
`200`; past its end, and on other paths, 200.

With SMTP_PORT_FILE, an SMTP server (aiosmtpd, from PyPI) runs too: each
mail is parsed with Python's `email` package and recorded with path
`/smtp`: its subject, ids, threading headers, parts and their texts.

Usage: python webhook_receiver.py PORT_FILE LOG SECRET PLAN [SMTP_PORT_FILE]
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

port_file, log_path, secret, plan = sys.argv[1:5]
smtp_port_file = sys.argv[5] if len(sys.argv) > 5 else None
plan = [p for p in plan.split(",") if p]
lock = threading.Lock()
seen = {"webhook": 0}
verifier = Webhook(secret)


def verify(body, headers):
    try:
        verifier.verify(body, headers)
        return True
    except Exception:
        return False


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {
            "path": self.path,
            "at": time.time(),
            "body": body.decode("utf-8"),
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "content_type": headers.get("content-type"),
        }
        status, retry_after = 200, None
        if self.path == "/webhook":
            record["verified"] = verify(body, headers)
            tampered = body[:-1] + (b" " if body[-1:] != b" " else b"x")
            record["tampered_rejected"] = not verify(tampered, headers)
            with lock:
                n = seen["webhook"]
                seen["webhook"] += 1
            if n < len(plan):
                code, _, after = plan[n].partition(":")
                status = int(code)
                retry_after = after or None
        record["answered"] = status
        write(record)
        self.send_response(status)
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()


def write(record):
    with lock:
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")


class Mails:
    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        message = email.message_from_bytes(envelope.content, policy=policy.default)
        parts = []
        texts = {}
        for part in message.walk():
            parts.append(part.get_content_type())
            if part.get_content_type() in ("text/plain", "text/html"):
                texts[part.get_content_type()] = part.get_content()
        write(
            {
                "path": "/smtp",
                "at": time.time(),
                "from": message["From"],
                "to": envelope.rcpt_tos,
                "subject": message["Subject"],
                "message_id": message["Message-ID"],
                "in_reply_to": message["In-Reply-To"],
                "references": message["References"],
                "bcc": message["Bcc"],
                "list_unsubscribe": message["List-Unsubscribe"],
                "list_unsubscribe_post": message["List-Unsubscribe-Post"],
                "header_names": list(message.keys()),
                "parts": parts,
                "text": texts.get("text/plain"),
                "html": texts.get("text/html"),
            }
        )
        return "250 OK"


if smtp_port_file:
    import socket

    from aiosmtpd.controller import Controller

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    smtp_port = probe.getsockname()[1]
    probe.close()
    controller = Controller(Mails(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    with open(smtp_port_file + ".tmp", "w") as f:
        f.write(str(smtp_port))
    os.replace(smtp_port_file + ".tmp", smtp_port_file)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(port_file + ".tmp", port_file)
server.serve_forever()
