#!/usr/bin/python3
"""LAN submission (issue 4 section 4): "hato -bs" run per connection, as
inetd or a systemd socket unit with Accept=yes runs it -- this file listens
on a loopback port and, for each connection, starts $HATO_BIN -bs -C CONFIG
with the accepted socket as standard input and output.  The mail client is
Python's smtplib (or a raw socket where the bytes matter).

Cases:
  deliver     a message from 127.0.0.1 is accepted (250 queued as ID),
              spooled and relayed by the normal path to the real test
              Postfix: byte-exact in the Maildir, status=sent in the
              maillog; the EHLO offers PIPELINING, SIZE, 8BITMIME,
              ENHANCEDSTATUSCODES and neither STARTTLS nor AUTH
  refused     mynetworks = 127.0.0.2/32, client 127.0.0.1: 554 5.7.1 ...
              not in mynetworks in the greeting, 503 to MAIL, a maillog
              line, nothing queued
  pipelining  MAIL, RCPT, RCPT, DATA in one write; then the message, the
              final dot and QUIT in one write: every reply in order
  oversize    message_size_limit = 2000: SIZE=5000 refused at MAIL (552);
              without SIZE the whole message is read and refused with 552,
              and the session goes on; nothing queued
  dots        dot-stuffed lines arrive unstuffed in the queue file (relay
              down, so the file stays), CRLF stored as LF
  pipe        hato -bs with a pipe as standard input (Symfony Mailer's
              "sendmail -bs"): local, trusted, delivered to the Maildir
  limits      smtpd_timeout = 2s: 421 after silence;
              smtpd_hard_error_limit = 3: 421 after three errors;
              smtpd_client_message_rate_limit = 1: the second MAIL gets 452
  auth        smtpd_sasl_auth_enable = yes with a password file of crypt
              hashes (mkpasswd, else Python's crypt, else openssl passwd -6):
              EHLO offers AUTH PLAIN LOGIN, MAIL before AUTH gets 530, a
              wrong password 535 (logged with the user, never the
              password), smtplib's login (PLAIN) and LOGIN succeed and the
              message is delivered with sasl_username= in the maillog; a
              password file others may read gets 454 and a chmod hint
"""
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import interop  # noqa: E402
from interop import check, log  # noqa: E402


class Inetd:
    """Listens on 127.0.0.1 and runs hato -bs per connection, the socket as
    fd 0 and 1 (stderr apart, as systemd's StandardError=journal)."""

    def __init__(self, t, config):
        self.t = t
        self.config = config
        self.procs = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            p = subprocess.Popen([self.t.hato, "-bs", "-C", self.config], stdin=conn.fileno(),
                                 stdout=conn.fileno(), stderr=subprocess.PIPE)
            conn.close()
            self.procs.append(p)

    def finish(self, timeout=60):
        """Waits for every hato started; returns their stderr, joined."""
        self.sock.close()
        err = []
        for p in self.procs:
            try:
                _, e = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                interop.fail("hato -bs did not exit within %d s" % timeout)
            check(p.returncode == 0, "hato -bs exited %d" % p.returncode)
            err.append(e.decode("utf-8", "replace"))
        text = "".join(err)
        if text:
            log("--- hato stderr:\n%s---" % text)
        return text


def settings(t, extra=()):
    return [("myhostname", "lan.example.test"), ("maillog_file", t.maillog_path())] + list(extra)


def up_config(t, extra=()):
    key = "[127.0.0.1]:%d" % t.port_starttls
    return t.write_config([("relayhost", key)] + t.auth_settings(key) + [
        ("smtp_tls_security_level", "verify"), ("smtp_tls_CAfile", t.ca)] + settings(t, extra),
        "up.cf")


def down_config(t, extra=()):
    return t.write_config([("relayhost", "[127.0.0.1]:%d" % interop.closed_port()),
                           ("smtp_tls_security_level", "none")] + settings(t, extra), "down.cf")


def maillog(t):
    try:
        with open(t.maillog_path()) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def spool(t, sub="queue"):
    d = os.path.join(t.tmp, "spool", sub)
    try:
        return sorted(n for n in os.listdir(d) if "." not in n)
    except FileNotFoundError:
        return []


def message(t, msgid, body=b"hello from the LAN\r\n"):
    return (b"From: Alice <alice@example.test>\r\nTo: alice@example.test\r\nDate: "
            + interop.rfc2822_date().encode() + b"\r\nMessage-ID: " + msgid.encode()
            + b"\r\nSubject: lan " + t.case.encode() + b"\r\n\r\n" + body)


class Raw:
    """A client that writes bytes as given and reads whole replies."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.f = self.s.makefile("rb")

    def reply(self):
        lines = []
        while True:
            line = self.f.readline()
            check(line.endswith(b"\r\n"), "reply line without CRLF or connection closed: %r"
                  % line)
            lines.append(line.decode())
            if line[3:4] != b"-":
                log("S: %s" % "".join(lines).strip())
                return "".join(lines)

    def send(self, data):
        log("C: %r" % data[:300])
        self.s.sendall(data)

    def close(self):
        self.f.close()
        self.s.close()


# ---- cases ------------------------------------------------------------------

def deliver(t):
    inetd = Inetd(t, up_config(t))
    msgid = t.message_id()
    msg = message(t, msgid, b"first line\r\n.a line with a leading dot\r\n..two dots\r\n"
                  b".\r\nend\r\n")
    with smtplib.SMTP("127.0.0.1", inetd.port, timeout=30) as c:
        code, _ = c.ehlo("client.lan")
        check(code == 250, "EHLO: %d" % code)
        feats = c.esmtp_features
        log("features: %s" % feats)
        for want in ("pipelining", "size", "8bitmime", "enhancedstatuscodes"):
            check(want in feats, "EHLO does not offer %s: %s" % (want, feats))
        check(feats["size"] == "10240000", "SIZE is %r, expected the default 10240000"
              % feats["size"])
        for never in ("starttls", "auth"):
            check(never not in feats, "EHLO offers %s: %s" % (never, feats))
        refused = c.sendmail("alice@example.test", ["alice@example.test"], msg)
        check(refused == {}, "recipients refused: %s" % refused)
        check(c.noop()[0] == 250, "NOOP after the message")
    inetd.finish()
    path = t.wait_delivered(msgid, ["alice"])["alice"]
    interop.compare_messages(msg, path)
    ml = maillog(t)
    log("--- maillog:\n%s---" % ml)
    check("connect from [127.0.0.1]" in ml, "maillog has no connect line")
    check(re.search(r"[0-9A-F]{15}: to=<alice@example.test>, relay=127\.0\.0\.1.*status=sent", ml),
          "maillog has no status=sent line")
    check(spool(t) == [], "the queue is not empty: %s" % spool(t))


def refused(t):
    inetd = Inetd(t, up_config(t, [("mynetworks", "127.0.0.2/32")]))
    try:
        smtplib.SMTP("127.0.0.1", inetd.port, timeout=30)
        interop.fail("the client from 127.0.0.1 got a 220 greeting")
    except smtplib.SMTPConnectError as e:
        log("refused: %s %s" % (e.smtp_code, e.smtp_error))
        check(e.smtp_code == 554, "greeting code %d, expected 554" % e.smtp_code)
        text = e.smtp_error.decode()
        check(text.startswith("5.7.1 ") and "not in mynetworks" in text,
              "greeting text: %r" % text)
    # A client that goes on anyway is refused before MAIL.
    r = Raw(inetd.port)
    check(r.reply().startswith("554 5.7.1 "), "greeting")
    r.send(b"EHLO x\r\nMAIL FROM:<alice@example.test>\r\nQUIT\r\n")
    check(r.reply().startswith("503 5.7.1 "), "EHLO after a 554")
    check(r.reply().startswith("503 5.7.1 "), "MAIL after a 554")
    check(r.reply().startswith("221 "), "QUIT")
    r.close()
    inetd.finish()
    ml = maillog(t)
    log("--- maillog:\n%s---" % ml)
    check(re.search(r"reject: CONNECT from \[127\.0\.0\.1\]: 554 5\.7\.1 .*not in mynetworks", ml),
          "maillog has no reject line for the greeting")
    check(re.search(r"reject: MAIL from \[127\.0\.0\.1\]: 503 5\.7\.1", ml),
          "maillog has no reject line for MAIL")
    check(spool(t) == [], "something was queued: %s" % spool(t))


def pipelining(t):
    inetd = Inetd(t, down_config(t))
    r = Raw(inetd.port)
    check(r.reply().startswith("220 "), "greeting")
    r.send(b"EHLO client.lan\r\n")
    check("PIPELINING" in r.reply(), "no PIPELINING")
    r.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\n"
           b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
    for want in ("250 2.1.0", "250 2.1.5", "250 2.1.5", "354 "):
        got = r.reply()
        check(got.startswith(want), "expected %s, got %r" % (want, got))
    msgid = t.message_id()
    r.send(message(t, msgid) + b".\r\nMAIL FROM:<x@example.test>\r\nRSET\r\nQUIT\r\n")
    got = r.reply()
    check(re.match(r"250 2\.0\.0 Ok: queued as [0-9A-F]{15}\r\n$", got), "after the dot: %r" % got)
    for want in ("250 2.1.0", "250 2.0.0", "221 "):
        got = r.reply()
        check(got.startswith(want), "expected %s, got %r" % (want, got))
    r.close()
    inetd.finish()
    ids = spool(t)
    check(len(ids) == 1, "expected one queued message, found %s" % ids)
    with open(os.path.join(t.tmp, "spool", "queue", ids[0]), "rb") as f:
        head = f.read(4096)
    check(b"\nrcpt alice@example.test\nrcpt bob@example.test\n" in head,
          "the queue file lacks the recipients: %r" % head[:300])


def oversize(t):
    inetd = Inetd(t, down_config(t, [("message_size_limit", "2000")]))
    big = message(t, t.message_id(), b"x" * 70 + b"\r\n") + b"y" * 70 * 80
    with smtplib.SMTP("127.0.0.1", inetd.port, timeout=30) as c:
        c.ehlo("client.lan")
        check(c.esmtp_features.get("size") == "2000", "SIZE %r" % c.esmtp_features.get("size"))
        try:
            c.sendmail("alice@example.test", ["alice@example.test"], big)
            interop.fail("a message of %d bytes was accepted with SIZE" % len(big))
        except smtplib.SMTPSenderRefused as e:
            log("refused at MAIL: %s %s" % (e.smtp_code, e.smtp_error))
            check(e.smtp_code == 552 and e.smtp_error.startswith(b"5.3.4"), "MAIL: %s %s"
                  % (e.smtp_code, e.smtp_error))
    # Without SIZE= the limit holds at the end of DATA.
    r = Raw(inetd.port)
    r.reply()
    r.send(b"EHLO client.lan\r\n")
    r.reply()
    r.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    for want in ("250", "250", "354"):
        check(r.reply().startswith(want), "before the message")
    r.send(big.replace(b"\r\n", b"\r\n") + b"\r\n.\r\n")
    got = r.reply()
    check(got.startswith("552 5.3.4 ") and "message_size_limit" in got, "after the dot: %r" % got)
    r.send(b"NOOP\r\nQUIT\r\n")
    check(r.reply().startswith("250 "), "the session does not go on after the 552")
    r.reply()
    r.close()
    inetd.finish()
    check(spool(t) == [], "an oversize message was queued: %s" % spool(t))
    tmp = os.path.join(t.tmp, "spool", "tmp")
    check(not os.path.isdir(tmp) or os.listdir(tmp) == [], "tmp/ is not empty")
    check(re.search(r"reject: DATA from \[127\.0\.0\.1\]: 552 5\.3\.4", maillog(t)),
          "maillog has no reject line for the oversize message")


def dots(t):
    inetd = Inetd(t, down_config(t))
    msgid = t.message_id()
    body = b"a\r\n..\r\n...\r\n..x\r\n.y\r\n. \r\nlast\r\n"
    r = Raw(inetd.port)
    r.reply()
    r.send(b"HELO client.lan\r\n")
    r.reply()
    r.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    for _ in range(3):
        r.reply()
    r.send(message(t, msgid, body) + b".\r\n")
    check(r.reply().startswith("250 2.0.0 Ok: queued as"), "message not queued")
    r.send(b"QUIT\r\n")
    r.reply()
    r.close()
    inetd.finish()
    ids = spool(t)
    check(len(ids) == 1, "expected one queued message, found %s" % ids)
    with open(os.path.join(t.tmp, "spool", "queue", ids[0]), "rb") as f:
        data = f.read()
    stored = data.split(b"\nend\n", 1)[1]
    want = message(t, msgid, b"a\r\n.\r\n..\r\n.x\r\ny\r\n \r\nlast\r\n").replace(b"\r\n", b"\n")
    # The Date header was generated for the sent copy at another second.
    stored_n = re.sub(rb"(?m)^Date: .*$", b"Date: -", stored)
    want_n = re.sub(rb"(?m)^Date: .*$", b"Date: -", want)
    check(stored_n == want_n, "queue file holds %r, expected %r" % (stored_n, want_n))


def pipe(t):
    cfg = up_config(t)
    msgid = t.message_id()
    msg = message(t, msgid, b"submitted over a pipe\r\n.dot\r\n")
    stuffed = msg.replace(b"\r\n.", b"\r\n..")
    session = (b"EHLO localhost\r\nMAIL FROM:<alice@example.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\nDATA\r\n" + stuffed + b".\r\nQUIT\r\n")
    p = subprocess.run([t.hato, "-bs", "-C", cfg], input=session, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    out = p.stdout.decode()
    log("--- stdout:\n%s--- stderr:\n%s---" % (out, p.stderr.decode()))
    check(p.returncode == 0, "hato -bs exited %d" % p.returncode)
    check(out.startswith("220 lan.example.test ESMTP"), "no greeting")
    check(re.search(r"\r\n250 2\.0\.0 Ok: queued as [0-9A-F]{15}\r\n221 2\.0\.0 Bye\r\n$", out),
          "the message was not queued: %r" % out)
    path = t.wait_delivered(msgid, ["alice"])["alice"]
    interop.compare_messages(msg, path)
    check("connect from local" in maillog(t), "maillog has no local connect line")


def limits(t):
    inetd = Inetd(t, down_config(t, [("smtpd_timeout", "2s"), ("smtpd_hard_error_limit", "3"),
                                      ("smtpd_client_message_rate_limit", "1")]))
    r = Raw(inetd.port)
    r.reply()
    start = time.monotonic()
    got = r.reply()
    took = time.monotonic() - start
    check(got.startswith("421 4.4.2 ") and 1.5 < took < 10, "after %.1f s of silence: %r"
          % (took, got))
    r.close()

    r = Raw(inetd.port)
    r.reply()
    r.send(b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
    for want in ("500 5.5.2 ", "500 5.5.2 ", "500 5.5.2 ", "421 4.7.0 "):
        got = r.reply()
        check(got.startswith(want), "expected %r, got %r" % (want, got))
    check(r.f.readline() == b"", "the connection stays open after 421")
    r.close()

    r = Raw(inetd.port)
    r.reply()
    r.send(b"EHLO c\r\n")
    r.reply()
    r.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    for _ in range(3):
        r.reply()
    r.send(message(t, t.message_id()) + b".\r\n")
    check(r.reply().startswith("250 2.0.0"), "first message")
    r.send(b"MAIL FROM:<alice@example.test>\r\n")
    got = r.reply()
    check(got.startswith("452 4.7.0 ") and "smtpd_client_message_rate_limit" in got,
          "second MAIL: %r" % got)
    r.send(b"QUIT\r\n")
    r.reply()
    r.close()
    inetd.finish()
    ml = maillog(t)
    check("timeout exceeded" in ml and "too many errors" in ml, "maillog lacks the 421s:\n%s" % ml)


def crypt_hash(password):
    """A crypt(3) hash as an admin makes one: mkpasswd (package whois,
    yescrypt by default), else Python's crypt module (gone in 3.13), else
    openssl passwd -6 (sha512-crypt)."""
    if shutil.which("mkpasswd"):
        r = subprocess.run(["mkpasswd", "--stdin"], input=password.encode(),
                           capture_output=True)
        if r.returncode == 0:
            return r.stdout.decode().strip()
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    except ImportError:
        pass
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                       capture_output=True, check=True)
    return r.stdout.decode().strip()


def auth(t):
    password = "correct horse 7"
    pwfile = os.path.join(t.tmp, "smtpd_users")
    h = crypt_hash(password)
    log("hash: %s..." % h[:4])
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, ("# hato -bs users\nbob:*\nalice:%s\n" % h).encode())
    os.close(fd)
    inetd = Inetd(t, up_config(t, [("smtpd_sasl_auth_enable", "yes"),
                                   ("smtpd_sasl_password_file", pwfile)]))
    msgid = t.message_id()
    msg = message(t, msgid)

    with smtplib.SMTP("127.0.0.1", inetd.port, timeout=30) as c:
        c.ehlo("client.lan")
        feats = c.esmtp_features
        log("features: %s" % feats)
        check(feats.get("auth", "").split() == ["PLAIN", "LOGIN"], "EHLO AUTH: %r" % feats)
        code, text = c.mail("alice@example.test")
        check(code == 530 and b"5.7.0" in text, "MAIL before AUTH: %d %r" % (code, text))
        try:
            c.login("alice", "wrong password")
            interop.fail("a wrong password was accepted")
        except smtplib.SMTPAuthenticationError as e:
            check(e.smtp_code == 535 and b"5.7.8" in e.smtp_error, "wrong password: %d %r"
                  % (e.smtp_code, e.smtp_error))
        try:
            c.login("mallory", password)
            interop.fail("an unknown user was accepted")
        except smtplib.SMTPAuthenticationError as e:
            check(e.smtp_code == 535, "unknown user: %d" % e.smtp_code)
        code, _ = c.login("alice", password)
        check(code == 235, "login: %d" % code)
        refused = c.sendmail("alice@example.test", ["alice@example.test"], msg)
        check(refused == {}, "recipients refused: %s" % refused)

    # LOGIN, the two-step mechanism, without an initial response.
    with smtplib.SMTP("127.0.0.1", inetd.port, timeout=30) as c:
        c.ehlo("client.lan")
        c.user, c.password = "alice", password
        code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        check(code == 235, "AUTH LOGIN: %d" % code)
        check(c.mail("alice@example.test")[0] == 250, "MAIL after AUTH LOGIN")
        c.rset()

    # A password file others may read: refused, and the maillog says how to fix it.
    os.chmod(pwfile, 0o644)
    with smtplib.SMTP("127.0.0.1", inetd.port, timeout=30) as c:
        c.ehlo("client.lan")
        try:
            c.login("alice", password)
            interop.fail("AUTH against a world-readable password file succeeded")
        except smtplib.SMTPAuthenticationError as e:
            check(e.smtp_code == 454, "world-readable file: %d %r" % (e.smtp_code, e.smtp_error))
    inetd.finish()

    path = t.wait_delivered(msgid, ["alice"])["alice"]
    interop.compare_messages(msg, path)
    ml = maillog(t)
    log("--- maillog:\n%s---" % ml)
    check(re.search(r"reject: AUTH from \[127\.0\.0\.1\]: 535 5\.7\.8 .*sasl_username=alice",
                    ml), "maillog has no failed AUTH line for alice")
    check("sasl_username=mallory" in ml, "maillog has no failed AUTH line for mallory")
    check(re.search(r"[0-9A-F]{15}: client=\[127\.0\.0\.1\], sasl_method=PLAIN, "
                    r"sasl_username=alice", ml), "maillog has no sasl_username= for the message")
    check("reject: MAIL from [127.0.0.1]: 530 5.7.0" in ml, "maillog has no 530 line")
    check("chmod 0640 " + pwfile in ml, "maillog does not name the chmod to run")
    check(password not in ml and "wrong password" not in ml, "a password is in the maillog")


CASES = {"deliver": deliver, "refused": refused, "pipelining": pipelining,
         "oversize": oversize, "dots": dots, "pipe": pipe, "limits": limits, "auth": auth}

if __name__ == "__main__":
    interop.main(lambda case, env: case(env), CASES)
