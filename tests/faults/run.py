#!/usr/bin/python3
"""The fault matrix: every step of a session, in every mode, against every
fault, each cell a run of the real `hato` program against the scripted
server (tests/scripted/smtpscript.py).

    run.py --mode plain|starttls|implicit   run one mode's cells (exit 0: all pass)
    run.py --markdown                       run every mode, print the tables
    run.py --update-doc docs/testing.md     ... and replace them in the doc
    run.py --cell starttls/rcpt1/5xx -v     one cell, with its report

Environment: HATO_BIN (required), HATO_BUILD_ROOT (CA cache, captured
output under test-output/faults/ for tests/secrets), HATO_FAULTS_JOBS
(parallel cells, default 12), HATO_FAULTS_SLACK (seconds a run may take
beyond what it waits for; default 2, 4 when HATO_BIN uses ASan).

Rows are the steps of the session; per-command rows run against a server
without PIPELINING, so each command waits for its reply and a fault hits
exactly one; the pipelined rows run against PIPELINING + CHUNKING ("p-":
AUTH PLAIN, MAIL, both RCPTs, BDAT LAST and QUIT in one write) and
PIPELINING alone ("d-": AUTH PLAIN ... DATA in one write), and the fault
hits one reply of the group.  Columns are the faults.  Each cell asserts:
the exit status, where the message ended (sent: gone; queued: still in
queue/ with one attempt; bounced: in failed/, with a report queued), each
recipient's state and maillog line, the reason given, the wall time (a
stall costs one configured timeout, nothing else waits for any), that the
server saw nothing it should not have and got the message intact, and
that stdout, stderr and the maillog hold no secret, no AUTH argument, no
Python traceback, no "internal error" and no sanitizer report.
docs/testing.md ("Fault matrix") explains each fault and outcome.

Python 3.11 standard library only.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTED = os.path.join(HERE, "..", "scripted")
sys.dont_write_bytecode = True
sys.path.insert(0, SCRIPTED)

import run_scenario  # noqa: E402
import scenarios  # noqa: E402  (registers the test passwords for redaction)
import smtpscript  # noqa: E402
from scenarios import PASSWORD, R1, R2, SENDER, USER, secrets_absent  # noqa: E402
from smtpscript import (Closed, Deviation, Step, disconnect, expect, read_bytes,  # noqa: E402
                        send_raw, stall, starttls)

# Every smtp_*_timeout in a stall cell's config: short, so they stay quick;
# a stall must cost that one timeout and no more.
TIMEOUT = 2.0
# ... and in every other cell, which must end before it: any wait for a
# timeout shows, while a loaded machine (the sanitizers, every suite at
# once) still has room to run a split reply byte by byte.
QUICK_TIMEOUT = 6.0


def cell_timeout(cell):
    return TIMEOUT if cell.fault == "stall" else QUICK_TIMEOUT
TIMEOUT_KEYS = ("smtp_connect_timeout", "smtp_helo_timeout", "smtp_starttls_timeout",
                "smtp_mail_timeout", "smtp_rcpt_timeout", "smtp_data_init_timeout",
                "smtp_data_xfer_timeout", "smtp_data_done_timeout", "smtp_quit_timeout")

MODES = ("plain", "starttls", "implicit")
MODE_TEXT = {"plain": "Plain text (`smtp_tls_security_level = none`)",
             "starttls": "STARTTLS (`smtp_tls_security_level = verify`)",
             "implicit": "Implicit TLS (`smtp_tls_wrappermode = yes`, level verify)"}
FAULTS = ("disconnect", "stall", "4xx", "5xx", "garbage", "overlong", "split", "421")
# What each fault does, for the doc.
FAULT_TEXT = {
    "disconnect": "the server closes the connection instead of replying "
                  "(connect: nothing listens, the connection is refused)",
    "stall": "the server says nothing (connect: SYNs go unanswered); every "
             "timeout is %g s in these cells" % TIMEOUT,
    "4xx": "`451 4.3.0` (`454 4.7.0` to STARTTLS and AUTH) instead of the reply",
    "5xx": "`554 5.3.0` (`554 5.7.0` to STARTTLS and AUTH) instead of the reply; "
           "after a refused EHLO the HELO is refused too",
    "garbage": "a line that is not SMTP (`hello? this is not SMTP`)",
    "overlong": "a reply line of 10,000 bytes (the limit is 2048)",
    "split": "the correct reply, one byte per write: must succeed",
    "421": "`421 4.3.2` and the server closes the connection (RFC 5321 section 3.8: "
           "a server shutting down)",
}

GARBAGE = b"hello? this is not SMTP\r\n"
GREETING = b"220 scripted.example.test ESMTP faults\r\n"
EHLO = r"EHLO client\.example\.test"
MAIL = r"MAIL FROM:<sender@example\.test>(?: [A-Z0-9]+=\S+)*"


def rcpt_re(addr):
    return r"RCPT TO:<%s>(?: [A-Z0-9]+=\S+)*" % re.escape(addr)


def ehlo_reply(*caps):
    lines = ["scripted.example.test greets client.example.test"] + list(caps)
    return "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                   for i, l in enumerate(lines)).encode()


# -- server steps of the matrix's own -----------------------------------------


class send_bytes(Step):
    """A reply, whole or one byte per write."""

    def __init__(self, data, split=False):
        self.data, self.split = data, split

    def describe(self):
        return "send %s%s" % (self.data[:40], " one byte at a time" if self.split else "")

    def run(self, s):
        if self.split:
            send_raw(self.data, chunked=1, delay=0.001).run(s)
        else:
            s.write(self.data)


class linger(Step):
    """After a fault: let the client end as it will.  QUIT gets 221 and RSET
    250; any other command is a deviation (nothing may follow a fault but
    the goodbye).  Bytes that are not a command line (a TLS alert, the rest
    of a message) are ignored.  The client must close within `limit`."""

    def __init__(self, limit):
        self.limit = limit

    def describe(self):
        return "linger (QUIT and RSET answered)"

    def run(self, s):
        deadline = time.monotonic() + self.limit
        while True:
            i = s.buf.find(b"\r\n")
            if i >= 0:
                raw = s._consume(i + 2)[:-2]
                text = raw.decode("latin-1")
                word = text.split(" ")[0].upper()
                if word == "QUIT":
                    s.result.note("C", "QUIT")
                    s.result.lines.append(smtpscript.Line(text, len(s.result.reads) - 1, s.tls))
                    s.write(b"221 2.0.0 bye\r\n")
                    continue
                if word == "RSET":
                    s.result.note("C", "RSET")
                    s.result.lines.append(smtpscript.Line(text, len(s.result.reads) - 1, s.tls))
                    s.write(b"250 2.0.0 ok\r\n")
                    continue
                if re.fullmatch(r"(HELO|EHLO|MAIL|RCPT|DATA|BDAT|AUTH|STARTTLS|NOOP)\b.*", text,
                                re.I | re.S):
                    raise Deviation("client sent %r after the fault"
                                    % smtpscript.redact_client_line(text, False))
                continue
            if len(s.buf) > 65536:
                del s.buf[:-8]   # body or TLS bytes: keep only a possible line start
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deviation("client still connected %gs after the fault" % self.limit)
            try:
                if not s._recv(left):
                    return
            except socket.timeout:
                raise Deviation("client still connected %gs after the fault" % self.limit)


class stall_unread(Step):
    """Stop reading and answering until the hato run is over: the client's
    writes fill the buffers and block (a stall in the middle of the body).
    Its end cannot be seen on the socket (a client that gives up closes
    with bytes still queued behind a zero window, so its FIN comes only
    once they are read), so the cell says when the process exited
    (`done`); then the rest is read to EOF."""

    def __init__(self, done, limit):
        self.done, self.limit = done, limit

    def describe(self):
        return "stall without reading until the client exits"

    def run(self, s):
        s.result.note("*", "server stops reading")
        if not self.done.wait(self.limit):
            raise Deviation("client still running %gs after the stall began" % self.limit)
        n = 0
        deadline = time.monotonic() + self.limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deviation("no EOF %gs after the client exited" % self.limit)
            try:
                if not s._recv(left):
                    break
            except socket.timeout:
                continue
            n += len(s.buf)
            s.buf.clear()
        s.result.note("*", "the client exited; then read %d bytes to EOF" % n)
        raise Closed()


class drain_body(Step):
    """Read the rest of a message body up to CRLF.CRLF, or EOF (the client
    may abandon the body after a fault)."""

    def __init__(self, limit):
        self.limit = limit

    def run(self, s):
        deadline = time.monotonic() + self.limit
        tail = b""
        while True:
            data = tail + bytes(s.buf)
            i = data.find(b"\r\n.\r\n")
            if i >= 0:
                keep = data[i + 5:]
                s.buf[:] = keep
                s.result.note("C", "<end of the message>")
                return
            tail = data[-4:]
            s.buf.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deviation("the body did not end within %gs" % self.limit)
            try:
                if not s._recv(left):
                    raise Closed()
            except socket.timeout:
                raise Deviation("the body did not end within %gs" % self.limit)


class tls_fault(Step):
    """A fault in the TLS handshake: after the ClientHello, the server sends
    `data` (an SMTP reply, garbage) or nothing and hangs up."""

    def __init__(self, data=None):
        self.data = data

    def describe(self):
        return "TLS handshake answered with %r" % (self.data[:30] if self.data else b"EOF")

    def run(self, s):
        read_bytes(5).run(s)   # the start of the ClientHello
        s.result.partial = b""
        if self.data is None:
            s.result.note("*", "server hangs up in the TLS handshake")
            raise Closed()
        s.write(self.data, label="%d bytes instead of a ServerHello" % len(self.data))
        s.after_failed_handshake = True


class BioSocket:
    """A server TLS connection on ssl.MemoryBIO, so the matrix controls how
    the handshake's bytes are written.  Enough of a socket for smtpscript.
    """

    def __init__(self, sock, ctx):
        import ssl
        self.ssl, self.raw = ssl, sock
        self.obj_in, self.obj_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.obj_in, self.obj_out, server_side=True)

    def _flush(self, split=False):
        data = self.obj_out.read()
        if not data:
            return
        if split:
            for i in range(len(data)):
                self.raw.sendall(data[i:i + 1])   # TCP_NODELAY: a segment each
        else:
            self.raw.sendall(data)

    def _fill(self):
        data = self.raw.recv(65536)
        if not data:
            self.obj_in.write_eof()
            return False
        self.obj_in.write(data)
        return True

    def handshake(self, split):
        while True:
            try:
                self.obj.do_handshake()
                self._flush(split)
                return
            except self.ssl.SSLWantReadError:
                self._flush(split)
                if not self._fill():
                    raise OSError("EOF in the TLS handshake")

    def settimeout(self, t):
        self.raw.settimeout(t)

    def recv(self, n):
        while True:
            try:
                data = self.obj.read(n)
                self._flush()
                return data
            except self.ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    return b""
            except self.ssl.SSLZeroReturnError:
                return b""

    def sendall(self, data):
        self.obj.write(data)
        self._flush()

    def close(self):
        self.raw.close()

    def version(self):
        return self.obj.version()

    def cipher(self):
        return self.obj.cipher()


class tls_split_step(Step):
    """The TLS handshake with each byte the server sends in a write of its
    own, so the client meets its records cut at every point; the session
    then goes on over the BioSocket."""

    def describe(self):
        return "TLS handshake, server bytes one per write"

    def run(self, s):
        ctx = s.server_context()
        if s.buf:
            raise Deviation("client sent %r before the handshake" % bytes(s.buf[:40]))
        s.sock.settimeout(s.read_timeout)
        b = BioSocket(s.sock, ctx)
        try:
            b.handshake(split=True)
        except (OSError, b.ssl.SSLError) as e:
            raise Deviation("TLS handshake failed: %s" % e)
        s.sock = b
        s.tls = True
        s.result.tls_version = b.version()
        s.result.note("*", "TLS handshake done, server bytes one per write: %s" % b.version())


class read_group(Step):
    """The pipelined group, read whole before any reply: AUTH PLAIN with its
    initial response (checked), MAIL and both RCPTs, then DATA (without
    CHUNKING).  With CHUNKING the group ends after the RCPTs: the content
    waits for the 235 (read_chunk).  All in one write."""

    def __init__(self, chunking):
        self.chunking = chunking

    def describe(self):
        return "read the pipelined group (%s)" % ("to RCPT" if self.chunking else "DATA")

    def run(self, s):
        first = len(s.result.lines)
        expect(r"AUTH PLAIN \S+", check=plain_ok).run(s)
        # What follows is the transaction, not SASL data: show it.
        s.in_auth = False
        expect(MAIL).run(s)
        expect(rcpt_re(R1)).run(s)
        expect(rcpt_re(R2)).run(s)
        if not self.chunking:
            expect("DATA").run(s)
        writes = {l.chunk for l in s.result.lines[first:]}
        if len(writes) != 1:
            raise Deviation("the pipelined group came in %d writes, not one" % len(writes))


class read_chunk(Step):
    """After the 235: BDAT n LAST with its n octets and QUIT, in one write."""

    def describe(self):
        return "read BDAT n LAST and QUIT"

    def run(self, s):
        first = len(s.result.lines)
        line = s.read_line(what="BDAT n LAST")
        m = re.fullmatch(r"BDAT (\d+) LAST", line.text)
        if not m:
            raise Deviation("expected BDAT n LAST, client sent %r" % line.text)
        n = int(m.group(1))
        deadline = time.monotonic() + s.read_timeout
        while len(s.buf) < n:
            if not s._recv(max(deadline - time.monotonic(), 0.001)):
                raise Deviation("client closed inside the BDAT chunk")
        s.result.messages.append(s._consume(n))
        s.result.note("C", "<BDAT chunk: %d bytes>" % n)
        expect("QUIT").run(s)
        writes = {l.chunk for l in s.result.lines[first:]}
        if len(writes) != 1:
            raise Deviation("BDAT and QUIT came in %d writes, not one" % len(writes))


def plain_ok(m):
    import base64
    try:
        parts = base64.b64decode(m.group(0).split(" ")[2], validate=True).split(b"\0")
    except ValueError:
        return "AUTH PLAIN response is not base64"
    if parts[1:] != [USER.encode(), PASSWORD.encode()]:
        return "AUTH PLAIN response does not hold the user and password"
    return None


def login_ok(want):
    def check(m):
        import base64
        try:
            got = base64.b64decode(m.group(0), validate=True).decode()
        except ValueError:
            return "not base64"
        return None if got == want else "the AUTH LOGIN response is not the expected one"
    return check


# -- the session as phases --------------------------------------------------
# A phase: what the server reads (steps), the reply it then gives, and the
# codes the fault replies use.  A cell plays every phase before the faulted
# one as is, then the fault, then the continuation the fault calls for.


class Phase:
    def __init__(self, row, reads, reply, code4="451 4.3.0", code5="554 5.3.0",
                 after_refusal="end"):
        self.row, self.reads, self.reply = row, reads, reply
        self.code4, self.code5 = code4, code5
        # What follows a refusal: "end" (the client says goodbye), "next"
        # (the session goes on: one recipient of two refused), "helo" (a
        # refused EHLO is followed by HELO)
        self.after_refusal = after_refusal


BODY_SMALL = b"a small message body\n" * 4
# Larger than what loopback buffers hold (the server's receive buffer is
# made small for these cells), so the client is still writing when the
# fault comes.
BODY_LARGE = b"".join(b"line %07d of a large body, to keep the client writing\n" % i
                      for i in range(120000))


def message(body):
    return (b"From: Sender <sender@example.test>\nTo: rcpt1@example.test, rcpt2@example.test\n"
            b"Subject: fault matrix\nDate: Mon, 01 Jan 2024 12:00:00 +0000\n"
            b"Message-ID: <faults.1@client.example.test>\n\n" + body)


AUTH_CAPS = "AUTH PLAIN LOGIN"


def phases(mode, mech, pipelined):
    """The session's phases for a mode; mech: LOGIN or PLAIN."""
    ps = []
    if mode == "implicit":
        ps.append(Phase("handshake", [], None))
    ps.append(Phase("greeting", [], GREETING))
    if mode == "starttls":
        ps.append(Phase("ehlo", [expect(EHLO)], ehlo_reply("STARTTLS", "ENHANCEDSTATUSCODES"),
                        after_refusal="helo"))
        ps.append(Phase("starttls", [expect("STARTTLS")], b"220 2.0.0 Ready to start TLS\r\n",
                        code4="454 4.7.0", code5="554 5.7.0"))
        ps.append(Phase("handshake", [], None))
        ehlo_row = "ehlo2"
    else:
        ehlo_row = "ehlo"
    caps = ["ENHANCEDSTATUSCODES", AUTH_CAPS]
    if pipelined:
        caps = ["PIPELINING"] + (["CHUNKING"] if pipelined == "p" else []) + caps
    ps.append(Phase(ehlo_row, [expect(EHLO)], ehlo_reply(*caps), after_refusal="helo"))
    if pipelined:
        return ps
    a = dict(code4="454 4.7.0", code5="554 5.7.0")
    if mech == "LOGIN":
        ps.append(Phase("auth-login-1", [expect(r"AUTH LOGIN")], b"334 VXNlcm5hbWU6\r\n", **a))
        ps.append(Phase("auth-login-2", [expect(r"\S+", check=login_ok(USER))],
                        b"334 UGFzc3dvcmQ6\r\n", **a))
        ps.append(Phase("auth-login-3", [expect(r"\S+", check=login_ok(PASSWORD))],
                        b"235 2.7.0 Authentication successful\r\n", **a))
    else:
        ps.append(Phase("auth-plain", [expect(r"AUTH PLAIN \S+", check=plain_ok)],
                        b"235 2.7.0 Authentication successful\r\n", **a))
    ps.append(Phase("mail", [expect(MAIL)], b"250 2.1.0 Ok\r\n"))
    ps.append(Phase("rcpt1", [expect(rcpt_re(R1))], b"250 2.1.5 Ok\r\n", after_refusal="next"))
    ps.append(Phase("rcpt2", [expect(rcpt_re(R2))], b"250 2.1.5 Ok\r\n", after_refusal="next"))
    ps.append(Phase("data", [expect("DATA")], b"354 End data with <CR><LF>.<CR><LF>\r\n"))
    ps.append(Phase("mid-body", [], None))
    ps.append(Phase("dot", [], b"250 2.0.0 Ok: queued as FAULTS\r\n"))
    ps.append(Phase("quit", [expect("QUIT")], b"221 2.0.0 bye\r\n"))
    return ps


# The pipelined rows: a server with PIPELINING, and with CHUNKING ("p-")
# or without it ("d-").  Stages: what the server reads, then its replies in
# order, (row, normal reply).
OK235 = b"235 2.7.0 Authentication successful\r\n"
GROUPS = {
    "p": [(lambda: [read_group(chunking=True)],
           [("p-auth", OK235), ("p-mail", b"250 2.1.0 Ok\r\n"),
            ("p-rcpt1", b"250 2.1.5 Ok\r\n"), ("p-rcpt2", b"250 2.1.5 Ok\r\n")]),
          # the content and QUIT: one write once the login is confirmed
          (lambda: [read_chunk()],
           [("p-bdat", b"250 2.0.0 Ok: queued as FAULTS\r\n"),
            ("p-quit", b"221 2.0.0 bye\r\n")])],
    "d": [(lambda: [read_group(chunking=False)],
           [("d-auth", OK235), ("d-mail", b"250 2.1.0 Ok\r\n"),
            ("d-rcpt1", b"250 2.1.5 Ok\r\n"), ("d-rcpt2", b"250 2.1.5 Ok\r\n"),
            ("d-data", b"354 End data with <CR><LF>.<CR><LF>\r\n")]),
          # the content, the dot and QUIT: one write after the 354
          (lambda: [smtpscript.expect_data(), expect("QUIT")],
           [("d-dot", b"250 2.0.0 Ok: queued as FAULTS\r\n"),
            ("d-quit", b"221 2.0.0 bye\r\n")])],
}
ROWS_PIPELINED = [row for g in ("p", "d") for _, replies in GROUPS[g] for row, _ in replies]

ROWS_SESSION = ["connect", "greeting", "ehlo", "starttls", "handshake", "ehlo2",
                "auth-login-1", "auth-login-2", "auth-login-3", "auth-plain", "mail", "rcpt1",
                "rcpt2", "data", "mid-body", "dot", "quit"]
ROW_TEXT = {
    "connect": "TCP connection", "greeting": "220 greeting", "ehlo": "EHLO (first)",
    "starttls": "STARTTLS", "handshake": "TLS handshake", "ehlo2": "EHLO after TLS",
    "auth-login-1": "AUTH LOGIN: 334 Username", "auth-login-2": "AUTH LOGIN: 334 Password",
    "auth-login-3": "AUTH LOGIN: 235", "auth-plain": "AUTH PLAIN: 235", "mail": "MAIL",
    "rcpt1": "RCPT 1 of 2", "rcpt2": "RCPT 2 of 2", "data": "DATA: 354",
    "mid-body": "in the body", "dot": "final dot: 250", "quit": "QUIT: 221",
    "p-auth": "PIPELINING+CHUNKING: AUTH PLAIN", "p-mail": "PIPELINING+CHUNKING: MAIL",
    "p-rcpt1": "PIPELINING+CHUNKING: RCPT 1", "p-rcpt2": "PIPELINING+CHUNKING: RCPT 2",
    "p-bdat": "PIPELINING+CHUNKING: BDAT LAST", "p-quit": "PIPELINING+CHUNKING: QUIT",
    "d-auth": "PIPELINING: AUTH PLAIN", "d-mail": "PIPELINING: MAIL",
    "d-rcpt1": "PIPELINING: RCPT 1", "d-rcpt2": "PIPELINING: RCPT 2",
    "d-data": "PIPELINING: DATA: 354", "d-dot": "PIPELINING: final dot",
    "d-quit": "PIPELINING: QUIT",
}


def applies(mode, row, fault):
    """Whether the cell exists; None if it does (else the reason it is n/a)."""
    if row in ("starttls", "ehlo2") and mode != "starttls":
        return "no STARTTLS in this mode"
    if row == "handshake" and mode == "plain":
        return "no TLS"
    if row == "connect" and fault not in ("disconnect", "stall"):
        return "no reply at connect"
    if row == "mid-body" and fault == "split":
        return "no reply in the body"
    return None


# -- expected outcomes ------------------------------------------------------
# docs/queue.md: a temporary failure keeps the message queued and exits 0;
# a server's 5xx bounces it (failed/, a report for the sender) with 69
# (EX_UNAVAILABLE, "refused"); a message the server accepted is sent,
# whatever happens after.  Refused logins defer (smtp_sasl_auth_soft_bounce
# = yes); a refused STARTTLS at level verify defers (TLS trouble is never
# final, docs/architecture.md "Errors").

def expected(row, fault):
    """(exit status, disposition, {recipient index: state}) for a cell."""
    partial = None
    kind = row.split("-", 1)[1] if row[:2] in ("p-", "d-") else row
    if kind == "rcpt1":
        partial = 0
    elif kind == "rcpt2":
        partial = 1
    if fault == "split" or kind == "quit":
        return 0, "sent", {0: "sent", 1: "sent"}
    if fault == "5xx":
        if kind in ("starttls", "handshake") or kind.startswith("auth"):
            return 0, "queued", {0: "pending", 1: "pending"}
        if partial is not None:
            return 69, "bounced", {partial: "bounced", 1 - partial: "sent"}
        return 69, "bounced", {0: "bounced", 1: "bounced"}
    if fault == "4xx" and partial is not None:
        return 0, "queued", {partial: "pending", 1 - partial: "sent"}
    return 0, "queued", {0: "pending", 1: "pending"}


# The setting a stall at each step must name (the one a user changes).
STALL_KEY = {"connect": "smtp_connect_timeout", "starttls": "smtp_starttls_timeout",
             "handshake": "smtp_starttls_timeout", "mail": "smtp_mail_timeout",
             "rcpt1": "smtp_rcpt_timeout", "rcpt2": "smtp_rcpt_timeout",
             "data": "smtp_data_init_timeout", "mid-body": "smtp_data_xfer_timeout",
             "dot": "smtp_data_done_timeout", "bdat": "smtp_data_done_timeout",
             "quit": None}


def stall_key(row):
    kind = row[2:] if row[:2] in ("p-", "d-") else row
    return STALL_KEY.get(kind, "smtp_helo_timeout")   # greeting, EHLO, AUTH


def waits(row, fault):
    """Whether the cell must wait out one timeout (a stall)."""
    return fault == "stall"


# -- building a cell's script ---------------------------------------------


def fault_steps(phase, fault, limit):
    """The server's steps in place of `phase`'s reply."""
    if fault == "disconnect":
        return [disconnect()]
    if fault == "stall":
        return [stall(limit=limit)]
    if fault == "421":
        return [send_bytes(("421 4.3.2 scripted fault (%s): shutting down\r\n"
                            % phase.row).encode()), disconnect()]
    code = phase.code4 if fault == "4xx" else phase.code5
    if fault in ("4xx", "5xx"):
        data = ("%s scripted fault (%s)\r\n" % (code, phase.row)).encode()
    elif fault == "garbage":
        data = GARBAGE
    else:  # overlong
        prefix = phase.reply[:4] if phase.reply else b"250 "
        data = prefix + b"x" * 10000 + b"\r\n"
    return [send_bytes(data)]


class Cell:
    def __init__(self, mode, row, fault):
        self.mode, self.row, self.fault = mode, row, fault
        self.name = "%s/%s/%s" % (mode, row, fault)
        self.outcome = None     # "0 queued" etc.
        self.failures = []
        self.report = ""
        self.elapsed = 0.0
        self.message = b""
        self.exited = threading.Event()     # set when the hato run is over


class FaultCase(run_scenario.Case):
    """run_scenario.Case with its captured output under test-output/faults."""

    def __init__(self, cell):
        self.name, self.manual = cell.name.replace("/", "-"), False
        self.dir = tempfile.mkdtemp(prefix="hato-faults-%s-" % self.name)
        self.failures, self.srv, self.run, self.runs = [], None, None, []
        self.host, self.maillog = "127.0.0.1", None
        self.outdir = run_scenario.output_dir("faults", cell.name.replace("/", os.sep))


class NoServer:
    """Stands for the server where nothing accepts (connect cells)."""

    def __init__(self, port, keep=()):
        self.port, self.keep = port, keep

    def finish(self, *a, **k):
        for s in self.keep:
            s.close()
        r = smtpscript.Result()
        r.done = True
        r.connections = 1   # nothing to judge on the server side
        return r


def build_script(cell, limit):
    """The server script for a session cell."""
    mech = "LOGIN" if cell.row.startswith("auth-login") else "PLAIN"
    pipelined = cell.row[:2] in ("p-", "d-") and cell.row[0]
    ps = phases(cell.mode, mech, pipelined)
    script = []
    target = cell.row if not pipelined else None
    for p in ps:
        script += p.reads
        if p.row == "handshake":
            if p.row == target:
                if cell.fault == "split":
                    script.append(tls_split_step())
                    continue
                data = {"disconnect": None, "4xx": b"454 4.7.0 scripted: no TLS now\r\n",
                        "5xx": b"554 5.7.0 scripted: no TLS\r\n", "garbage": GARBAGE,
                        "overlong": b"x" * 10000 + b"\r\n",
                        "421": b"421 4.3.2 scripted: shutting down\r\n"}
                if cell.fault == "stall":
                    return script + [stall(limit=limit)]
                step = tls_fault(data[cell.fault])
                return script + [step] + ([] if data[cell.fault] is None else [linger(limit)])
            script.append(starttls())
            continue
        if p.row == "mid-body":
            if target == "mid-body":
                script.append(read_bytes(4096))
                steps = fault_steps(p, cell.fault, limit)
                if cell.fault == "stall":
                    steps = [stall_unread(cell.exited, limit)]
                if cell.fault in ("disconnect", "stall", "421"):
                    return script + steps
                return script + steps + [drain_body(limit), linger(limit)]
            continue
        if p.row == "dot":
            script.append(smtpscript.expect_data(timeout=limit))
        if p.row != target:
            script.append(send_bytes(p.reply))
            continue
        if cell.fault == "split":
            script.append(send_bytes(p.reply, split=True))
            continue
        steps = fault_steps(p, cell.fault, limit)
        if cell.fault in ("disconnect", "stall", "421"):
            return script + steps
        script += steps
        if cell.fault in ("4xx", "5xx"):
            if p.after_refusal == "next":
                continue      # the other recipient, DATA, the body, QUIT
            if p.after_refusal == "helo" and cell.fault == "5xx":
                script += [expect(r"HELO client\.example\.test"), send_bytes(
                    ("%s scripted fault (HELO)\r\n" % p.code5).encode())]
        return script + [linger(limit)]
    if pipelined:
        return script + pipelined_script(GROUPS[pipelined], cell, limit)
    script.append(linger(limit))
    return script


def pipelined_script(stages, cell, limit):
    """The server's part after EHLO for a pipelined cell: each stage's reads,
    then its replies, the faulted one replaced."""
    script = []
    refused = None      # the row of a refused reply
    for reads, replies in stages:
        script += reads()
        for row, reply in replies:
            kind = row[2:]
            if row == cell.row:
                if cell.fault == "split":
                    script.append(send_bytes(reply, split=True))
                    continue
                steps = fault_steps(Phase(row, [], reply), cell.fault, limit)
                if cell.fault not in ("4xx", "5xx"):
                    # nothing the client could take as the next replies
                    return script + steps + ([] if cell.fault in ("disconnect", "stall", "421")
                                             else [linger(limit)])
                code = {"4xx": "451 4.3.0", "5xx": "554 5.3.0"}[cell.fault]
                if kind == "auth":
                    code = {"4xx": "454 4.7.0", "5xx": "554 5.7.0"}[cell.fault]
                script.append(send_bytes(("%s scripted fault (%s)\r\n" % (code, row)).encode()))
                refused = kind
                continue
            # After a refusal in the group, a real server refuses what
            # depends on it: no login, no MAIL; no MAIL, no RCPT, DATA, BDAT.
            if refused == "auth" and kind == "mail":
                script.append(send_bytes(b"530 5.7.0 Authentication required\r\n"))
            elif refused in ("auth", "mail") and kind != "quit":
                script.append(send_bytes(b"503 5.5.1 Error: need MAIL command\r\n"))
            else:
                script.append(send_bytes(reply))
        if refused not in (None, "rcpt1", "rcpt2"):
            break       # the transaction is over: no further stage
    return script + [linger(limit)]


# -- running and judging a cell --------------------------------------------


def wire_form(msg, chunking):
    """The message as it must cross the wire: CRLF line ends, and after DATA
    dot-stuffed and ended by CRLF.CRLF (BDAT carries it as is)."""
    if not chunking:
        return smtpscript.dot_stuff(msg)
    return b"".join(l + b"\r\n" for l in msg.rstrip(b"\n").split(b"\n"))


def queue_files(t):
    """{"queue": [...], "failed": [...]}: the original message's envelope
    files (sender sender@example.test), not the reports hato queued."""
    out = {}
    for sub in ("queue", "failed"):
        d = t.path(os.path.join("spool", sub))
        names = []
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if "." in n:
                continue
            with open(os.path.join(d, n), "rb") as f:
                head = f.read(4096)
            if b"\nsender sender@example.test\n" in head:
                names.append(n)
        out[sub] = names
    return out


def null_sender_queued(t):
    """Whether a message from <> (a non-delivery report) is in queue/."""
    d = t.path(os.path.join("spool", "queue"))
    for n in os.listdir(d) if os.path.isdir(d) else []:
        if "." not in n:
            with open(os.path.join(d, n), "rb") as f:
                if b"\nsender \n" in f.read(4096):
                    return True
    return False


def rcpt_states(t, sub, name):
    """{index: state} from the message's state file."""
    states = {}
    try:
        with open(t.path(os.path.join("spool", sub, name + ".state"))) as f:
            for line in f:
                m = re.match(r"rcpt (\d+) (\w+)", line)
                if m:
                    states[int(m.group(1))] = m.group(2)
    except OSError:
        pass
    return states


BAD_OUTPUT = [(re.compile(r"Traceback \(most recent call last\)"), "a Python traceback"),
              (re.compile(r"internal error", re.I), "\"internal error\""),
              (re.compile(r"Sanitizer|runtime error:"), "a sanitizer report")]


def run_cell(cell, slack):
    t = FaultCase(cell)
    limit = QUICK_TIMEOUT + slack + 8.0
    try:
        if cell.row == "connect":
            s = socket.socket()
            s.bind(("127.0.0.1", 0))   # held, so no other cell's server takes it
            port = s.getsockname()[1]
            if cell.fault == "disconnect":
                keep = (s,)             # bound, not listening: refused
            else:
                # backlog 0 and its queue filled: further SYNs go unanswered
                s.listen(0)
                c = socket.socket()
                c.connect(("127.0.0.1", port))
                keep = (s, c)
            t.srv = NoServer(port, keep)
        else:
            script = build_script(cell, limit)
            t.serve(script, tls=cell.mode != "plain", later_421=True)
            # Case.hato() finishes the server as soon as the process is over:
            # tell the server first (stall_unread waits for it).
            finish = t.srv.finish

            def finish_after_exit(*a, **k):
                cell.exited.set()
                return finish(*a, **k)
            t.srv.finish = finish_after_exit
            if cell.row == "mid-body":
                # A small receive window (inherited from the listener by
                # the accepted socket) keeps the client writing the body.
                t.srv.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        keys = {k: "%gs" % cell_timeout(cell) for k in TIMEOUT_KEYS}
        keys["maillog_file"] = t.path("maillog")
        if cell.mode != "plain":
            keys.update(smtp_tls_security_level="verify", smtp_tls_CAfile=t.ca() + "/ca.crt")
        if cell.mode == "implicit":
            keys["smtp_tls_wrappermode"] = "yes"
        keys["smtp_sasl_mechanism_filter"] = "login" if cell.row.startswith("auth-login") \
            else "plain"
        t.sasl_config(USER, PASSWORD, **keys)
        cell.message = message(BODY_LARGE if cell.row == "mid-body" else BODY_SMALL)
        # -v -v: the protocol trace, so every fault path shows its redaction
        t.hato(["-v", "-v", "-f", SENDER, R1, R2], cell.message)
        judge(t, cell, slack)
    except Exception as e:   # a harness bug is a failing cell, named
        import traceback
        t.fail("harness error: %s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
    finally:
        cell.failures = list(t.failures)
        try:
            cell.report = report_text(t, cell)
        except Exception as e:
            cell.report = "no report: %s" % e
        if t.outdir:
            with open(os.path.join(t.outdir, "report.txt"), "w") as f:
                f.write(cell.report + "\n")
        t.cleanup()
        if os.environ.get("HATO_KEEP"):
            cell.report += "\nkept %s" % t.dir
        else:
            shutil.rmtree(t.dir, ignore_errors=True)
    return cell


def judge(t, cell, slack):
    run = t.run
    cell.elapsed = run.elapsed
    t.server_ok()
    files = queue_files(t)
    if files["failed"]:
        disp = "bounced"
        states = rcpt_states(t, "failed", files["failed"][0])
    elif files["queue"]:
        disp = "queued"
        states = rcpt_states(t, "queue", files["queue"][0])
    else:
        disp, states = "sent", {0: "sent", 1: "sent"}
    cell.outcome = "%d %s" % (run.code, disp)
    nsent = sum(1 for v in states.values() if v == "sent")
    if disp != "sent" and nsent:
        cell.outcome += " (%d of 2 sent)" % nsent
    want_code, want_disp, want_states = expected(cell.row, cell.fault)
    t.check(run.code == want_code, "exit status %d, expected %d" % (run.code, want_code))
    t.check(disp == want_disp, "the message is %s, expected %s (queue %s, failed %s)"
            % (disp, want_disp, files["queue"], files["failed"]))
    t.check(len(files["queue"]) + len(files["failed"]) <= 1,
            "the message is in more than one place: %s" % files)
    if disp == want_disp:
        for i, st in want_states.items():
            t.check(states.get(i) == st, "recipient %d is %s, expected %s"
                    % (i + 1, states.get(i), st))
    if disp == "queued":
        t.check("queued as" in run.stderr, "stderr does not say the message was queued")
    # Time: a stall costs one timeout; nothing else waits for any.
    if waits(cell.row, cell.fault):
        t.check(run.elapsed >= TIMEOUT - 0.2, "gave up after %.2fs, before the %gs timeout"
                % (run.elapsed, TIMEOUT))
        # In the body the timeout starts only once the client's writes
        # block, after megabytes have filled the buffers: a second slack.
        bound = slack * (2 if cell.row == "mid-body" else 1)
        t.check(run.elapsed < TIMEOUT + bound, "took %.2fs: more than the %gs timeout + %gs"
                % (run.elapsed, TIMEOUT, bound))
        key = stall_key(cell.row)
        if key:
            t.check(re.search(r"time[ds]? ?out", run.stderr, re.I) and key in run.stderr,
                    "stderr does not say it timed out, naming %s" % key)
    else:
        t.check(run.elapsed < QUICK_TIMEOUT, "took %.2fs: waited for a timeout (%gs) where "
                "nothing should" % (run.elapsed, QUICK_TIMEOUT))
        t.check(not re.search(r"timed out", run.stderr), "a timeout ended it")
    if disp != "sent" or want_disp != "sent":
        t.check(run.stderr.strip() != "", "nothing on stderr about the failure")
    if "sent" in want_states.values():
        # Whoever received it received the message exactly.
        msgs = run.server.messages
        want = wire_form(cell.message, chunking=cell.row.startswith("p-"))
        if t.check(len(msgs) == 1, "%d messages on the wire, expected 1" % len(msgs)):
            t.check(msgs[0] == want, "the message on the wire differs from what was sent "
                    "(%d bytes, expected %d)" % (len(msgs[0]), len(want)))
    log = ""
    if t.maillog and os.path.exists(t.maillog):
        with open(t.maillog, errors="replace") as f:
            log = f.read()
    # The maillog: one line per recipient saying what became of it, with a
    # status code of the right class; a bounce announces its report.
    for i, st in want_states.items():
        status, dsn = {"sent": ("sent", "2"), "pending": ("deferred", "4"),
                       "bounced": ("bounced", "5")}[st]
        addr = (R1, R2)[i]
        t.check(re.search(r"to=<%s>, .*dsn=%s\.\d+\.\d+, status=%s " % (re.escape(addr), dsn,
                                                                    status), log),
                "the maillog has no status=%s line with a %s.x.x code for <%s>"
                % (status, dsn, addr))
    if want_disp == "bounced":
        t.check("sender non-delivery notification" in log,
                "the maillog does not name the non-delivery report")
        t.check(null_sender_queued(t), "no non-delivery report waits in the queue")
    # (Not in the body: a 421 there reaches a client still writing, whose
    # next write meets the closed connection; it reads replies only after
    # the end of data, so the reset is the reason it gives.)
    if cell.fault in ("4xx", "5xx", "421") and cell.row not in ("handshake", "quit") and \
            not cell.row.endswith("-quit") and (cell.row, cell.fault) != ("mid-body", "421"):
        # The reason recorded for the recipients the fault hit is the
        # server's reply (stderr has the -v trace, so the maillog tells).
        for i, st in want_states.items():
            if st == "sent":
                continue
            m = re.search(r"to=<%s>, .*status=\w+ \((.*)\)$" % re.escape((R1, R2)[i]), log, re.M)
            reason = m.group(1) if m else ""
            t.check("scripted fault" in reason, "the reason given for <%s> is not the "
                    "server's reply: %r" % ((R1, R2)[i], reason))
    for text, where in ((run.stderr, "stderr"), (run.stdout, "stdout"), (log, "maillog")):
        secrets_absent(t, text, where)
        for rx, what in BAD_OUTPUT:
            t.check(not rx.search(text), "%s holds %s" % (where, what))


def report_text(t, cell):
    out = ["cell %s: %s" % (cell.name, "FAIL" if cell.failures else "pass")]
    for f in cell.failures:
        out.append("  - " + f)
    if t.run:
        out.append("exit %d after %.2fs" % (t.run.code, t.run.elapsed))
        out.append("--- stderr\n%s--- server transcript\n%s" %
                   (smtpscript.redact(t.run.stderr), t.run.server.format()))
    return "\n".join(out)


def cells_for(mode):
    out = []
    for row in ROWS_SESSION + ROWS_PIPELINED:
        for fault in FAULTS:
            if applies(mode, row, fault) is None:
                out.append(Cell(mode, row, fault))
    return out


def run_cells(cells, jobs, slack, verbose=False):
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        # the stalls first: they take longest
        order = sorted(cells, key=lambda c: c.fault != "stall")
        list(ex.map(lambda c: run_cell(c, slack), order))
    return cells


def markdown(mode, cells):
    by = {(c.row, c.fault): c for c in cells}
    out = ["| step | " + " | ".join(FAULTS) + " |",
           "|---|" + "---|" * len(FAULTS)]
    for row in ROWS_SESSION + ROWS_PIPELINED:
        # every row in every mode: a step the mode lacks reads n/a throughout
        cols = []
        for f in FAULTS:
            c = by.get((row, f))
            if c is None:
                cols.append("n/a")
            else:
                txt = c.outcome or "error"
                if c.failures:
                    txt += " **FAIL**"
                cols.append(txt)
        out.append("| %s | %s |" % (ROW_TEXT[row], " | ".join(cols)))
    return "\n".join(out)


def default_slack():
    """Seconds a run may take beyond what it waits for: 2, or 4 for a
    program built with AddressSanitizer (slower to start and to run)."""
    import subprocess
    try:
        out = subprocess.run(["ldd", os.environ["HATO_BIN"]], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return 4.0 if "libasan" in out else 2.0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=MODES, action="append")
    ap.add_argument("--cell", action="append", help="MODE/ROW/FAULT")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--update-doc", metavar="FILE")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not os.environ.get("HATO_BIN"):
        print("FAIL: set HATO_BIN to the hato program (meson test does)")
        return 1
    jobs = int(os.environ.get("HATO_FAULTS_JOBS", "12"))
    slack = float(os.environ.get("HATO_FAULTS_SLACK", "0") or 0) or default_slack()
    if args.cell:
        cells = [Cell(*c.split("/")) for c in args.cell]
    else:
        modes = args.mode or list(MODES)
        cells = [c for m in modes for c in cells_for(m)]
    t0 = time.monotonic()
    run_cells(cells, jobs, slack)
    wall = time.monotonic() - t0
    failed = [c for c in cells if c.failures]
    for c in cells:
        if c.failures or args.verbose or args.cell:
            print(c.report)
            print()
    print("fault matrix: %d cells, %d passed, %d failed, %.1fs wall"
          % (len(cells), len(cells) - len(failed), len(failed), wall))
    quick = [c for c in cells if not waits(c.row, c.fault)]
    if quick:
        slow = max(quick, key=lambda c: c.elapsed)
        print("slowest cell that waits for nothing: %s, %.2fs (bound %gs)"
              % (slow.name, slow.elapsed, QUICK_TIMEOUT))
    for c in failed:
        print("FAIL %s: %s" % (c.name, "; ".join(c.failures)[:300]))
    if args.markdown or args.update_doc:
        modes = sorted({c.mode for c in cells}, key=MODES.index)
        text = []
        for m in modes:
            text.append("**%s**\n\n%s\n" % (MODE_TEXT[m], markdown(m, [c for c in cells
                                                                    if c.mode == m])))
        md = "\n".join(text)
        if args.markdown:
            print(md)
        if args.update_doc:
            update_doc(args.update_doc, md, cells, wall)
    return 1 if failed else 0


def update_doc(path, md, cells, wall):
    """Replaces the text between the fault-matrix markers in `path`."""
    begin, end = "<!-- fault-matrix:begin -->", "<!-- fault-matrix:end -->"
    with open(path) as f:
        doc = f.read()
    a, b = doc.find(begin), doc.find(end)
    if a < 0 or b < 0:
        raise SystemExit("%s has no %s ... %s markers" % (path, begin, end))
    failed = sum(1 for c in cells if c.failures)
    legend = "\n".join("| %s | %s |" % (f, FAULT_TEXT[f]) for f in FAULTS)
    body = ("%s\n%d cells, %d pass, %d fail (%.0f s wall, %d cells at a time); generated by "
            "`tests/faults/run.py --update-doc docs/testing.md`.\n\n"
            "| fault | what the server does |\n|---|---|\n%s\n\n%s%s" % (
                begin, len(cells), len(cells) - failed, failed, wall,
                int(os.environ.get("HATO_FAULTS_JOBS", "12")), legend, md, end))
    with open(path, "w") as f:
        f.write(doc[:a] + body + doc[b + len(end):])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
