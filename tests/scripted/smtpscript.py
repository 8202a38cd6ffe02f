#!/usr/bin/python3
"""smtpscript: a scripted SMTP server for testing hato on loopback.

A scenario is a list of steps played against one client connection:

    script = [
        send("220 scripted ESMTP"),
        expect(r"EHLO \\S+"),
        send("250-scripted", "250 PIPELINING"),
        ...
    ]
    srv = Server(script).start()          # ephemeral port in srv.port
    ...run the client...
    res = srv.finish()                     # Result: ok, failures, transcript

The server records every chunk the client sent (so a test can check CRLF,
dot-stuffing and how many writes a command group took), every command line,
and every message body.  A client that deviates from the script (wrong line,
bare LF, bytes where none may be) fails the scenario with a message naming
the step; the server then answers 421 and hangs up so the client ends soon.

Python 3.11 standard library only.  CLI: `smtpscript.py serve NAME` runs the
server side of a named scenario from scenarios.py and prints the hato command
to run against it by hand.
"""

import base64
import binascii
import bisect
import json
import re
import socket
import ssl
import threading
import time

# A client line longer than this is a deviation (RFC 5321 4.5.3.1.4: 512 for
# command lines; AUTH lines may be longer, RFC 4954 4 lifts it to 12288).
MAX_CLIENT_LINE = 12288
# How long a step waits for the client before calling it a hang.
DEFAULT_READ_TIMEOUT = 10.0


class Deviation(Exception):
    """The client did something the script did not allow."""


class Closed(Exception):
    """The step ended the connection on purpose (disconnect, failed TLS)."""


class Line:
    def __init__(self, text, chunk, tls):
        self.text = text        # without CRLF, decoded as latin-1
        self.chunk = chunk      # index in Result.reads of the chunk holding its end
        self.tls = tls

    def __repr__(self):
        return "Line(%r, chunk=%d, tls=%s)" % (self.text, self.chunk, self.tls)


class Result:
    def __init__(self):
        self.failures = []      # deviations and step errors, human-readable
        self.transcript = []    # (who, text): S server, C client, * note, ! failure
        self.reads = []         # (seconds since accept, bytes, tls) per recv()
        self.lines = []         # Line per command line the client sent
        self.messages = []      # raw DATA content up to and including CRLF.CRLF
        self.partial = b""      # bytes read by read_bytes() (e.g. an aborted body)
        self.auth = []          # decoded (authzid, user, password) the client sent
        self.connections = 0
        self.tls_version = None
        self.done = False       # the script ran to its end

    @property
    def ok(self):
        return self.connections >= 1 and self.done and not self.failures

    def client_bytes(self):
        return b"".join(r[1] for r in self.reads)

    def commands(self):
        return [l.text for l in self.lines]

    def note(self, who, text):
        self.transcript.append((who, redact(text)))

    def fail(self, text):
        text = redact(text)
        self.failures.append(text)
        self.note("!", text)

    def format(self):
        out = []
        for who, text in self.transcript:
            out.append("%s: %s" % (who, text))
        return "\n".join(out)


def _show(data, limit=160):
    text = data.decode("latin-1")
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > limit:
        text = text[:limit] + "...(%d bytes)" % len(data)
    return text


# -- keeping credentials out of the harness's own output ----------------------
# The wire legitimately carries the test passwords and tokens; the transcript,
# the failure messages and the reports do not, so tests/secrets can grep every
# test's output for them and blame only hato.

_SECRETS = set()


def base64_cores(secret):
    """Substrings that any base64 text holding `secret` (at any byte offset,
    with anything around it) must contain: one per alignment."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    cores = set()
    for k in range(3):
        total = k + len(raw)
        enc = base64.b64encode(b"\0" * k + raw).decode()
        core = enc[4 if k else 0:(total // 3) * 4]
        if len(core) >= 8:
            cores.add(core)
    return cores


def register_secret(*values):
    """Redact each value, and base64 holding it, from notes and failures."""
    for v in values:
        if v:
            _SECRETS.add(v)
            _SECRETS.update(base64_cores(v))


def redact(text):
    for s in sorted(_SECRETS, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "[secret]")
    return text


def redact_client_line(text, in_auth):
    """AUTH arguments and the lines of a SASL exchange, as the transcript
    shows them: the mechanism and a byte count, never the data."""
    words = text.split(" ")
    if len(words) >= 2 and words[0].upper() == "AUTH":
        if len(words) == 2:
            return text
        return "%s %s <initial response, %d bytes>" % (words[0], words[1], len(words[2]))
    if in_auth:
        return "<SASL response, %d bytes>" % len(text)
    return redact(text)


class Session:
    """One client connection: a recording reader/writer plus script state."""

    def __init__(self, sock, result, certs, read_timeout, cert=None, key=None,
                 tls_tweak=None):
        self.sock = sock
        self.result = result
        self.certs = certs
        self.cert, self.key, self.tls_tweak = cert, key, tls_tweak
        self.in_auth = False    # between an AUTH command and its final reply
        self.read_timeout = read_timeout
        self.buf = bytearray()
        self.base = 0           # absolute stream offset of buf[0]
        self.chunk_starts = []  # absolute stream offset where each read began
        self.total = 0
        self.tls = False
        self.eof = False
        self.t0 = time.monotonic()

    # -- reading ---------------------------------------------------------

    def _recv(self, timeout):
        """Read one chunk into buf; False on EOF."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            self.result.note("*", "read error: %s" % e)
            data = b""
        if not data:
            self.eof = True
            self.result.note("*", "client closed the connection")
            return False
        self.chunk_starts.append(self.total)
        self.total += len(data)
        self.result.reads.append((time.monotonic() - self.t0, data, self.tls))
        self.buf += data
        return True

    def chunk_of(self, offset):
        return bisect.bisect_right(self.chunk_starts, offset) - 1

    def _consume(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.base += n
        return data

    def read_line(self, timeout=None, what="a command line"):
        deadline = time.monotonic() + (timeout or self.read_timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                if i == 0 or self.buf[i - 1] != 0x0D:
                    raise Deviation("bare LF in client line %r"
                                    % _show(bytes(self.buf[:i + 1])))
                end_chunk = self.chunk_of(self.base + i)
                raw = self._consume(i + 1)
                line = Line(raw[:-2].decode("latin-1"), end_chunk, self.tls)
                self.result.lines.append(line)
                shown = redact_client_line(line.text, self.in_auth)
                if line.text.upper().startswith("AUTH "):
                    self.in_auth = True
                self.result.note("C", "[%d] %s" % (end_chunk, shown))
                return line
            if len(self.buf) > MAX_CLIENT_LINE:
                raise Deviation("client line longer than %d bytes" % MAX_CLIENT_LINE)
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deviation("timed out waiting for %s" % what)
            try:
                if not self._recv(left):
                    raise Deviation("client closed the connection while the script "
                                    "waited for %s%s" % (what, (", partial line %r"
                                    % _show(bytes(self.buf))) if self.buf else ""))
            except socket.timeout:
                raise Deviation("timed out waiting for %s" % what)

    # -- writing ---------------------------------------------------------

    def write(self, data, label=None):
        """label None: note the lines sent; False: note nothing."""
        self.sock.settimeout(self.read_timeout)
        self.sock.sendall(data)
        if self.in_auth and not data.startswith(b"334"):
            self.in_auth = False    # the exchange's final reply
        if label is False:
            return
        if label is not None:
            self.result.note("S", label)
        else:
            for l in data.decode("latin-1").split("\r\n"):
                if l:
                    self.result.note("S", l)

    # -- TLS -------------------------------------------------------------

    def server_context(self):
        if self.certs is None and self.cert is None:
            raise Deviation("script uses TLS but the server has no certificate")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert or self.certs + "/server.crt",
                            self.key or self.certs + "/server.key")
        if self.tls_tweak:
            self.tls_tweak(ctx)
        return ctx

    def wrap(self):
        """TLS handshake; on failure the plain socket stays usable, so a script
        can still check that the client sends nothing after it."""
        ctx = self.server_context()
        raw = self.sock.dup()  # wrap_socket closes the socket it was given on failure
        self.sock.settimeout(self.read_timeout)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError):
            self.sock = raw
            raise
        raw.close()
        self.tls = True
        self.result.tls_version = self.sock.version()
        self.result.note("*", "TLS handshake done: %s %s"
                         % (self.sock.version(), self.sock.cipher()[0]))


# -- steps -----------------------------------------------------------------
# Each step is an object with describe() and run(session).


class Step:
    def describe(self):
        return self.__class__.__name__


class send(Step):
    """Send reply lines in one write; each gets CRLF appended."""

    def __init__(self, *lines):
        self.data = "".join(l + "\r\n" for l in lines).encode("latin-1")

    def describe(self):
        return "send %s" % _show(self.data, 60)

    def run(self, s):
        s.write(self.data)


class send_raw(Step):
    """Send raw bytes; chunked=N writes N bytes at a time with a small delay."""

    def __init__(self, data, chunked=0, delay=0.003):
        self.data, self.chunked, self.delay = data, chunked, delay

    def describe(self):
        return "send_raw %s" % _show(self.data, 60)

    def run(self, s):
        if not self.chunked:
            s.write(self.data)
            return
        for i in range(0, len(self.data), self.chunked):
            s.write(self.data[i:i + self.chunked], label=False)
            time.sleep(self.delay)
        s.result.note("S", "(in %d-byte writes) %s" % (self.chunked, _show(self.data)))


class inject(send_raw):
    """Raw bytes in a single write (e.g. a 220 plus a forged reply)."""

    def __init__(self, data):
        super().__init__(data)

    def describe(self):
        return "inject %s" % _show(self.data, 60)


class flood(Step):
    """Send `prefix` then filler without any CRLF, up to `total` bytes or until
    the client hangs up: an over-long reply line."""

    def __init__(self, prefix, total, piece=65536):
        self.prefix, self.total, self.piece = prefix, total, piece

    def describe(self):
        return "flood %d bytes without CRLF" % self.total

    def run(self, s):
        sent = 0
        data = self.prefix + b"x" * (self.piece - len(self.prefix))
        s.sock.settimeout(5.0)
        try:
            while sent < self.total:
                s.sock.sendall(data)
                sent += len(data)
                data = b"x" * self.piece
        except (OSError, socket.timeout) as e:
            s.result.note("*", "flood stopped after %d bytes: %s" % (sent, e))
        s.result.note("S", "%s... (%d bytes, no CRLF)" % (_show(self.prefix), sent))
        s.flooded = sent


class expect(Step):
    """Read one CRLF-terminated line; it must fully match `pattern`
    (case-insensitive).  `check(match)` may return an error string."""

    def __init__(self, pattern, check=None):
        self.pattern = pattern
        self.regex = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        self.check = check

    def describe(self):
        return "expect /%s/" % self.pattern

    def run(self, s):
        line = s.read_line(what="a line matching /%s/" % self.pattern)
        m = self.regex.fullmatch(line.text)
        if not m:
            raise Deviation("expected /%s/, client sent %r" % (self.pattern, line.text))
        if self.check:
            err = self.check(m)
            if err:
                raise Deviation("line %r: %s" % (line.text, err))


def _b64(text):
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


class auth(Step):
    """Accept AUTH PLAIN with an initial response, or AUTH LOGIN (with or
    without one); check the credentials and answer 235 (or `reply`)."""

    def __init__(self, user, password, mechanisms=("PLAIN", "LOGIN"),
                 reply="235 2.7.0 Authentication successful"):
        self.user, self.password = user, password
        self.mechanisms, self.reply = mechanisms, reply

    def describe(self):
        return "auth %s" % "|".join(self.mechanisms)

    def run(self, s):
        line = s.read_line(what="AUTH")
        words = line.text.split(" ")
        if len(words) < 2 or words[0].upper() != "AUTH" or \
                words[1].upper() not in self.mechanisms:
            raise Deviation("expected AUTH %s, client sent %r"
                            % ("|".join(self.mechanisms), line.text))
        mech = words[1].upper()
        if mech == "PLAIN":
            if len(words) != 3:
                raise Deviation("AUTH PLAIN without an initial response: %r" % line.text)
            raw = _b64(words[2])
            parts = raw.split(b"\0") if raw is not None else []
            if len(parts) != 3:
                raise Deviation("AUTH PLAIN response is not base64 of "
                                "authzid NUL user NUL password")
            got = tuple(p.decode("utf-8", "replace") for p in parts)
        else:
            if len(words) == 3:
                user = _b64(words[2])
            else:
                s.write(b"334 VXNlcm5hbWU6\r\n")
                user = _b64(s.read_line(what="LOGIN user name").text)
            s.write(b"334 UGFzc3dvcmQ6\r\n")
            pw = _b64(s.read_line(what="LOGIN password").text)
            if user is None or pw is None:
                raise Deviation("AUTH LOGIN response is not base64")
            got = ("", user.decode("utf-8", "replace"), pw.decode("utf-8", "replace"))
        s.result.auth.append(got)
        if got[1:] != (self.user, self.password):
            raise Deviation("AUTH %s with user %r and a wrong password" % (mech, got[1]))
        s.write((self.reply + "\r\n").encode())


def oauth_response(mechanism, user, token, host, port):
    """The initial client response: RFC 7628 section 3.1 for OAUTHBEARER
    (GS2 header with the authzid, then host, port and auth, each ended by
    ^A, and a final ^A), Google's documented form for XOAUTH2."""
    if mechanism == "OAUTHBEARER":
        return ("n,a=%s,\x01host=%s\x01port=%d\x01auth=Bearer %s\x01\x01"
                % (user, host, port, token)).encode()
    return ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()


class auth_oauth(Step):
    """Accept AUTH OAUTHBEARER or XOAUTH2, with the initial response on the
    AUTH line or after an empty 334; it must be exactly oauth_response() for
    the address the client connected to (host as given, the server's port).

    error: a dict sent as the server's JSON error challenge (334 base64);
    the client must then end the exchange (RFC 7628 3.2.3: a single ^A,
    "AQ==", for OAUTHBEARER; an empty line for XOAUTH2) before `reply`."""

    def __init__(self, mechanism, user, token, host="127.0.0.1", error=None,
                 reply=None):
        self.mechanism, self.user, self.token = mechanism.upper(), user, token
        self.host, self.error = host, error
        self.reply = reply or ("535 5.7.8 Username and Password not accepted (scripted)"
                               if error else "235 2.7.0 Authentication successful")

    def describe(self):
        return "auth %s%s" % (self.mechanism, " (error challenge)" if self.error else "")

    def run(self, s):
        line = s.read_line(what="AUTH %s" % self.mechanism)
        words = line.text.split(" ")
        if len(words) not in (2, 3) or words[0].upper() != "AUTH" or \
                words[1].upper() != self.mechanism:
            raise Deviation("expected AUTH %s, client sent %r" % (self.mechanism, line.text))
        if len(words) == 3:
            got = _b64(words[2])
        else:
            s.write(b"334 \r\n")
            got = _b64(s.read_line(what="the %s initial response" % self.mechanism).text)
        port = s.sock.getsockname()[1]
        want = oauth_response(self.mechanism, self.user, self.token, self.host, port)
        if got is None:
            raise Deviation("AUTH %s initial response is not base64" % self.mechanism)
        s.result.auth.append(("", self.user, got.decode("utf-8", "replace")))
        if got != want:
            raise Deviation("AUTH %s initial response %r, expected %r"
                            % (self.mechanism, got, want))
        if self.error is not None:
            challenge = base64.b64encode(json.dumps(self.error).encode()).decode()
            s.write(("334 %s\r\n" % challenge).encode())
            end = s.read_line(what="the client's end of the failed exchange").text
            expected = "AQ==" if self.mechanism == "OAUTHBEARER" else ""
            if end != expected:
                raise Deviation("after the error challenge the client sent %r, expected %r"
                                % (end, expected))
        s.write((self.reply + "\r\n").encode())


class expect_data(Step):
    """Read a message body up to CRLF.CRLF and store it raw."""

    def __init__(self, timeout=None):
        self.timeout = timeout

    def run(self, s):
        deadline = time.monotonic() + (self.timeout or s.read_timeout)
        start = s.base
        while True:
            if s.buf.startswith(b".\r\n"):
                end = 3
                break
            i = s.buf.find(b"\r\n.\r\n")
            if i >= 0:
                end = i + 5
                break
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not s._recv(left):
                    raise Deviation("message body not ended by CRLF.CRLF "
                                    "(%d bytes so far)" % len(s.buf))
            except socket.timeout:
                raise Deviation("timed out in the message body (%d bytes so far, "
                                "no CRLF.CRLF)" % len(s.buf))
        s.body_first_chunk = s.chunk_of(start)
        data = s._consume(end)
        s.result.messages.append(data)
        s.result.note("C", "[%d] <message: %d bytes, ending %r>"
                      % (s.chunk_of(s.base - 1), len(data), _show(data[-12:])))


class expect_bdat(Step):
    """Read "BDAT n [LAST]" and the n octets after it (RFC 3030), then answer
    `reply` (a 250 by default; the reply to LAST is the message's final
    one).  The chunks of one message are joined into Result.messages when
    the LAST chunk arrives.  last: whether this chunk must be the last
    (None: either, and the scenario's next step says what follows)."""

    def __init__(self, reply="250 2.0.0 Ok", last=None):
        self.reply, self.last = reply, last

    def describe(self):
        return "expect BDAT" + {None: "", True: " LAST", False: " (not last)"}[self.last]

    def run(self, s):
        line = s.read_line(what="BDAT n [LAST]")
        m = re.fullmatch(r"BDAT (\d+)( LAST)?", line.text, re.IGNORECASE)
        if not m:
            raise Deviation("expected BDAT n [LAST], client sent %r" % line.text)
        n, last = int(m.group(1)), m.group(2) is not None
        if self.last is not None and last != self.last:
            raise Deviation("BDAT %s LAST, the script wanted it %s"
                            % ("with" if last else "without",
                               "last" if self.last else "not last"))
        deadline = time.monotonic() + s.read_timeout
        while len(s.buf) < n:
            try:
                if not s._recv(max(deadline - time.monotonic(), 0)):
                    raise Deviation("client closed inside a BDAT chunk (%d of %d bytes)"
                                    % (len(s.buf), n))
            except socket.timeout:
                raise Deviation("timed out inside a BDAT chunk (%d of %d bytes)"
                                % (len(s.buf), n))
        data = s._consume(n)
        s.bdat_parts = getattr(s, "bdat_parts", []) + [data]
        s.result.note("C", "[%d] <BDAT chunk: %d bytes%s>"
                      % (s.chunk_of(s.base - 1), n, ", last" if last else ""))
        if last:
            s.result.messages.append(b"".join(s.bdat_parts))
            s.bdat_parts = []
        s.write((self.reply + "\r\n").encode())


class read_bytes(Step):
    """Read at least n raw bytes (e.g. the start of a body) into Result.partial."""

    def __init__(self, n):
        self.n = n

    def run(self, s):
        deadline = time.monotonic() + s.read_timeout
        while len(s.buf) < self.n:
            try:
                if not s._recv(max(deadline - time.monotonic(), 0)):
                    raise Deviation("client closed before sending %d bytes" % self.n)
            except socket.timeout:
                raise Deviation("timed out waiting for %d bytes" % self.n)
        s.result.partial += s._consume(len(s.buf))
        s.result.note("C", "<%d raw bytes>" % len(s.result.partial))


class starttls(Step):
    """TLS handshake as server.  must_fail: the client is expected to abort the
    handshake (e.g. it cannot verify the certificate).  may_fail: either way
    (a client may check a pin in the handshake or right after it; under TLS
    1.3 the server's handshake ends before the client has judged it)."""

    def __init__(self, must_fail=False, may_fail=False):
        self.must_fail, self.may_fail = must_fail, may_fail

    def run(self, s):
        if s.buf:
            raise Deviation("client sent %r after STARTTLS before the handshake"
                            % _show(bytes(s.buf)))
        try:
            s.wrap()
        except (ssl.SSLError, OSError) as e:
            if not (self.must_fail or self.may_fail):
                raise Deviation("TLS handshake failed: %s" % e)
            s.result.note("*", "TLS handshake failed as expected: %s" % e)
            s.after_failed_handshake = True
            return
        if self.must_fail:
            raise Deviation("TLS handshake succeeded, but the client should have "
                            "refused it")


class sleep(Step):
    def __init__(self, seconds):
        self.seconds = seconds

    def describe(self):
        return "sleep %gs" % self.seconds

    def run(self, s):
        time.sleep(self.seconds)


class disconnect(Step):
    def run(self, s):
        s.result.note("*", "server hangs up")
        raise Closed()


class stall(Step):
    """Answer nothing until the client gives up (EOF); bytes it sends are
    recorded but not answered.  Failing if it is still there after `limit`."""

    def __init__(self, limit=30.0):
        self.limit = limit

    def describe(self):
        return "stall up to %gs" % self.limit

    def run(self, s):
        t = time.monotonic()
        deadline = t + self.limit
        s.result.note("*", "server stalls")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deviation("client still connected after the server stalled "
                                "for %gs" % self.limit)
            try:
                if not s._recv(left):
                    break
            except socket.timeout:
                continue
        s.result.note("*", "client gave up after %.2fs" % (time.monotonic() - t))


class expect_eof(Step):
    """The client must close now.  allow_quit: it may first send RSET
    (answered 250) and QUIT (answered 221); anything else is a deviation."""

    def __init__(self, allow_quit=False, timeout=None):
        self.allow_quit, self.timeout = allow_quit, timeout

    def describe(self):
        return "expect EOF" + (" (QUIT allowed)" if self.allow_quit else "")

    def run(self, s):
        deadline = time.monotonic() + (self.timeout or s.read_timeout)
        while True:
            if s.buf and getattr(s, "after_failed_handshake", False):
                # a client may still send an alert or close_notify record
                # (TLS 1.3 wraps them as type 23): those are not plaintext
                b = s.buf
                if len(b) >= 5 and b[0] in (21, 23) and b[1] == 3:
                    n = 5 + int.from_bytes(b[3:5], "big")
                    if len(b) >= n:
                        s._consume(n)
                        s.result.note("*", "TLS record type %d after the failed "
                                      "handshake ignored" % b[0])
                        continue
                    # wait for the rest of the record
                elif not self.allow_quit:
                    raise Deviation("client sent %r after the failed TLS handshake"
                                    % _show(bytes(b)))
            elif s.buf:
                if not self.allow_quit:
                    raise Deviation("client sent %r where it should have hung up"
                                    % _show(bytes(s.buf)))
                line = s.read_line(what="QUIT or EOF")
                word = line.text.upper()
                if word == "QUIT":
                    s.write(b"221 2.0.0 bye\r\n")
                elif word == "RSET":
                    s.write(b"250 2.0.0 ok\r\n")
                else:
                    raise Deviation("client sent %r where only RSET, QUIT or a "
                                    "hang-up were allowed" % line.text)
                continue
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise socket.timeout()
                if not s._recv(left):
                    return
            except socket.timeout:
                raise Deviation("client did not close the connection")


def quit_and_close():
    """The usual end: QUIT, 221, client closes."""
    return [expect("QUIT"), send("221 2.0.0 bye"), expect_eof()]


# -- server ------------------------------------------------------------------


class Server:
    """Listen on loopback, play `script` against the first connection.

    certs: directory written by tests/setup/make-ca.sh (needed for TLS).
    cert, key: another certificate and key than certs/server.*.
    tls_tweak: called with the server's SSLContext (e.g. to allow only TLS 1.0).
    port: 0 for an ephemeral port; a second server on an earlier one's port
    plays "the same relay, later" (e.g. with another key).
    implicit_tls: TLS handshake right after accept (smtps / submissions)."""

    def __init__(self, script, certs=None, implicit_tls=False, host="127.0.0.1",
                 read_timeout=DEFAULT_READ_TIMEOUT, cert=None, key=None, tls_tweak=None,
                 port=0, later_421=False):
        self.script = list(script)
        # later_421: connections after the first get "421" instead of
        # failing the scenario (a client's non-delivery report, issue 4).
        self.later_421 = later_421
        self.certs, self.implicit_tls = certs, implicit_tls
        self.cert, self.key, self.tls_tweak = cert, key, tls_tweak
        self.host, self.read_timeout = host, read_timeout
        self.result = Result()
        self._stop = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _serve(self):
        self.listener.settimeout(0.05)
        while True:
            try:
                sock, peer = self.listener.accept()
            except socket.timeout:
                if self._stop.is_set():   # after one last look at the backlog
                    break
                continue
            except OSError:
                break
            self.result.connections += 1
            if self.result.connections > 1:
                if self.later_421:
                    self.result.note("*", "connection #%d from %s: answered 421"
                                     % (self.result.connections, peer[0]))
                    try:
                        sock.sendall(b"421 4.3.2 scripted: one connection per scenario\r\n")
                    except OSError:
                        pass
                else:
                    self.result.fail("unexpected connection #%d from %s"
                                     % (self.result.connections, peer[0]))
                sock.close()
                continue
            self._session(sock)
        self.listener.close()

    def _session(self, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = Session(sock, self.result, self.certs, self.read_timeout, cert=self.cert,
                    key=self.key, tls_tweak=self.tls_tweak)
        self.session = s
        r = self.result
        r.note("*", "connection from %s" % sock.getpeername()[0])
        step, n = None, 0
        try:
            if self.implicit_tls:
                try:
                    s.wrap()
                except (ssl.SSLError, OSError) as e:
                    raise Deviation("implicit TLS handshake failed: %s" % e)
            for n, step in enumerate(self.script, 1):
                step.run(s)
            r.done = True
        except Closed:
            r.done = True
        except Deviation as e:
            r.fail("step %d (%s): %s" % (n, step.describe() if step else "accept", e))
            try:
                s.write(b"421 4.3.0 scripted server: client deviated from the script\r\n")
            except OSError:
                pass
        except Exception as e:   # a bug in a step or a socket error mid-write
            r.fail("step %d (%s): %s: %s" % (n, step.describe() if step else "accept",
                                             type(e).__name__, e))
        finally:
            try:
                s.sock.close()
            except OSError:
                pass

    def finish(self, timeout=15.0, wait_for_client=False):
        """Stop accepting, wait for a running session, return the Result.
        wait_for_client: first wait up to `timeout` for a connection."""
        deadline = time.monotonic() + timeout
        while wait_for_client and not self.result.connections and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.result.fail("server session still running after %gs" % timeout)
        if self.result.connections == 0:
            self.result.fail("the client never connected")
        return self.result


def dot_stuff(message, ignore_dots=True):
    """The wire form of a sendmail-style input message: lines end in CRLF
    (LF and CRLF input both), a leading "." is doubled, CRLF.CRLF at the end.
    Without ignore_dots (no -i) a line holding only "." ends the input."""
    lines = message.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not ignore_dots and line == b".":
            break
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
    return b"".join(out) + b".\r\n"


if __name__ == "__main__":
    import sys
    import os
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run_scenario
    sys.exit(run_scenario.main(sys.argv[1:], manual=True))
