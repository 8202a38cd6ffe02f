#!/usr/bin/python3
"""The delivered message is the sent message, byte for byte, apart from the
header fields the server prepends (Return-Path, X-Original-To, Delivered-To,
Received).  Every message already has From, Date and Message-ID, so hato has
no reason to add any header.  Maildir stores LF line ends, so both sides are
compared with CRLF turned into LF.

  dots              lines starting with "." and "..", a line that is just "."
                    (sent with -i, so it is text, not the end of input)
  no-final-newline  the body's last line has no line end
  utf8              8-bit UTF-8 text, sent with CRLF line ends
  large             a 50 MiB message, compared by SHA-256

Each runs against every peer (--peer): over STARTTLS with AUTH where the
server has them, in plain text to OpenSMTPD.
"""
import base64
import os

import interop
from interop import check, log


def headers(t, msgid, subject, extra=""):
    return ("From: Alice <alice@example.test>\n"
            "To: Bob <bob@example.test>\n"
            "Date: %s\n"
            "Message-ID: %s\n"
            "Subject: %s\n%s\n" % (interop.rfc2822_date(), msgid, subject, extra)).encode()


def send_and_compare(t, msg, timeout=120, wait=30):
    _, settings = t.submit_settings()
    config = t.write_config(settings)
    msgid = t.message_id()
    msg = msg.replace(b"@MSGID@", msgid.encode())
    proc = t.run_hato(config, ["-i", "-f", t.user, "bob@example.test"], msg, timeout=timeout)
    t.expect_sent(proc)
    copies = t.wait_delivered(msgid, ["bob"], timeout=wait)
    return msg, copies["bob"]


def dots(t):
    body = (b"A line.\n"
            b".starts with one dot\n"
            b"..starts with two dots\n"
            b".\n"
            b"the line above was a single dot\n"
            b"...\n"
            b". \n"
            b"..\n"
            b"last line\n")
    msg, path = send_and_compare(t, headers(t, "@MSGID@", "dots") + body)
    interop.compare_messages(msg, path)


def no_final_newline(t):
    body = b"first line\nthe last line has no line end"
    msg, path = send_and_compare(t, headers(t, "@MSGID@", "no final newline") + body)
    interop.compare_messages(msg, path)


def utf8(t):
    mime = ("MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n")
    body = ("Grüße aus Köln, naïve café, señor.\n"
            "日本語のテキスト、中文、한국어.\n"
            "Ελληνικά, русский, עברית, العربية.\n"
            "Emoji: 📬✉️ and a non-breaking\u00a0space.\n"
            "Ordinary ASCII at the end.\n").encode("utf-8")
    msg = (headers(t, "@MSGID@", "8-bit UTF-8 body", mime) + body).replace(b"\n", b"\r\n")
    msg, path = send_and_compare(t, msg)
    interop.compare_messages(msg, path)


def large(t):
    size = 50 * 1024 * 1024
    # base64 text in 76-column lines, with dot-leading lines sprinkled in so
    # dot-stuffing is exercised across the whole stream.
    lines = base64.encodebytes(os.urandom(size * 57 // 77 + 1000000)).split(b"\n")
    for i in range(0, len(lines), 997):
        lines[i] = b"." + lines[i]
    for i in range(500, len(lines), 1999):
        lines[i] = b".."
    body = b"\n".join(lines)
    msg = headers(t, "@MSGID@", "50 MiB") + body
    check(len(msg) >= size, "generated only %d bytes" % len(msg))
    log("message: %d bytes" % len(msg))
    msg, path = send_and_compare(t, msg, timeout=480, wait=240)
    want = interop.normalise(msg)
    got = interop.strip_server_headers(interop.read_delivered(path))
    check(len(got) == len(want),
          "delivered %d bytes (without the server's headers), sent %d" % (len(got), len(want)))
    check(interop.sha256(got) == interop.sha256(want),
          "the delivered 50 MiB message differs from the sent one (SHA-256 mismatch)")
    log("SHA-256 of %d bytes matches: %s" % (len(want), interop.sha256(want)))


CASES = {
    "dots": dots,
    "no-final-newline": no_final_newline,
    "utf8": utf8,
    "large": large,
}

if __name__ == "__main__":
    interop.main(lambda case, t: case(t), CASES)
