"""Scenarios: each plays a server script against `hato` and checks the exit
status, stderr and the bytes on the wire.  One meson test per scenario.

Each function gets a run_scenario.Case `t`: t.serve(script) starts the
server, t.config()/t.sasl_config() write main.cf, t.hato(args, message) runs
the program, then the checks collect failures (all are reported at once).
"""

import base64
import hashlib
import os
import pwd
import re
import socket

import smtpscript
from run_scenario import cert_der, colon_hex, spki_der
from smtpscript import (auth, auth_oauth, disconnect, dot_stuff, expect, expect_bdat,
                        expect_data, expect_eof, flood, inject, quit_and_close, read_bytes,
                        send, send_raw, stall, starttls)

SCENARIOS = {}


class Skip(Exception):
    pass


def scenario(fn):
    SCENARIOS[fn.__name__.replace("_", "-")] = fn
    return fn


# sysexits.h
EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 67, 69, 75, 78

SENDER = "sender@example.test"
# The invoking user: the default envelope sender, qualified with myorigin.
LOGIN = pwd.getpwuid(os.getuid()).pw_name
R1, R2, R3 = "rcpt1@example.test", "rcpt2@example.test", "rcpt3@example.test"
# Every password and token here is listed in tests/secrets/secrets.txt: the
# secrets suite fails if one shows up in any test's output (selftest.py checks
# the list holds them).
USER, PASSWORD = "hato-user", "Pw-s3cr3t-9x7q"
TOKEN = "ya29.hato-scripted-bearer-T0k3n-4f9c2e"
smtpscript.register_secret(PASSWORD, TOKEN)

EHLO = r"EHLO client\.example\.test"
# MAIL with whatever parameters the advertised extensions allow
# the parameters the advertised extensions allow
MAIL_PARAMS = r"(?: (?:SIZE=\d+|BODY=8BITMIME|SMTPUTF8))*"
MAIL_ANY = r"MAIL FROM:<sender@example\.test>" + MAIL_PARAMS
# MAIL when the server advertised no extension that takes a parameter
MAIL_BARE = r"MAIL FROM:<sender@example\.test>"
RCPT_ANY = r"RCPT TO:<[^<>\s]+>"


def rcpt(addr):
    return r"RCPT TO:<%s>" % re.escape(addr)


def ehlo_reply(*caps):
    lines = ["scripted.example.test greets client.example.test"] + list(caps)
    return send(*["250%s%s" % ("-" if i < len(lines) - 1 else " ", l)
                  for i, l in enumerate(lines)])


GREETING = send("220 scripted.example.test ESMTP smtpscript")


def transaction(rcpts, mail=MAIL_ANY, final="250 2.0.0 Ok: queued as SCRIPTED"):
    steps = [expect(mail), send("250 2.1.0 Ok")]
    for r in rcpts:
        steps += [expect(rcpt(r)), send("250 2.1.5 Ok")]
    steps += [expect("DATA"), send("354 End data with <CR><LF>.<CR><LF>"),
              expect_data(), send(final)]
    return steps + quit_and_close()


def message(*headers, body=b"hello from the scripted tests\n"):
    return b"".join(h + b"\n" for h in headers) + b"\n" + body


DATE = b"Date: Mon, 01 Jan 2024 12:00:00 +0000"


def std_message(msgid=b"<scripted.1@client.example.test>", body=None):
    hs = [b"From: Sender <sender@example.test>", b"To: rcpt1@example.test",
          b"Subject: scripted test", DATE, b"Message-ID: " + msgid]
    return message(*hs, body=body) if body is not None else message(*hs)


# A body that exercises line ending and dot-stuffing (needs -i for the lone ".").
TRICKY_BODY = (b"first line\n"
               b".leading dot\n"
               b".\n"
               b"..two dots\n"
               b"\n"
               b"trailing spaces   \n"
               b"last line without a newline")


def same_bytes(t, got, expected, what):
    if got == expected:
        return
    n = next((i for i in range(min(len(got), len(expected))) if got[i] != expected[i]),
             min(len(got), len(expected)))
    t.fail("%s differs from the expected wire form at byte %d:\n    sent     %r\n"
           "    expected %r" % (what, n, got[max(n - 40, 0):n + 40],
                                expected[max(n - 40, 0):n + 40]))


def body_is(t, expected, what="message body"):
    msgs = t.run.server.messages
    if t.check(len(msgs) == 1, "expected one message on the wire, got %d" % len(msgs)):
        same_bytes(t, msgs[0], expected, what)


def secrets_absent(t, text, where):
    """No password or token, nor base64 holding one, nor any AUTH argument the
    client sent, in `text`.  The message never repeats the secret."""
    auth_args = [c.split(" ", 2)[2] for c in t.commands()
                 if c.upper().startswith("AUTH ") and len(c.split(" ")) == 3]
    forms = {"the password": PASSWORD, "the token": TOKEN,
             "base64 of the password": base64.b64encode(PASSWORD.encode()).decode(),
             "the AUTH PLAIN response": base64.b64encode(
                 b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()}
    for i, a in enumerate(auth_args):
        forms["the argument of AUTH command %d" % (i + 1)] = a
    for i, core in enumerate(sorted(smtpscript._SECRETS)):
        forms["base64 holding a secret (form %d)" % i] = core
    for what, secret in forms.items():
        t.check(secret not in text, "%s contains %s" % (where, what))


def read_text(t, path, what):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        t.fail("%s %s not written: %s" % (what, path, e))
        return ""


def hex_pattern(colon_hex_digest):
    """A stderr_has() regex for a digest, with or without colons."""
    return "/" + ":?".join(colon_hex_digest.split(":"))


def starttls_prelude(*caps_after_tls, before=("PIPELINING", "STARTTLS")):
    """Greeting, EHLO, STARTTLS, handshake, EHLO again."""
    return [GREETING, expect(EHLO), ehlo_reply(*before), expect("STARTTLS"),
            send("220 2.0.0 Ready to start TLS"), starttls(), expect(EHLO),
            ehlo_reply(*caps_after_tls)]


# -- the happy paths -----------------------------------------------------------


@scenario
def happy_plain_auth(t):
    """Plain text, AUTH PLAIN with an initial response, exact body bytes."""
    t.serve([GREETING, expect(EHLO),
             ehlo_reply("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
                        "AUTH PLAIN LOGIN"),
             expect(r"AUTH PLAIN \S+"), send("235 2.7.0 Authentication successful")]
            + transaction([R1]))
    t.sasl_config(USER, PASSWORD)
    msg = std_message(body=TRICKY_BODY)
    t.hato(["-i", "-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    auths = [c for c in t.commands() if c.upper().startswith("AUTH")]
    if auths:
        want = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()
        got = auths[0].split(" ")[-1]
        t.check(base64.b64decode(got + "==").split(b"\0")[1:] ==
                [USER.encode(), PASSWORD.encode()],
                "AUTH PLAIN response %r does not decode to NUL %s NUL password (want %r)"
                % (got, USER, want))
    body_is(t, dot_stuff(msg))
    wire = t.run.server.client_bytes()
    t.check(wire.count(b"\r\n") == wire.count(b"\n"), "a bare LF went over the wire")


@scenario
def happy_starttls_auth(t):
    """STARTTLS at level verify; EHLO again after TLS; capabilities from before TLS
    (AUTH LOGIN only, SIZE, 8BITMIME) must not be used after it (AUTH PLAIN only)."""
    t.serve([GREETING, expect(EHLO),
             ehlo_reply("PIPELINING", "SIZE 10240000", "8BITMIME", "STARTTLS", "AUTH LOGIN"),
             expect("STARTTLS"), send("220 2.0.0 Ready to start TLS"), starttls(),
             expect(EHLO), ehlo_reply("AUTH PLAIN"),
             auth(USER, PASSWORD, mechanisms=("PLAIN",))]
            + transaction([R1], mail=MAIL_BARE), tls=True)
    ca = t.ca()
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="verify",
                  smtp_tls_CAfile=ca + "/ca.crt")
    msg = std_message()
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    t.check(t.run.server.tls_version is not None, "no TLS handshake happened")
    for line in t.run.server.lines:
        t.check(line.tls or line.text.upper().split(" ")[0] in ("EHLO", "STARTTLS"),
                "client sent %r before TLS" % line.text)
    body_is(t, dot_stuff(msg))


@scenario
def implicit_tls(t):
    """smtp_tls_wrappermode = yes: TLS from the first byte, verified."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "AUTH PLAIN"),
             auth(USER, PASSWORD, mechanisms=("PLAIN",))] + transaction([R1]),
            implicit_tls=True)
    ca = t.ca()
    t.sasl_config(USER, PASSWORD, smtp_tls_wrappermode="yes",
                  smtp_tls_security_level="verify", smtp_tls_CAfile=ca + "/ca.crt")
    msg = std_message()
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.check(t.run.server.tls_version is not None, "no TLS handshake happened")
    body_is(t, dot_stuff(msg))


@scenario
def ipv6(t):
    """relayhost [::1]:PORT."""
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError as e:
        # Every machine of this project has ::1 on lo; its absence is a
        # broken machine, reported as a failure rather than skipped.
        raise SystemExit("FAIL: no IPv6 loopback (::1) to test with: %s" % e)
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]),
            host="::1")
    t.config()
    msg = std_message()
    t.hato(["-f", SENDER, "--", R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    body_is(t, dot_stuff(msg))


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@scenario
def address_fallback(t):
    """relay.test resolves to ::1 (nothing listens) and 127.0.0.1: the first
    refusal is logged and the next address carries the message (the guide's
    "Network is unreachable" on IPv6, solved without inet_protocols)."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.hosts("::1 relay.test\n127.0.0.1 relay.test\n")
    t.config(relayhost="[relay.test]:%d" % t.srv.port)
    msg = std_message()
    t.hato(["-v", "-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_has("relay.test[::1]:%d" % t.srv.port, "trying the next address")
    body_is(t, dot_stuff(msg))


@scenario
def address_fallback_ipv4_only(t):
    """With inet_protocols = ipv4 the ::1 address is never tried."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.hosts("::1 relay.test\n127.0.0.1 relay.test\n")
    t.config(relayhost="[relay.test]:%d" % t.srv.port, inet_protocols="ipv4")
    t.hato(["-v", "-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    t.check("::1" not in t.run.stderr, "an IPv6 address was tried despite inet_protocols = ipv4")


@scenario
def all_addresses_fail(t):
    """Every address refuses: one error naming each address and why (75)."""
    t.serve([expect_eof()])
    port = free_port()
    t.hosts("::1 relay.test\n127.0.0.1 relay.test\n")
    t.config(relayhost="[relay.test]:%d" % port)
    t.hato(["-f", SENDER, R1], std_message())
    t.deferred()
    t.stderr_has("cannot connect to relay relay.test port %d" % port, "[::1]: connection refused",
                 "127.0.0.1: connection refused")


def stalled_listener(family, addr, port):
    """A listener on addr:port that answers no SYN: backlog 0 and its accept
    queue already full (Linux then drops further SYNs).  Returns the two
    sockets, to keep open while the stall is wanted."""
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(0)
    c = socket.socket(family)
    c.connect((addr, port))
    return s, c


@scenario
def happy_eyeballs(t):
    """relay.test's first address (::1) takes no connection (SYNs go
    unanswered), its second (127.0.0.1) answers: Happy Eyeballs starts the
    second 250 ms later, and the message goes well before the 10 s
    smtp_connect_timeout would have run out on the first."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    keep = stalled_listener(socket.AF_INET6, "::1", t.srv.port)
    t.hosts("::1 relay.test\n127.0.0.1 relay.test\n")
    t.config(relayhost="[relay.test]:%d" % t.srv.port, smtp_connect_timeout="10s")
    msg = std_message()
    t.hato(["-v", "-f", SENDER, R1], msg)
    for s in keep:
        s.close()
    t.server_ok()
    t.exit_code(EX_OK)
    t.check(t.run.elapsed < 4.0, "took %.1fs: the stalled ::1 held up the connection"
            % t.run.elapsed)
    t.stderr_has("connecting to relay.test[::1]:%d" % t.srv.port,
                 "abandoning the attempt to relay.test[::1]:%d" % t.srv.port,
                 "connected to relay.test[127.0.0.1]:%d" % t.srv.port)
    body_is(t, dot_stuff(msg))


def other_server(t, script):
    """A second scripted server beside t.srv (a fallback relay, another
    sender's relay); finish it with finish_other."""
    return smtpscript.Server(script).start()


def finish_other(t, srv, what):
    """Checks a server of other_server; returns its result."""
    r = srv.finish()
    for f in r.failures:
        t.fail("%s: %s" % (what, f))
    return r


def maillog_has(t, *words):
    text = read_text(t, t.maillog, "maillog_file")
    for w in words:
        t.check(w in text, "maillog does not mention %r:\n%s" % (w, text))


@scenario
def fallback_relay_unreachable(t):
    """relayhost refuses connections (nothing listens): the message goes to
    the first smtp_fallback_relay, and the maillog names the relay used."""
    t.serve([expect_eof()])
    dead = free_port()
    fb = other_server(t, [GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.config(relayhost="[127.0.0.1]:%d" % dead,
             smtp_fallback_relay="[127.0.0.1]:%d" % fb.port, maillog_file=t.path("maillog"))
    msg = std_message()
    t.hato(["-v", "-f", SENDER, R1], msg)
    r = finish_other(t, fb, "fallback relay")
    t.exit_code(EX_OK)
    t.check(t.run.server.connections == 0, "something connected to the unused server")
    t.check(r.done and len(r.messages) == 1, "the fallback relay did not get the message")
    if r.messages:
        same_bytes(t, r.messages[0], dot_stuff(msg), "body at the fallback relay")
    t.stderr_has("trying fallback relay [127.0.0.1]:%d" % fb.port)
    maillog_has(t, "relay=127.0.0.1[127.0.0.1]:%d" % fb.port, "status=sent")


@scenario
def fallback_relay_after_421(t):
    """relayhost greets with 421: no MAIL there; the second of two fallback
    relays (the first refuses connections) takes the message."""
    t.serve([send("421 4.3.2 scripted: too busy"), expect_eof(allow_quit=True)])
    fb = other_server(t, [GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.config(smtp_fallback_relay="[127.0.0.1]:%d, [127.0.0.1]:%d" % (free_port(), fb.port),
             maillog_file=t.path("maillog"))
    msg = std_message()
    t.hato(["-v", "-f", SENDER, R1], msg)
    r = finish_other(t, fb, "fallback relay")
    t.server_ok()
    t.exit_code(EX_OK)
    t.no_command("EHLO", "MAIL")
    t.check(r.done and len(r.messages) == 1, "the fallback relay did not get the message")
    t.stderr_has("too busy", "trying fallback relay", "connection refused")
    maillog_has(t, "relay=127.0.0.1[127.0.0.1]:%d" % fb.port, "status=sent")


@scenario
def fallback_relay_not_after_data(t):
    """relayhost takes the whole message and answers 451 after the dot: the
    message may have been delivered, so no fallback relay is tried; it is
    deferred in the queue instead."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")]
            + transaction([R1], final="451 4.3.0 scripted: try again later"))
    fb = other_server(t, [expect_eof()])
    t.config(smtp_fallback_relay="[127.0.0.1]:%d" % fb.port)
    t.hato(["-f", SENDER, R1], std_message())
    r = fb.finish()
    t.server_ok()
    t.deferred()
    t.check(r.connections == 0, "the fallback relay was contacted after the data went")
    t.stderr_has("try again later")


@scenario
def fallback_relay_not_after_bdat(t):
    """With PIPELINING and CHUNKING the whole message goes as BDAT LAST in
    the same write as MAIL and RCPT; the relay hangs up before any reply.
    No recipient was answered, but the relay may have the message: no
    fallback relay is tried, the message waits in the queue."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "CHUNKING", "8BITMIME"),
             expect(MAIL_ANY), expect(rcpt(R1)), expect(r"BDAT \d+ LAST"), disconnect()])
    fb = other_server(t, [expect_eof()])
    t.config(smtp_fallback_relay="[127.0.0.1]:%d" % fb.port)
    t.hato(["-f", SENDER, R1], std_message())
    r = fb.finish()
    t.server_ok()
    t.deferred()
    t.check(r.connections == 0, "the fallback relay was contacted after the content went out")


@scenario
def keepalive_no_resend_after_bdat(t):
    """A queue run sends two messages over one kept connection with
    PIPELINING and CHUNKING; the relay hangs up after the second message's
    MAIL, RCPT and BDAT LAST arrived, before any reply.  It may have the
    message: hato must not reconnect and send it again (one connection in
    all); the message waits in the queue."""
    for i in range(2):
        t.serve([expect_eof()])  # queued only: each run finishes an unused server
        t.config()
        t.hato(["-odq", "-f", SENDER, R1], std_message(msgid=b"<ka.%d@client.example.test>" % i))
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "CHUNKING", "8BITMIME"),
             expect(MAIL_ANY), expect(rcpt(R1)), send("250 2.1.0 Ok", "250 2.1.5 Ok"),
             expect_bdat(reply="250 2.0.0 Ok: queued as FIRST", last=True),
             expect(MAIL_ANY), expect(rcpt(R1)), expect(r"BDAT \d+ LAST"), disconnect()],
            later_421=True)
    t.config()
    t.hato(["-q"], b"")
    t.server_ok()
    t.exit_code(EX_OK)
    t.check(t.run.server.connections == 1, "hato connected %d times: the message whose content "
            "had gone out was sent again" % t.run.server.connections)
    q = t.path(os.path.join("spool", "queue"))
    left = [n for n in os.listdir(q) if "." not in n] if os.path.isdir(q) else []
    t.check(len(left) == 1, "expected one message left in the queue, found %s" % left)


@scenario
def fallback_relays_all_fail(t):
    """relayhost and its fallback both refuse: the error names both."""
    t.serve([expect_eof()])
    dead1, dead2 = free_port(), free_port()
    t.config(relayhost="[127.0.0.1]:%d" % dead1, smtp_fallback_relay="[127.0.0.1]:%d" % dead2)
    t.hato(["-f", SENDER, R1], std_message())
    t.deferred()
    t.stderr_has("cannot connect to relay 127.0.0.1 port %d" % dead1,
                 "then cannot connect to relay 127.0.0.1 port %d" % dead2)


@scenario
def sender_dependent_relayhost(t):
    """sender_dependent_relayhost_maps: alice@ goes to one scripted server,
    anyone @other.test to another, the rest to relayhost; one queue run
    sends all three, each over its own relay's connection."""
    t.serve([expect_eof()])
    msgs = {}
    t.config(sender_dependent_relayhost_maps="texthash:" + t.path("relays"),
             maillog_file=t.path("maillog"))
    senders = ["alice@example.test", "bob@other.test", "carol@example.test"]
    for i, snd in enumerate(senders):
        msgs[snd] = std_message(msgid=b"<relay.%d@client.example.test>" % i)
        if i > 0:
            t.serve([expect_eof()])  # each run finishes one (unused) server
        t.hato(["-odq", "-f", snd, R1], msgs[snd])
        t.exit_code(EX_OK)

    def script(snd):
        mail = r"MAIL FROM:<%s>(?: (?:SIZE=\d+|BODY=8BITMIME|SMTPUTF8))*" % re.escape(snd)
        return [GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1], mail=mail)

    alice = other_server(t, script(senders[0]))
    other = other_server(t, script(senders[1]))
    default = other_server(t, script(senders[2]))
    with open(t.path("relays"), "w") as f:
        f.write("# sender -> relay\nalice@example.test [127.0.0.1]:%d\n"
                "@other.test 127.0.0.1:%d\n" % (alice.port, other.port))
    t.config(relayhost="[127.0.0.1]:%d" % default.port,
             sender_dependent_relayhost_maps="texthash:" + t.path("relays"),
             maillog_file=t.path("maillog"))
    t.serve([expect_eof()])
    t.hato(["-q", "-v"], b"")
    t.check(t.run.server.connections == 0, "the unused server got a connection")
    t.exit_code(EX_OK)
    for srv, snd, what in ((alice, senders[0], "alice's relay"), (other, senders[1], "the "
                           "@other.test relay"), (default, senders[2], "relayhost")):
        r = finish_other(t, srv, what)
        if t.check(r.done and len(r.messages) == 1, "%s did not get %s's message" % (what, snd)):
            same_bytes(t, r.messages[0], dot_stuff(msgs[snd]), "%s's message" % snd)
        maillog_has(t, "relay=127.0.0.1[127.0.0.1]:%d" % srv.port)
    q = t.path(os.path.join("spool", "queue"))
    t.check(os.path.isdir(q) and not os.listdir(q), "messages left in the queue: %s"
            % (os.listdir(q) if os.path.isdir(q) else "no queue"))


@scenario
def relayhost_mx(t):
    """relayhost = relay.test:PORT (no brackets): its MX records are looked
    up on a DNS server of the test's own; mx1 (preference 10, though the
    answer lists it second) refuses, mx2 (preference 20) takes the message,
    and the certificate-free run names mx2 as the relay."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.dns("--mx-host=relay.test,mx2.relay.test,20", "--mx-host=relay.test,mx1.relay.test,10",
          "--host-record=mx1.relay.test,127.0.0.3", "--host-record=mx2.relay.test,127.0.0.1")
    # mx1's address listens on nothing at the server's port: refused.
    t.config(relayhost="relay.test:%d" % t.srv.port, maillog_file=t.path("maillog"))
    msg = std_message()
    t.hato(["-v", "-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    body_is(t, dot_stuff(msg))
    t.stderr_has("MX of relay.test: mx1.relay.test (preference 10)",
                 "MX of relay.test: mx2.relay.test (preference 20)",
                 "connect to mx1.relay.test[127.0.0.3]:%d: connection refused" % t.srv.port)
    maillog_has(t, "relay=mx2.relay.test[127.0.0.1]:%d" % t.srv.port)


@scenario
def relayhost_no_mx(t):
    """relayhost = plain.test:PORT has no MX record: its own address is used
    (RFC 5321 5.1); [relay.test] with brackets never asks for MX."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.dns("--host-record=plain.test,127.0.0.1")
    t.config(relayhost="plain.test:%d" % t.srv.port)
    t.hato(["-v", "-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_has("plain.test has no MX record", "connected to plain.test[127.0.0.1]:%d" % t.srv.port)
    log = read_text(t, t.path("dnsmasq.log"), "dnsmasq log")
    t.check("query[MX] plain.test" in log, "no MX query reached the DNS server:\n" + log)


@scenario
def relayhost_null_mx(t):
    """A null MX (RFC 7505, "0 ."): a clear permanent error, no connection."""
    t.serve([expect_eof()])
    t.dns("--mx-host=nomail.test,.,0", "--host-record=nomail.test,127.0.0.1")
    t.config(relayhost="nomail.test:%d" % t.srv.port)
    t.hato(["-f", SENDER, R1], std_message())
    t.check(t.run.server.connections == 0, "hato connected despite the null MX")
    # Permanent, but not the server's word: the message stays queued (a
    # fixed relayhost sends it) and the exit status says "host unknown".
    t.exit_code(68)
    q = t.path(os.path.join("spool", "queue"))
    t.check(os.path.isdir(q) and len([n for n in os.listdir(q) if "." not in n]) == 1,
            "the message is not kept in the queue")
    t.stderr_has("nomail.test publishes a null MX record (RFC 7505): it accepts no mail",
                 "relayhost = nomail.test")


@scenario
def probe_mx(t):
    """hato --probe with relayhost = relay.test:PORT: the MX hosts are shown
    and the first one (by preference) is the one probed."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + quit_and_close())
    t.dns("--mx-host=relay.test,backup.relay.test,20", "--mx-host=relay.test,mx.relay.test,10",
          "--host-record=mx.relay.test,127.0.0.1", "--host-record=backup.relay.test,127.0.0.9")
    t.config(relayhost="relay.test:%d" % t.srv.port)
    t.hato(["--probe"], b"")
    t.server_ok()
    t.exit_code(EX_OK)
    out = t.run.stdout + t.run.stderr
    for w in ("MX of relay.test: mx.relay.test (preference 10): probed below",
              "MX of relay.test: backup.relay.test (preference 20)",
              "probing mx.relay.test port %d" % t.srv.port,
              "connected to mx.relay.test[127.0.0.1]:%d" % t.srv.port):
        t.check(w in out, "--probe output lacks %r" % w)


@scenario
def pipelining(t):
    """With PIPELINING, MAIL, RCPTs and DATA leave in one write; the body only
    after 354."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "8BITMIME")]
            + transaction([R1, R2]))
    t.config()
    msg = std_message()
    t.hato(["-f", SENDER, R1, R2], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    lines = t.run.server.lines
    group = [l for l in lines if l.text.upper().split(" ")[0] in ("MAIL", "RCPT", "DATA")]
    if t.check(len(group) == 4, "expected MAIL, 2 RCPT, DATA; got %r"
               % [l.text for l in group]):
        t.check(len({l.chunk for l in group}) == 1,
                "MAIL/RCPT/DATA arrived in %d writes (chunks %s), expected one"
                % (len({l.chunk for l in group}), [l.chunk for l in group]))
        data_chunk = group[-1].chunk
        t.check(len(t.run.server.reads) > data_chunk + 1 and
                t.run.server.reads[data_chunk][1].endswith(b"DATA\r\n"),
                "message body was sent together with DATA, before the 354 reply")


@scenario
def no_pipelining(t):
    """Without PIPELINING each command waits for its reply."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1, R2]))
    t.config()
    t.hato(["-f", SENDER, R1, R2], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    lines = t.run.server.lines
    chunks = [l.chunk for l in lines]
    t.check(len(set(chunks)) == len(chunks),
            "commands sent without waiting for replies: %r"
            % [(l.text, l.chunk) for l in lines])


# -- message content -------------------------------------------------------------


@scenario
def invoked_as_sendmail(t):
    """Through a symlink named sendmail it behaves the same."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.config()
    t.invoked_as = "sendmail"
    msg = std_message()
    t.hato(["-oi", "-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    body_is(t, dot_stuff(msg))


@scenario
def local_names_qualified(t):
    """Bare local names get @myorigin: the recipient "root", the default
    envelope sender (the invoking user) and the From header made for it."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"),
             expect(r"MAIL FROM:<%s@example\.test>" % re.escape(LOGIN) + MAIL_PARAMS), send("250 2.1.0 Ok"),
             expect(rcpt("root@example.test")), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go ahead"), expect_data(),
             send("250 2.0.0 Ok: queued as SCRIPTED")] + quit_and_close())
    t.config(myorigin="example.test")
    t.hato(["-i", "root"], b"Subject: cron output\n\nhello\n")
    t.server_ok()
    t.exit_code(EX_OK)
    if len(t.run.server.messages) == 1:
        head = t.run.server.messages[0].partition(b"\r\n\r\n")[0]
        t.check(re.search(rb"(?mi)^From: .*<?%s@example\.test>?" % re.escape(LOGIN.encode()), head),
                "no From header for %s@example.test was added: %r" % (LOGIN, head))
    else:
        t.fail("no message on the wire")


@scenario
def cron_alias(t):
    """The cron case: `printf 'Subject: x\\n\\nbody\\n' | hato root` with
    alias_maps saying `root: admin@example.test` (after a continuation line
    and a comment) sends to admin@example.test, even though myorigin is not
    in mydestination, and adds From, Date and Message-ID."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"),
             expect(r"MAIL FROM:<%s@example\.test>" % re.escape(LOGIN) + MAIL_PARAMS), send("250 2.1.0 Ok"),
             expect(rcpt("admin@example.test")), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go ahead"), expect_data(),
             send("250 2.0.0 Ok: queued as SCRIPTED")] + quit_and_close())
    aliases = t.path("aliases")
    with open(aliases, "w") as f:
        f.write("# See man 5 aliases for format\n"
                "postmaster:    root\n"
                "ops: a@example.test,\n"
                "  b@example.test\n"
                "Root: admin@example.test\n")
    t.config(myorigin="example.test", alias_maps="hash:" + aliases)
    t.hato(["root"], b"Subject: x\n\nbody\n")
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    if len(t.run.server.messages) != 1:
        t.fail("no message on the wire")
        return
    head, _, body = t.run.server.messages[0].partition(b"\r\n\r\n")
    t.check(re.search(rb"(?mi)^From: .*<?%s@example\.test>?\r?$" % re.escape(LOGIN.encode()), head),
            "no From header for %s@example.test was added: %r" % (LOGIN, head))
    t.check(re.search(rb"(?m)^Date: ", head), "no Date header was added: %r" % head)
    t.check(re.search(rb"(?m)^Message-ID: <[^<>@\s]+@client\.example\.test>\r?$", head),
            "no Message-ID header was added: %r" % head)
    t.check(head.endswith(b"\r\nSubject: x"), "the Subject line changed: %r" % head)
    t.check(body == b"body\r\n.\r\n" or body == b"body\r\n", "the body changed: %r" % body)


@scenario
def generic_map_sender(t):
    """smtp_generic_maps rewrites root@localhost.localdomain to
    alice@example.test in MAIL FROM, in the From hato adds, and in a
    Reply-To with a display name (kept); nothing else changes."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"),
             expect(r"MAIL FROM:<alice@example\.test>" + MAIL_PARAMS), send("250 2.1.0 Ok"),
             expect(rcpt(R1)), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go ahead"), expect_data(),
             send("250 2.0.0 Ok: queued as SCRIPTED")] + quit_and_close())
    generic = t.path("generic")
    with open(generic, "w") as f:
        f.write("# generic(5)\nroot@localhost.localdomain   alice@example.test\n")
    t.config(myorigin="localhost.localdomain", smtp_generic_maps="hash:" + generic)
    kept = [b"Reply-To: \"Cron Daemon\" <root@localhost.localdomain> (cron)",
            b"Subject: generic", b"To: rcpt1@example.test", DATE,
            b"Message-ID: <generic.1@client.example.test>"]
    t.hato(["-f", "root", "-F", "Charlie Root", R1], message(*kept, body=b"body\n"))
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    if len(t.run.server.messages) != 1:
        t.fail("no message on the wire")
        return
    want = (b"From: Charlie Root <alice@example.test>\r\n"
            b"Reply-To: \"Cron Daemon\" <alice@example.test> (cron)\r\n"
            + b"\r\n".join(kept[1:]) + b"\r\n\r\nbody\r\n")
    same_bytes(t, t.run.server.messages[0].removesuffix(b".\r\n"), want, "message")


@scenario
def resent_with_t(t):
    """-t on a resent message: RCPT goes to the most recent Resent block's
    Resent-To and Resent-Bcc only, and Resent-Bcc is not sent."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"), expect(MAIL_ANY),
             send("250 2.1.0 Ok"), expect(rcpt(R2)), send("250 2.1.5 Ok"),
             expect(rcpt(R3)), send("250 2.1.5 Ok"), expect("DATA"),
             send("354 go ahead"), expect_data(), send("250 2.0.0 Ok")] + quit_and_close())
    t.config()
    head = [b"Resent-From: sender@example.test", b"Resent-Date: Tue, 02 Jan 2024 12:00:00 +0000",
            b"Resent-Message-ID: <resent.2@client.example.test>",
            b"Resent-To: Rcpt Two <rcpt2@example.test>"]
    hidden = b"Resent-Bcc: rcpt3@example.test"
    rest = [b"Received: by client.example.test; Mon, 01 Jan 2024 12:00:00 +0000",
            b"Resent-To: old-resend@example.test",
            b"From: Sender <sender@example.test>", b"To: rcpt1@example.test",
            b"Subject: resent", DATE, b"Message-ID: <resent.1@client.example.test>"]
    t.hato(["-t", "-f", SENDER], message(*(head + [hidden] + rest)))
    t.server_ok()
    t.exit_code(EX_OK)
    body_is(t, dot_stuff(message(*(head + rest))), what="message without Resent-Bcc")


@scenario
def date_msgid_added(t):
    """Missing Date and Message-ID are added; everything else is byte-identical."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.config()
    msg = message(b"From: Sender <sender@example.test>", b"To: rcpt1@example.test",
                  b"Subject: no date, no id", b"X-Folded: first part",
                  b"\tsecond part", body=b"body line\n.dot line\n")
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    if len(t.run.server.messages) != 1:
        t.fail("no message on the wire")
        return
    wire = t.run.server.messages[0]
    head, sep, rest = wire.partition(b"\r\n\r\n")
    kept, dates, ids, skip = [], [], [], False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and skip:
            continue
        skip = False
        low = line.lower()
        if low.startswith(b"date:"):
            dates.append(line)
            skip = True
        elif low.startswith(b"message-id:"):
            ids.append(line)
            skip = True
        else:
            kept.append(line)
    t.check(len(dates) == 1, "expected one Date header, got %r" % dates)
    t.check(len(ids) == 1, "expected one Message-ID header, got %r" % ids)
    day = rb"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?"
    if dates:
        t.check(re.fullmatch(rb"Date: " + day + rb"\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul"
                             rb"|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d(?::\d\d)? [+-]\d{4}"
                             rb"(?: \([^()]*\))?", dates[0]),
                "Date header is not RFC 5322: %r" % dates[0])
    if ids:
        t.check(re.fullmatch(rb"Message-ID: <[^<>@\s]+@[^<>@\s]+>", ids[0], re.I),
                "Message-ID header is not <left@right>: %r" % ids[0])
    same_bytes(t, b"\r\n".join(kept) + sep + rest, dot_stuff(msg),
               "message without the added Date/Message-ID")


@scenario
def bcc_stripped_with_t(t):
    """-t: recipients from To/Cc/Bcc (folded To); Bcc is not sent, but gets RCPT."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"),
             expect(MAIL_ANY), send("250 2.1.0 Ok")]
            + [expect(RCPT_ANY), send("250 2.1.5 Ok")] * 4
            + [expect("DATA"), send("354 go ahead"), expect_data(), send("250 2.0.0 Ok")]
            + quit_and_close())
    t.config()
    hidden = b"Bcc: hidden@example.test"
    head = [b"From: Sender <sender@example.test>",
            b"To: Rcpt One <rcpt1@example.test>,", b"\trcpt2@example.test",
            b"Cc: rcpt3@example.test", b"Subject: bcc test", DATE,
            b"Message-ID: <bcc.1@client.example.test>"]
    msg = message(*(head[:4] + [hidden] + head[4:]))
    t.hato(["-t", "-f", SENDER], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    got = sorted(re.fullmatch(r"RCPT TO:<([^>]*)>.*", c, re.I).group(1).lower()
                 for c in t.commands() if c.upper().startswith("RCPT"))
    t.check(got == sorted([R1, R2, R3, "hidden@example.test"]),
            "RCPT recipients %r, expected rcpt1..3 and hidden" % got)
    for m in t.run.server.messages:
        t.check(b"bcc:" not in m.lower(), "Bcc header was sent")
    body_is(t, dot_stuff(message(*head)), what="message without Bcc")


@scenario
def dot_ends_input(t):
    """Without -i, a line holding only "." ends the input (sendmail)."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.config()
    msg = std_message(body=b"before the dot\n.\nafter the dot\n")
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    body_is(t, dot_stuff(msg, ignore_dots=False))


@scenario
def crlf_input(t):
    """CRLF input stays CRLF on the wire (no CR CR LF); -oi accepted."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")] + transaction([R1]))
    t.config()
    msg = std_message(body=b"crlf line\r\n.\r\nlf line\nend\r\n").replace(b"\n", b"\r\n") \
        .replace(b"\r\r\n", b"\r\n")
    t.hato(["-oi", "-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    body_is(t, dot_stuff(msg))


@scenario
def queued_request(t):
    """-N -R -V -B and the measured content are kept in the queue file
    (docs/queue.md) and reach the later flush; -B 7BIT on an 8-bit body is
    declared 8BITMIME with a warning."""
    t.serve([])  # -odq: nobody connects
    t.config()
    msg = message(b"From: Sender <sender@example.test>", b"To: rcpt1@example.test",
                  b"Subject: caf\xc3\xa9", DATE, b"Message-ID: <scripted.q@client.example.test>",
                  body=b"d\xc3\xa9j\xc3\xa0 vu\n")
    t.hato(["-odq", "-N", "failure,delay", "-R", "hdrs", "-V", "ENV-1", "-B", "7BIT",
            "-f", SENDER, R1], msg)
    t.exit_code(EX_OK)
    t.stderr_has("-B 7BIT", "8-bit bytes")
    q = t.path(os.path.join("spool", "queue"))
    names = [n for n in (os.listdir(q) if os.path.isdir(q) else []) if "." not in n]
    if t.check(len(names) == 1, "expected one queued message in %s, found %s" % (q, names)):
        with open(os.path.join(q, names[0]), "rb") as f:
            text = f.read()
        size = len(msg) + msg.count(b"\n")  # every LF goes out as CRLF
        want = (b"notify failure,delay\nret hdrs\nenvid ENV-1\nbodytype 7BIT\n"
                b"rcpt rcpt1@example.test\n"
                b"content size=%020d body=8bit headers=8bit\nend\n" % size)
        t.check(want in text, "queue file lacks %r:\n%r" % (want, text[:400]))
    # The flush sends it: whatever parameters the library puts on MAIL and
    # RCPT for these settings, the message goes.
    t.serve([GREETING, expect(EHLO),
             ehlo_reply("8BITMIME", "SMTPUTF8", "DSN", "SIZE 1000000"),
             expect(r"MAIL FROM:<sender@example\.test>(?: [A-Z0-9]+(?:=\S+)?)*"),
             send("250 2.1.0 Ok"),
             expect(r"RCPT TO:<rcpt1@example\.test>(?: [A-Z]+=\S+)*"), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go ahead"), expect_data(),
             send("250 2.0.0 Ok: queued as SCRIPTED")] + quit_and_close(), port=t.srv.port)
    t.hato(["-q"], b"")
    t.server_ok()
    t.exit_code(EX_OK)
    left = [n for n in (os.listdir(q) if os.path.isdir(q) else []) if "." not in n]
    t.check(left == [], "the flush left %s in the queue" % left)


# -- refusals and failures ------------------------------------------------------


@scenario
def greeting_554(t):
    """554 greeting: permanent, the server text is shown."""
    t.serve([send("554 5.3.2 scripted: no service for you"), expect_eof(allow_quit=True)], later_421=True)
    t.config()
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_UNAVAILABLE)
    t.stderr_has("no service for you")
    t.no_command("EHLO", "HELO", "MAIL")


@scenario
def ehlo_refused_helo(t):
    """EHLO refused with 5xx: HELO (smtp_helo_name), then plain MAIL."""
    t.serve([GREETING, expect(r"EHLO helo\.example\.test"),
             send("502 5.5.2 scripted: EHLO not implemented"),
             expect(r"HELO helo\.example\.test"), send("250 scripted.example.test")]
            + transaction([R1], mail=MAIL_BARE))
    t.config(smtp_helo_name="helo.example.test")
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)


def starttls_missing(t, level, **keys):
    """A level that requires TLS, STARTTLS not offered (AUTH is, and plaintext
    mechanisms are allowed): stop before AUTH and MAIL, defer, and say so with
    the setting."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "AUTH PLAIN LOGIN"),
             expect_eof(allow_quit=True)])
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level=level, **keys)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.stderr_has("STARTTLS", "smtp_tls_security_level")
    t.no_credentials()
    t.no_command("MAIL", "RCPT", "DATA")


@scenario
def starttls_missing_encrypt(t):
    """Level encrypt, STARTTLS not offered: stop before AUTH and MAIL, defer."""
    starttls_missing(t, "encrypt")


@scenario
def starttls_missing_verify(t):
    """Level verify (the default for a relay), STARTTLS not offered."""
    starttls_missing(t, "verify", smtp_tls_CAfile=t.ca() + "/ca.crt")


@scenario
def starttls_missing_secure(t):
    """Level secure, STARTTLS not offered."""
    starttls_missing(t, "secure", smtp_tls_CAfile=t.ca() + "/ca.crt")


@scenario
def starttls_missing_fingerprint(t):
    """Level fingerprint, STARTTLS not offered."""
    pin = colon_hex(cert_der(t.ca() + "/server.crt"))
    starttls_missing(t, "fingerprint", smtp_tls_fingerprint_cert_match=pin)


@scenario
def starttls_injection(t):
    """Bytes after the 220 to STARTTLS and before the handshake: abort, send
    nothing more (no handshake, no plaintext)."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "STARTTLS"),
             expect("STARTTLS"),
             inject(b"220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected\r\n"),
             expect_eof()], tls=True)
    ca = t.ca()
    t.config(smtp_tls_security_level="encrypt", smtp_tls_CAfile=ca + "/ca.crt")
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.check(t.run.stderr.strip() != "", "no error message on stderr")


def tls_refused(t, level="verify", cert=None, key=None, tweak=None, may_fail=False,
                **keys):
    """The server offers STARTTLS and AUTH PLAIN LOGIN; plaintext mechanisms
    are allowed (so only TLS stands between the password and the wire).  The
    client must abandon the handshake (or, with may_fail, close right after
    it): no AUTH, no credential on the wire, nothing after, defer."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"),
             expect("STARTTLS"), send("220 2.0.0 Ready to start TLS"),
             starttls(must_fail=not may_fail, may_fail=may_fail), expect_eof()],
            tls=True, cert=cert, key=key, tls_tweak=tweak)
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level=level,
                  maillog_file=t.path("maillog"), **keys)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.no_credentials()
    t.no_command("MAIL")
    secrets_absent(t, t.run.stderr, "stderr")


@scenario
def tls_wrong_ca(t):
    """Level verify with a CA that did not sign the server: no session, defer;
    the error names the issuer, the trust store searched and the setting."""
    other = t.ca() + "/other-ca.crt"
    tls_refused(t, smtp_tls_CAfile=other)
    t.stderr_has("/certificate|verif", "hato test CA", other, "smtp_tls_CAfile")


@scenario
def tls_expired(t):
    """The server's certificate (right CA, right names) expired on 2020-01-02:
    refused; the error names the date and a setting."""
    x = t.extra_certs()
    tls_refused(t, cert=x + "/expired.crt", key=t.ca() + "/server.key",
                smtp_tls_CAfile=t.ca() + "/ca.crt")
    t.stderr_has("expired", "2020-01-02", "smtp_tls_security_level")


@scenario
def tls_wrong_host(t):
    """A certificate from the right CA for mail.other.test and smtp.other.test,
    not for 127.0.0.1: refused; the error lists the names the certificate
    holds and the name expected."""
    x = t.extra_certs()
    tls_refused(t, cert=x + "/wrongname.crt", key=t.ca() + "/server.key",
                smtp_tls_CAfile=t.ca() + "/ca.crt")
    t.stderr_has("mail.other.test", "smtp.other.test", "127.0.0.1",
                 "/relayhost|smtp_tls_security_level")


@scenario
def tls_self_signed(t):
    """A self-signed certificate with the right names: refused at verify; the
    error says self-signed, names the certificate and the trust store
    searched, and a way out (a CA file or a pin)."""
    x = t.extra_certs()
    ca = t.ca() + "/ca.crt"
    tls_refused(t, cert=x + "/selfsigned.crt", key=x + "/selfsigned.key", smtp_tls_CAfile=ca)
    t.stderr_has("/self.signed", "hato selfsigned server", ca,
                 "/smtp_tls_CAfile|smtp_tls_fingerprint|smtp_tls_security_level")


@scenario
def tls_pin_mismatch(t):
    """Level fingerprint, the pinned certificate digest is not the server's:
    refused (in the handshake or right after it); the error shows the
    server's fingerprint and names smtp_tls_fingerprint_cert_match."""
    x = t.extra_certs()
    crt = x + "/selfsigned.crt"
    tls_refused(t, level="fingerprint", cert=crt, key=x + "/selfsigned.key", may_fail=True,
                smtp_tls_fingerprint_cert_match=colon_hex(b"not the server's certificate"))
    t.stderr_has("fingerprint", hex_pattern(colon_hex(cert_der(crt))),
                 "smtp_tls_fingerprint_cert_match")


def pinned_delivery(t, **pins):
    """Level fingerprint, a self-signed server, no CA file: the pin alone
    makes TLS trusted; AUTH and the message go through."""
    x = t.extra_certs()
    t.serve(starttls_prelude("AUTH PLAIN LOGIN")
            + [auth(USER, PASSWORD)] + transaction([R1], mail=MAIL_BARE),
            tls=True, cert=x + "/selfsigned.crt", key=x + "/selfsigned.key")
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="fingerprint", **pins)
    msg = std_message()
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    t.check(t.run.server.tls_version is not None, "no TLS handshake happened")
    body_is(t, dot_stuff(msg))
    return x


@scenario
def tls_pin_cert_match(t):
    """smtp_tls_fingerprint_cert_match = SHA-256 of the certificate (DER)."""
    x = t.extra_certs()
    pinned_delivery(t, smtp_tls_fingerprint_cert_match=colon_hex(
        cert_der(x + "/selfsigned.crt")))


@scenario
def tls_pin_pkey_match(t):
    """smtp_tls_fingerprint_pkey_match = a wrong pin and the SHA-256 of the
    SubjectPublicKeyInfo: any one match passes."""
    x = t.extra_certs()
    pinned_delivery(t, smtp_tls_fingerprint_pkey_match="%s, %s" % (
        colon_hex(b"another key"), colon_hex(spki_der(x + "/selfsigned.crt"))))


@scenario
def tls10_only_server(t):
    """A server that speaks only TLS 1.0 (its certificate verifies): hato never
    goes below TLS 1.2, so the handshake fails, no credential is sent, and
    the error says the protocol version is the reason."""
    def tls10(ctx):
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    import ssl
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1, on purpose
    tls_refused(t, tweak=tls10, smtp_tls_CAfile=t.ca() + "/ca.crt")
    t.stderr_has("/protocol.version|TLS ?1\\.0|version", "/TLS ?1\\.2|smtp_tls_mandatory_protocols")


@scenario
def tls_no_forward_secrecy(t):
    """A TLS 1.2 server whose only cipher suite uses static RSA key exchange
    (no forward secrecy): hato does not offer such suites, so the handshake
    fails before any credential, and the error points at the cipher suites."""
    def static_rsa(ctx):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-GCM-SHA256:AES256-GCM-SHA384")
    import ssl
    tls_refused(t, tweak=static_rsa, smtp_tls_CAfile=t.ca() + "/ca.crt")
    t.stderr_has("/handshake", "cipher suite")


# What a man in the middle leaves of a real server's EHLO reply when it strips
# STARTTLS (some firewalls overwrite the keyword with X's, keeping the length).
STRIPPED_EHLO = ("PIPELINING", "SIZE 10240000", "ETRN", "XXXXXXXA", "ENHANCEDSTATUSCODES",
                 "8BITMIME", "AUTH PLAIN LOGIN")


@scenario
def starttls_stripped_may(t):
    """Level may, STARTTLS stripped: hato goes on in clear, but the default
    smtp_sasl_security_options (noplaintext) keep PLAIN and LOGIN off the
    clear link: no AUTH, no MAIL, and the error says why and what to set."""
    t.serve([GREETING, expect(EHLO), ehlo_reply(*STRIPPED_EHLO), expect_eof(allow_quit=True)])
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="may",
                  smtp_sasl_security_options=None)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.no_credentials()
    t.no_command("MAIL")
    t.stderr_has("noplaintext", "smtp_sasl_security_options", "/TLS")


@scenario
def starttls_stripped_encrypt(t):
    """Level encrypt, STARTTLS stripped from a real server's EHLO: stop."""
    t.serve([GREETING, expect(EHLO), ehlo_reply(*STRIPPED_EHLO), expect_eof(allow_quit=True)])
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="encrypt")
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.no_credentials()
    t.no_command("MAIL")
    t.stderr_has("STARTTLS", "smtp_tls_security_level")


def plain_only_in_clear(t, level):
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "8BITMIME", "AUTH PLAIN"),
             expect_eof(allow_quit=True)])
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level=level,
                  smtp_sasl_security_options=None)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.no_credentials()
    t.no_command("MAIL")
    t.stderr_has("PLAIN", "noplaintext", "smtp_sasl_security_options")


@scenario
def plain_only_clear_none(t):
    """Level none, the server offers only AUTH PLAIN: no AUTH (noplaintext by
    default); the error names noplaintext and the setting."""
    plain_only_in_clear(t, "none")


@scenario
def plain_only_clear_may(t):
    """Level may, no STARTTLS, only AUTH PLAIN: as with level none."""
    plain_only_in_clear(t, "may")


def spki_hex_in(text, spki):
    digest = hashlib.sha256(spki).hexdigest()
    return digest in re.sub(r"[^0-9a-f]", "", text.lower().replace(":", ""))


@scenario
def tofu_key_change(t):
    """Level tofu with data_directory: the first contact records the server
    key's SHA-256 and sends; a second run against another key is refused
    before AUTH, showing the old and the new key."""
    x = t.extra_certs()
    state = t.path("state")
    t.serve(starttls_prelude("AUTH PLAIN LOGIN") + [auth(USER, PASSWORD)]
            + transaction([R1], mail=MAIL_BARE),
            tls=True, cert=x + "/selfsigned.crt", key=x + "/selfsigned.key")
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="tofu", data_directory=state)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    old = spki_der(x + "/selfsigned.crt")
    new = spki_der(x + "/tofu2.crt")
    recorded = ""
    for root, _, files in os.walk(state):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                recorded += fh.read().decode("latin-1") + "\n"
    t.check(os.path.isdir(state) and os.stat(state).st_mode & 0o077 == 0,
            "data_directory %s missing or open to others" % state)
    t.check(spki_hex_in(recorded, old), "the server key's SHA-256 is not recorded under %s"
            % state)

    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"),
             expect("STARTTLS"), send("220 2.0.0 Ready to start TLS"),
             starttls(may_fail=True), expect_eof()],
            tls=True, cert=x + "/tofu2.crt", key=x + "/tofu2.key", port=t.srv.port)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.check(not any(c.upper().startswith("AUTH") for c in t.run.server.commands()),
            "AUTH sent to the server with the changed key")
    t.check(spki_hex_in(t.run.stderr, old), "stderr does not show the recorded (old) key")
    t.check(spki_hex_in(t.run.stderr, new), "stderr does not show the server's new key")
    t.stderr_has("/chang|rotat")


@scenario
def session_cache_private(t):
    """After a STARTTLS + AUTH delivery the TLS session cache in
    data_directory is private (directories 0700, files 0600) and holds
    neither the password nor base64 of it."""
    t.serve(starttls_prelude("AUTH PLAIN LOGIN") + [auth(USER, PASSWORD)]
            + transaction([R1], mail=MAIL_BARE), tls=True)
    state = t.path("state")
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="verify",
                  smtp_tls_CAfile=t.ca() + "/ca.crt", data_directory=state)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    files = 0
    for root, dirs, names in os.walk(state):
        mode = os.stat(root).st_mode & 0o777
        t.check(mode & 0o077 == 0, "directory %s has mode %o, expected 0700" % (root, mode))
        for n in names:
            path = os.path.join(root, n)
            files += 1
            mode = os.stat(path).st_mode & 0o777
            t.check(mode & 0o077 == 0, "%s has mode %o, expected 0600" % (path, mode))
            with open(path, "rb") as f:
                secrets_absent(t, f.read().decode("latin-1"), path)
    t.check(files > 0, "no TLS session saved under data_directory %s" % state)


# -- OAuth 2.0 (RFC 7628 OAUTHBEARER, Google's XOAUTH2) ---------------------------
# Dovecot 2.3 offers neither, so only the scripted server checks them.

OAUTH_CAPS = "AUTH OAUTHBEARER XOAUTH2 PLAIN"
OAUTH_ERROR = {"status": "invalid_token", "scope": "https://mail.example/",
               "openid-configuration": "https://accounts.example/.well-known/openid-configuration"}


def oauth_config(t, mechanism, **keys):
    return t.sasl_config(USER, TOKEN, smtp_tls_security_level="verify",
                         smtp_tls_CAfile=t.ca() + "/ca.crt",
                         smtp_sasl_mechanism_filter=mechanism.lower(), **keys)


def oauth_success(t, mechanism):
    t.serve(starttls_prelude(OAUTH_CAPS) + [auth_oauth(mechanism, USER, TOKEN)]
            + transaction([R1], mail=MAIL_BARE), tls=True)
    oauth_config(t, mechanism)
    msg = std_message()
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    body_is(t, dot_stuff(msg))


def oauth_invalid_token(t, mechanism):
    t.serve(starttls_prelude(OAUTH_CAPS)
            + [auth_oauth(mechanism, USER, TOKEN, error=OAUTH_ERROR),
               expect_eof(allow_quit=True)], tls=True)
    log = t.path("maillog")
    oauth_config(t, mechanism, maillog_file=log, smtp_tls_loglevel="4")
    t.hato(["-v", "-v", "-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.stderr_has("invalid_token")
    t.no_command("MAIL")
    secrets_absent(t, t.run.stderr, "-v -v output")
    secrets_absent(t, t.run.stdout, "stdout")
    secrets_absent(t, read_text(t, log, "maillog_file"), "maillog")


@scenario
def oauthbearer(t):
    """smtp_sasl_mechanism_filter = oauthbearer, the token from the password
    map: the exact RFC 7628 initial response, 235, delivery."""
    oauth_success(t, "OAUTHBEARER")


@scenario
def xoauth2(t):
    """smtp_sasl_mechanism_filter = xoauth2: user=...^Aauth=Bearer ...^A^A."""
    oauth_success(t, "XOAUTH2")


@scenario
def oauthbearer_invalid_token(t):
    """The server's JSON error challenge: the client ends the exchange with
    ^A (AQ==), gets 535, defers (75), names invalid_token; the token appears
    in no output at -v -v and smtp_tls_loglevel = 4."""
    oauth_invalid_token(t, "OAUTHBEARER")


@scenario
def xoauth2_invalid_token(t):
    """XOAUTH2's error challenge is answered with an empty line, then 535."""
    oauth_invalid_token(t, "XOAUTH2")


@scenario
def no_common_mechanism(t):
    """Server mechanisms all excluded by smtp_sasl_mechanism_filter: the error
    names the server's list and the filter; no MAIL."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("AUTH CRAM-MD5 DIGEST-MD5"),
             expect_eof(allow_quit=True)])
    t.sasl_config(USER, PASSWORD, smtp_sasl_mechanism_filter="plain, login")
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.stderr_has("CRAM-MD5", "DIGEST-MD5", "/smtp_sasl_mechanism_filter|plain")
    t.no_command("AUTH", "MAIL")


@scenario
def auth_535(t):
    """535 on AUTH: soft bounce by default (75), message says authentication."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("AUTH PLAIN"),
             auth(USER, PASSWORD, reply="535 5.7.8 Error: bad credentials (scripted)"),
             expect_eof(allow_quit=True)])
    t.sasl_config(USER, PASSWORD, maillog_file=t.path("maillog"))
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.stderr_has("authentication", "bad credentials (scripted)")
    t.no_command("MAIL")
    secrets_absent(t, t.run.stderr, "stderr")
    # Deferred, so the log carries 4.7.8 as Postfix's soft bounce does.
    with open(t.path("maillog")) as f:
        log = f.read()
    t.check(re.search(r"to=<%s>, .*dsn=4\.7\.8, status=deferred \(.*bad credentials" % re.escape(R1),
                      log), "maillog has no deferred 4.7.8 line for %s: %r" % (R1, log))


def report_attempt():
    """After a refusal, sendmail's one message ends with QUIT (it went with
    the end of data where the server pipelines); the non-delivery report
    needs a connection of its own, which the server turns away (later_421),
    so the report stays queued."""
    return quit_and_close()


@scenario
def rcpt_one_refused(t):
    """One RCPT of three refused: the other two still get the message; the
    refused one is named with the server's reply; exit status not 0."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("ENHANCEDSTATUSCODES"),
             expect(MAIL_ANY), send("250 2.1.0 Ok"),
             expect(rcpt(R1)), send("250 2.1.5 Ok"),
             expect(rcpt(R2)), send("550 5.1.1 <rcpt2@example.test>: scripted user unknown"),
             expect(rcpt(R3)), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go ahead"), expect_data(), send("250 2.0.0 Ok")]
            + report_attempt(), later_421=True)
    t.config()
    msg = std_message()
    t.hato(["-f", SENDER, R1, R2, R3], msg)
    t.server_ok()
    t.exit_nonzero()
    t.stderr_has(R2, "scripted user unknown")
    body_is(t, dot_stuff(msg))


@scenario
def rcpt_all_refused(t):
    """The only recipient refused as unknown (550 5.1.1): no DATA, EX_NOUSER (67)."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"),
             expect(MAIL_ANY), send("250 2.1.0 Ok"),
             expect(rcpt(R1)), send("550 5.1.1 <rcpt1@example.test>: scripted no such user")]
            + report_attempt(), later_421=True)
    t.config()
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_NOUSER)
    t.stderr_has(R1, "5.1.1", "scripted no such user")
    t.no_command("DATA")


@scenario
def rcpt_all_refused_no_enhanced(t):
    """OpenSMTPD 6.8 offers ENHANCEDSTATUSCODES yet refuses an unknown
    recipient with a bare "550 Invalid recipient": still EX_NOUSER (67),
    not 69 (the placeholder 5.0.0 of the queue record must not count)."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME", "ENHANCEDSTATUSCODES"),
             expect(MAIL_ANY), send("250 2.0.0 Ok"),
             expect(rcpt(R1)), send("550 Invalid recipient: <rcpt1@example.test>")]
            + report_attempt(), later_421=True)
    t.config()
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_NOUSER)
    t.stderr_has(R1, "550 Invalid recipient")
    t.no_command("DATA")


@scenario
def rcpt_all_refused_policy(t):
    """The only recipient refused by policy (554 5.7.1): no DATA, EX_UNAVAILABLE (69)."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"),
             expect(MAIL_ANY), send("250 2.1.0 Ok"),
             expect(rcpt(R1)), send("554 5.7.1 <rcpt1@example.test>: Relay access denied")]
            + report_attempt(), later_421=True)
    t.config()
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_UNAVAILABLE)
    t.stderr_has(R1, "Relay access denied")
    t.no_command("DATA")


# MAIL and RCPT with whatever DSN, BODY, SIZE parameters the library adds.
MAIL_DSN = r"MAIL FROM:<sender@example\.test>(?: [A-Z0-9]+(?:=\S+)?)*"


def rcpt_dsn(addr):
    return r"RCPT TO:<%s>(?: [A-Z]+=\S+)*" % re.escape(addr)


@scenario
def bounce_notify_never(t):
    """-N never: a refused recipient bounces (67) but no report goes to the
    sender (RFC 3461 4.1); the maillog says why; the message is in failed/."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("ENHANCEDSTATUSCODES", "DSN"),
             expect(MAIL_DSN), send("250 2.1.0 Ok"),
             expect(rcpt_dsn(R1)), send("550 5.1.1 <rcpt1@example.test>: scripted no such user"),
             expect_eof(allow_quit=True)])
    t.config(maillog_file=t.path("maillog"))
    t.hato(["-N", "never", "-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_NOUSER)
    t.stderr_has("no non-delivery report", "as -N asked")
    t.no_command("MAIL FROM:<>")
    log = read_text(t, t.path("maillog"), "maillog_file")
    t.check("sender asked for no failure notice (NOTIFY=NEVER): no non-delivery report" in log,
            "maillog does not say why no report was sent: %r" % log)
    failed = t.path(os.path.join("spool", "failed"))
    t.check(any("." not in n for n in os.listdir(failed)) if os.path.isdir(failed) else False,
            "the bounced message is not in %s" % failed)


@scenario
def bounce_dsn_fields(t):
    """-N failure -R hdrs -V go to a DSN server as NOTIFY, ORCPT, RET and
    ENVID; hato's own report (sent by the next queue run) carries
    Original-Envelope-Id, Original-Recipient (hato gave the relay an ORCPT),
    and the headers only."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("ENHANCEDSTATUSCODES", "DSN"),
             expect(MAIL_DSN), send("250 2.1.0 Ok"),
             expect(rcpt_dsn(R1)), send("550 5.1.1 <rcpt1@example.test>: scripted no such user")]
            + quit_and_close(), later_421=True)
    t.config()
    t.hato(["-N", "failure", "-R", "hdrs", "-V", "ENV-7", "-f", SENDER, R1],
           std_message(body=b"the body stays home\n"))
    t.server_ok()
    t.exit_code(EX_NOUSER)
    cmds = t.commands()
    t.check(any(c.startswith("MAIL FROM:<sender@example.test>") and " RET=HDRS" in c
                and " ENVID=ENV-7" in c for c in cmds), "MAIL lacks RET=HDRS ENVID=ENV-7: %r" % cmds)
    t.check("RCPT TO:<rcpt1@example.test> NOTIFY=FAILURE ORCPT=rfc822;rcpt1@example.test" in cmds,
            "RCPT lacks NOTIFY=FAILURE and ORCPT: %r" % cmds)
    # The report waits in the queue; the next run sends it.
    t.serve([GREETING, expect(EHLO), ehlo_reply("ENHANCEDSTATUSCODES", "DSN"),
             expect(r"MAIL FROM:<>.*"), send("250 2.1.0 Ok"),
             expect(rcpt_dsn(SENDER)), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go ahead"), expect_data(),
             send("250 2.0.0 Ok: queued as REPORT")] + quit_and_close(), port=t.srv.port)
    t.hato(["-q"], b"")
    t.server_ok()
    msgs = t.run.server.messages
    if t.check(len(msgs) == 1, "expected the report on the wire, got %d messages" % len(msgs)):
        report = msgs[0].decode("utf-8", "replace").replace("\r\n", "\n")
        for want in ("\nOriginal-Envelope-Id: ENV-7\nReporting-MTA: dns; client.example.test\n",
                     "\nOriginal-Recipient: rfc822; rcpt1@example.test\n"
                     "Final-Recipient: rfc822; rcpt1@example.test\n",
                     "Content-Type: text/rfc822-headers\n"):
            t.check(want in report, "the report lacks %r" % want)
        t.check("the body stays home" not in report, "RET=HDRS, but the report holds the body")


@scenario
def data_451_after_dot(t):
    """451 after the final dot: temporary (75), server text shown."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME")]
            + transaction([R1], final="451 4.3.0 scripted: try again later")[:-3]
            + [expect_eof(allow_quit=True)], later_421=True)
    t.config()
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.stderr_has("try again later")


@scenario
def disconnect_mid_body(t):
    """The server hangs up after the first bytes of a 2 MB body: 75, no crash."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("8BITMIME"),
             expect(MAIL_ANY), send("250 2.1.0 Ok"), expect(rcpt(R1)), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go ahead"), read_bytes(4096), disconnect()])
    t.config()
    body = b"".join(b"line %06d of a long body, long enough to fill the buffers\n" % i
                    for i in range(36000))
    t.hato(["-f", SENDER, R1], std_message(body=body))
    t.server_ok()
    t.deferred()
    t.check(t.run.stderr.strip() != "", "no error message on stderr")


@scenario
def stall_timeout(t):
    """The server reads EHLO and then says nothing: smtp_helo_timeout = 2s ends
    it with 75 and a message about the timeout, within a bound for hangs."""
    t.serve([GREETING, expect(EHLO), stall(limit=25)])
    t.config(smtp_helo_timeout="2s")
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.stderr_has("/time[ds]?[ -]?out")
    t.check(t.run.elapsed < 10, "took %.1fs, expected < 10s" % t.run.elapsed)
    t.check(t.run.elapsed >= 1.8, "gave up after %.2fs, before smtp_helo_timeout = 2s"
            % t.run.elapsed)


@scenario
def chunked_reply(t):
    """Greeting and a multi-line EHLO reply arrive one byte per write."""
    ehlo = (b"250-scripted.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
            b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
    t.serve([send_raw(b"220 scripted.example.test ESMTP\r\n", chunked=1), expect(EHLO),
             send_raw(ehlo, chunked=1)] + transaction([R1]))
    t.config()
    msg = std_message()
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    body_is(t, dot_stuff(msg))


@scenario
def auth_equals_form(t):
    """Only the old "AUTH=PLAIN LOGIN" EHLO line: the client still authenticates."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("AUTH=PLAIN LOGIN", "8BITMIME"),
             auth(USER, PASSWORD)] + transaction([R1]))
    t.sasl_config(USER, PASSWORD)
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    t.check(any(c.upper().startswith("AUTH") for c in t.commands()), "no AUTH sent")


@scenario
def overlong_reply(t):
    """A reply line with no CRLF (100 KB, then up to 32 MB if still read):
    protocol error, bounded memory, no hang."""
    t.serve([GREETING, expect(EHLO), flood(b"250-", 32 * 1024 * 1024),
             expect_eof(allow_quit=True)])
    t.config(smtp_helo_timeout="30s")
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.deferred()
    t.check(t.run.elapsed < 10, "took %.1fs, expected < 10s" % t.run.elapsed)
    t.check(t.run.maxrss_kb < 24 * 1024, "peak RSS %d KiB: the reply line is "
            "buffered without a bound" % t.run.maxrss_kb)
    t.check(t.run.stderr.strip() != "", "no error message on stderr")
    t.no_command("MAIL")


def redacted_run(t, mechanism):
    """STARTTLS, AUTH `mechanism`, -v -v and smtp_tls_loglevel = 4 (the most
    verbose hato gets) plus maillog_file: the trace shows the AUTH command,
    never the password, its base64, or the AUTH argument."""
    t.serve(starttls_prelude("PIPELINING", "AUTH PLAIN LOGIN")
            + [auth(USER, PASSWORD, mechanisms=(mechanism,))]
            + transaction([R1], mail=MAIL_BARE), tls=True)
    log = t.path("maillog")
    t.sasl_config(USER, PASSWORD, maillog_file=log, smtp_tls_security_level="verify",
                  smtp_tls_CAfile=t.ca() + "/ca.crt", smtp_tls_loglevel="4",
                  smtp_sasl_mechanism_filter=mechanism.lower())
    t.hato(["-v", "-v", "-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    t.check(re.search(r"EHLO", t.run.stderr), "-v printed no protocol trace on stderr")
    t.check(re.search(r"AUTH", t.run.stderr), "-v trace does not show the AUTH command")
    logtext = read_text(t, log, "maillog_file")
    t.check(logtext.strip() != "", "maillog_file is empty")
    secrets_absent(t, t.run.stderr, "-v -v output")
    secrets_absent(t, t.run.stdout, "stdout")
    secrets_absent(t, logtext, "maillog")


@scenario
def secrets_redacted(t):
    """AUTH PLAIN at the highest verbosity: no secret in any output."""
    redacted_run(t, "PLAIN")


@scenario
def secrets_redacted_login(t):
    """AUTH LOGIN (the password alone in base64) at the highest verbosity."""
    redacted_run(t, "LOGIN")


@scenario
def sasl_passwd_mode(t):
    """A password file readable by others is a config error (78) naming the
    file; the client does not even connect."""
    t.serve([GREETING, expect_eof(allow_quit=True)])
    t.sasl_config(USER, PASSWORD)
    os.chmod(t.path("sasl_passwd"), 0o644)
    t.hato(["-f", SENDER, R1], std_message())
    t.exit_code(EX_CONFIG)
    t.stderr_has(t.path("sasl_passwd"))
    t.check(t.run.server.connections == 0, "client connected despite the config error")


# -- extensions: CHUNKING, AUTH pipelined, SIZE, 8BITMIME, SMTPUTF8 --------------


def one_group(t, verbs, what):
    """The client lines starting with `verbs` all arrived in one read."""
    group = [l for l in t.run.server.lines if l.text.upper().split(" ")[0] in verbs]
    t.check(len(group) >= len(verbs) and len({l.chunk for l in group}) == 1,
            "%s arrived in %d writes: %r" % (what, len({l.chunk for l in group}),
                                             [(l.text.split(" ")[0], l.chunk) for l in group]))


@scenario
def chunking_one_write(t):
    """STARTTLS, then AUTH PLAIN, MAIL and RCPT in a single write (RFC 4954
    4 lets a one-step AUTH lead a group), and the whole message as BDAT
    LAST once the 235 came (a server refusing the login may read the chunk
    as commands: pipelined-auth-refused-no-bdat): CRLF line ends, no
    dot-stuffing, no end-of-data line."""
    t.serve(starttls_prelude("PIPELINING", "CHUNKING", "8BITMIME", "AUTH PLAIN")
            + [auth(USER, PASSWORD, mechanisms=("PLAIN",)),
               expect(MAIL_ANY), send("250 2.1.0 Ok"), expect(rcpt(R1)), send("250 2.1.5 Ok"),
               expect_bdat(reply="250 2.0.0 Ok: queued as CHUNKED", last=True)]
            + quit_and_close(), tls=True)
    ca = t.ca()
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="verify",
                  smtp_tls_CAfile=ca + "/ca.crt")
    msg = std_message(body=TRICKY_BODY)
    t.hato(["-i", "-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_quiet()
    one_group(t, ("AUTH", "MAIL", "RCPT"), "AUTH, MAIL and RCPT")
    chunks = {l.text.split(" ")[0].upper(): l.chunk for l in t.run.server.lines}
    t.check(chunks.get("BDAT") != chunks.get("AUTH"), "BDAT went with the unanswered AUTH")
    no_dots = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    body_is(t, no_dots if no_dots.endswith(b"\r\n") else no_dots + b"\r\n")


@scenario
def pipelined_auth_refused_no_bdat(t):
    """Dovecot 2.3's submission service before a login: AUTH PLAIN refused,
    then 530 to MAIL and RCPT.  No BDAT follows (its submission-login would
    answer 530 and read the chunk's lines as commands, as it did with
    hato's first BDAT pipelining): QUIT, exit 0 with the message queued."""
    t.serve(starttls_prelude("PIPELINING", "CHUNKING", "8BITMIME", "AUTH PLAIN")
            + [auth(USER, PASSWORD, mechanisms=("PLAIN",),
                    reply="535 5.7.8 Authentication failed."),
               expect(MAIL_ANY), send("530 5.7.0 Authentication required."),
               expect(rcpt(R1)), send("530 5.7.0 Authentication required.")]
            + quit_and_close(), tls=True)
    ca = t.ca()
    t.sasl_config(USER, PASSWORD, smtp_tls_security_level="verify",
                  smtp_tls_CAfile=ca + "/ca.crt")
    t.hato(["-i", "-f", SENDER, R1], std_message(body=b"QUIT\nRSET\n"))
    t.server_ok()
    t.exit_code(EX_OK)
    t.stderr_has("queued", "535")
    t.no_command("BDAT")


@scenario
def chunking_without_pipelining(t):
    """CHUNKING without PIPELINING: MAIL, RCPT and BDAT each wait for the
    reply before."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("CHUNKING", "8BITMIME"),
             expect(MAIL_ANY), send("250 2.1.0 Ok"), expect(rcpt(R1)), send("250 2.1.5 Ok"),
             expect_bdat(last=True)] + quit_and_close())
    t.config()
    t.hato(["-f", SENDER, R1], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    chunks = [l.chunk for l in t.run.server.lines]
    t.check(len(set(chunks)) == len(chunks), "commands sent without waiting for replies: %r"
            % [(l.text, l.chunk) for l in t.run.server.lines])


@scenario
def smtputf8_address(t):
    """A UTF-8 recipient to a server with SMTPUTF8: MAIL says SMTPUTF8 and
    the address goes as UTF-8."""
    addr = "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae@example.test"
    wire = re.escape(addr.encode().decode("latin-1"))
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "8BITMIME", "SMTPUTF8"),
             expect(MAIL_BARE + r".*\bSMTPUTF8\b.*"), send("250 2.1.0 Ok"),
             expect("RCPT TO:<%s>" % wire), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go"), expect_data(), send("250 2.0.0 Ok")]
            + quit_and_close())
    t.config()
    t.hato(["-f", SENDER, addr], std_message())
    t.server_ok()
    t.exit_code(EX_OK)


@scenario
def smtputf8_header_ascii_body(t):
    """UTF-8 in a header, ASCII body, to a server with SMTPUTF8 (Exim 4.96
    showed it): MAIL says SMTPUTF8 and BODY=8BITMIME, and the message goes
    (it was declared 7BIT and stopped mid-stream, exit 70)."""
    hs = [b"From: J\xc3\xb6rg <sender@example.test>", b"To: rcpt1@example.test",
          b"Subject: Gr\xc3\xbc\xc3\x9fe", DATE, b"Message-ID: <scripted.utf8@client.example.test>"]
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "8BITMIME", "SMTPUTF8"),
             expect(MAIL_BARE + r"(?=.*\bBODY=8BITMIME\b)(?=.*\bSMTPUTF8\b).*"),
             send("250 2.1.0 Ok"), expect(rcpt(R1)), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go"), expect_data(), send("250 2.0.0 Ok")]
            + quit_and_close())
    t.config()
    t.hato(["-f", SENDER, R1], message(*hs))
    t.server_ok()
    t.exit_code(EX_OK)


@scenario
def idn_domain_a_label(t):
    """Without SMTPUTF8 a UTF-8 domain goes as its A-label (IDNA 2008)."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "8BITMIME"),
             expect(MAIL_ANY), send("250 2.1.0 Ok"),
             expect(r"RCPT TO:<user@xn--bcher-kva\.example>"), send("250 2.1.5 Ok"),
             expect("DATA"), send("354 go"), expect_data(), send("250 2.0.0 Ok")]
            + quit_and_close())
    t.config()
    t.hato(["-f", SENDER, "user@b\u00fccher.example"], std_message())
    t.server_ok()
    t.exit_code(EX_OK)
    t.no_command("MAIL FROM:<SENDER@EXAMPLE.TEST> SMTPUTF8")


def bounced_for_good(t):
    """The message left the queue for failed/ (a permanent refusal), and
    hato said a report goes to the sender (it waits in the queue: the
    scripted server turns later connections away with 421)."""
    m = re.search(r"non-delivery report for message (\w+)", t.run.stderr)
    if not t.check(m, "stderr does not announce a non-delivery report"):
        return
    spool = t.path("spool")
    failed = os.listdir(os.path.join(spool, "failed"))
    queued = os.listdir(os.path.join(spool, "queue"))
    t.check(any(n.startswith(m.group(1)) for n in failed),
            "message %s is not in failed/ (%r)" % (m.group(1), failed))
    t.check(not any(n.startswith(m.group(1)) for n in queued),
            "message %s is still queued: the refusal is permanent" % m.group(1))


@scenario
def size_too_big(t):
    """A message larger than the server's SIZE is refused before MAIL, for
    good: it bounces (65) instead of waiting in the queue."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "SIZE 200", "8BITMIME")]
            + [expect("QUIT"), send("221 2.0.0 bye"), expect_eof()], later_421=True)
    t.config()
    t.hato(["-f", SENDER, R1], std_message(body=b"x" * 400 + b"\n"))
    t.server_ok()
    t.no_command("MAIL", "RCPT", "DATA", "BDAT")
    t.stderr_has("takes at most 200")
    t.exit_code(EX_DATAERR)
    bounced_for_good(t)


@scenario
def eight_bit_without_8bitmime(t):
    """8-bit content to a server without 8BITMIME is refused before MAIL
    (hato measured it when queueing) and bounces; the error names the
    extension."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "SIZE 10240000")]
            + [expect("QUIT"), send("221 2.0.0 bye"), expect_eof()], later_421=True)
    t.config()
    msg = std_message(body="caf\u00e9 \u2014 8-bit\n".encode())
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.no_command("MAIL", "RCPT", "DATA", "BDAT")
    t.stderr_has("8BITMIME")
    t.exit_code(EX_DATAERR)
    bounced_for_good(t)


@scenario
def discard_chunking(t):
    """smtp_discard_ehlo_keywords = chunking: a server's CHUNKING is ignored
    and the message goes with DATA."""
    t.serve([GREETING, expect(EHLO), ehlo_reply("PIPELINING", "CHUNKING", "8BITMIME")]
            + transaction([R1]))
    t.config(smtp_discard_ehlo_keywords="chunking")
    msg = std_message()
    t.hato(["-f", SENDER, R1], msg)
    t.server_ok()
    t.exit_code(EX_OK)
    t.no_command("BDAT")
    body_is(t, dot_stuff(msg))
