"""Shared code for hato's real-server interop tests.

The tests talk to the private Postfix + Dovecot started by
tests/servers/start.sh.  They need two environment variables:

  HATO_TEST_SERVERS  path of the servers.env that start.sh wrote
  HATO_BIN           the hato program to test (meson sets it)

A missing variable or a server that does not answer is a failure, never a
skip: an interop suite that quietly skips proves nothing.

Run one case by hand:
  HATO_TEST_SERVERS=/tmp/x/servers.env HATO_BIN=build/src/hato \
      python3 tests/interop/test_relay.py --case guide-starttls
"""

import base64
import hashlib
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# Headers that Postfix (smtpd, cleanup, virtual) prepends on delivery; the
# client did not send them.
SERVER_HEADERS = ("return-path", "x-original-to", "delivered-to", "received")

# Sysexits codes the hato program uses.
EX_OK = 0
EX_TEMPFAIL = 75


class TestFailure(Exception):
    pass


def fail(message):
    raise TestFailure(message)


def check(condition, message):
    if not condition:
        fail(message)


def log(message):
    print(message, flush=True)


# The servers a case can run against (--peer): where each listens, where its
# mail lands, which log shows what it saw.  Postfix and Dovecot's submission
# service (which relays to that Postfix) share one set of Maildirs.
#   name: (servers.env prefix, STARTTLS port key, implicit-TLS port key,
#          plain port key, Maildir root key, log key)
PEERS = {
    "postfix": ("HATO_TEST_", "PORT_STARTTLS", "PORT_SMTPS", "PORT_PLAIN",
                "MAILDIR_ROOT", "POSTFIX_LOG"),
    "exim": ("HATO_TEST_EXIM_", "PORT_STARTTLS", "PORT_SMTPS", None,
             "MAILDIR_ROOT", "LOG"),
    "opensmtpd": ("HATO_TEST_OPENSMTPD_", None, None, "PORT_PLAIN",
                  "MAILDIR_ROOT", "LOG"),
    "dovecot": ("HATO_TEST_DOVECOT_", "PORT_STARTTLS", "PORT_SMTPS", None,
                None, "SUBMISSION_LOG"),
}


def main(run, cases):
    """Parse --case NAME [--peer SERVER], run cases[NAME](Interop), exit 0
    or 1."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--case", required=True, choices=sorted(cases))
    parser.add_argument("--peer", default="postfix", choices=sorted(PEERS))
    args = parser.parse_args()
    try:
        env = Interop(args.case, args.peer)
        try:
            run(cases[args.case], env)
        finally:
            env.cleanup()
    except TestFailure as e:
        print("FAIL: %s (%s): %s" % (args.case, args.peer, e), file=sys.stderr, flush=True)
        sys.exit(1)
    log("PASS: %s (%s)" % (args.case, args.peer))


def load_env_file(path):
    """Read the KEY='value' lines start.sh writes (a subset of sh syntax)."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, rest = line.partition("=")
            if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
                fail("%s:%d: not a KEY=value line: %r" % (path, number, line))
            words = shlex.split(rest)
            values[key] = words[0] if words else ""
    return values


class Interop:
    def __init__(self, case, peer="postfix"):
        self.case = case
        self.peer = peer
        path = os.environ.get("HATO_TEST_SERVERS")
        if not path:
            fail("HATO_TEST_SERVERS is not set; start the servers with "
                 "'tests/servers/start.sh DIR' and export HATO_TEST_SERVERS=DIR/servers.env "
                 "(tests/run.sh does both)")
        if not os.path.isfile(path):
            fail("HATO_TEST_SERVERS=%s: no such file; run tests/servers/start.sh" % path)
        self.env = load_env_file(path)
        for key in ("HATO_TEST_HOST", "HATO_TEST_PORT_STARTTLS", "HATO_TEST_PORT_SMTPS",
                    "HATO_TEST_PORT_PLAIN", "HATO_TEST_CA", "HATO_TEST_OTHER_CA",
                    "HATO_TEST_USER", "HATO_TEST_PASSWORD", "HATO_TEST_MAILDIR_ROOT",
                    "HATO_TEST_POSTFIX_LOG"):
            check(key in self.env, "%s does not define %s" % (path, key))
        self.host = self.env["HATO_TEST_HOST"]
        self.port_starttls = int(self.env["HATO_TEST_PORT_STARTTLS"])
        self.port_smtps = int(self.env["HATO_TEST_PORT_SMTPS"])
        self.port_plain = int(self.env["HATO_TEST_PORT_PLAIN"])
        self.ca = self.env["HATO_TEST_CA"]
        self.other_ca = self.env["HATO_TEST_OTHER_CA"]
        self.user = self.env["HATO_TEST_USER"]
        self.password = self.env["HATO_TEST_PASSWORD"]
        self.maildir_root = self.env["HATO_TEST_MAILDIR_ROOT"]
        self.postfix_log = self.env["HATO_TEST_POSTFIX_LOG"]
        self.ipv6 = self.env.get("HATO_TEST_IPV6") == "yes"
        self.server_log = self.postfix_log
        if peer != "postfix":
            self.use_peer(path)
        for port in (self.port_starttls, self.port_smtps, self.port_plain):
            if port is not None:
                self.require_listener("127.0.0.1", port)

        self.hato = os.environ.get("HATO_BIN")
        if not self.hato:
            fail("HATO_BIN is not set (meson sets it to the built hato program)")
        if not os.access(self.hato, os.X_OK):
            fail("HATO_BIN=%s is not an executable file; build hato first" % self.hato)
        self.tmp = tempfile.mkdtemp(prefix="hato-interop-%s-%s-" % (peer, case))
        self.token = "%s.%s.%d.%s" % (case, peer, os.getpid(), secrets.token_hex(6))

    def use_peer(self, path):
        """Point the ports, Maildirs and log at another server; a port it
        does not have is None."""
        prefix, starttls, smtps, plain, maildir, logkey = PEERS[self.peer]

        def get(key):
            if key is None:
                return None
            check(prefix + key in self.env,
                  "%s does not define %s: start the servers with tests/servers/start.sh "
                  "(which runs start-peers.sh)" % (path, prefix + key))
            return self.env[prefix + key]

        self.port_starttls, self.port_smtps, self.port_plain = (
            int(p) if p is not None else None for p in map(get, (starttls, smtps, plain)))
        if maildir:
            self.maildir_root = get(maildir)
        self.server_log = get(logkey)
        log("peer %s %s: STARTTLS %s, implicit TLS %s, plain %s, log %s"
            % (self.peer, get("VERSION"), self.port_starttls, self.port_smtps,
               self.port_plain, self.server_log))

    def submit_settings(self, extra_auth=()):
        """(relay key, settings) for the peer's best way in: STARTTLS
        verified against the test CA with the test login where it has
        STARTTLS, else its plain port without TLS or AUTH (OpenSMTPD)."""
        if self.port_starttls is not None:
            key = "[%s]:%d" % (self.host, self.port_starttls)
            return key, [("relayhost", key)] + self.auth_settings(key) + list(extra_auth) + [
                ("smtp_tls_security_level", "verify"),
                ("smtp_tls_CAfile", self.ca),
            ]
        key = "[%s]:%d" % (self.host, self.port_plain)
        return key, [("relayhost", key), ("smtp_tls_security_level", "none")]

    def cleanup(self):
        if os.environ.get("HATO_TEST_KEEP"):
            log("kept %s (HATO_TEST_KEEP is set)" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def require_listener(self, host, port):
        try:
            with socket.create_connection((host, port), timeout=5):
                pass
        except OSError as e:
            fail("the test servers do not answer on [%s]:%d (%s); are they running? "
                 "start them with tests/servers/start.sh (log: %s)"
                 % (host, port, e, self.env.get("HATO_TEST_POSTFIX_LOG", "?")))

    # ---- files ---------------------------------------------------------

    def message_id(self, suffix=""):
        return "<hato-interop.%s%s@example.test>" % (self.token, suffix)

    def write_password_map(self, entries):
        """entries: [(key, user, password)].  Returns the path (mode 0600)."""
        path = os.path.join(self.tmp, "sasl_passwd")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for key, user, password in entries:
                f.write("%s %s:%s\n" % (key, user, password))
        os.chmod(path, 0o600)
        return path

    def write_config(self, settings, name="main.cf"):
        """settings: [(key, value)] in order, written in main.cf syntax."""
        path = os.path.join(self.tmp, name)
        state = os.path.join(self.tmp, "state")
        os.makedirs(state, mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("# hato interop test %s\n" % self.case)
            # TLS sessions and pins stay in the test's own directory, not
            # in the machine's /var/lib/hato.
            f.write("data_directory = %s\n" % state)
            # The queue too (issue 4): never the machine's /var/spool/hato.
            f.write("queue_directory = %s\n" % os.path.join(self.tmp, "spool"))
            for key, value in settings:
                f.write("%s = %s\n" % (key, value))
        with open(path, encoding="utf-8") as f:
            log("--- config %s:\n%s---" % (path, f.read()))
        return path

    def maillog_path(self):
        return os.path.join(self.tmp, "maillog")

    def auth_settings(self, relay_key):
        """Settings for SASL with the test user's password under relay_key."""
        pwmap = self.write_password_map([(relay_key, self.user, self.password)])
        return [("smtp_sasl_auth_enable", "yes"),
                ("smtp_sasl_password_maps", "hash:" + pwmap)]

    # ---- running hato ----------------------------------------------------

    def run_hato(self, config, args, message, timeout=120):
        cmd = [self.hato, "-C", config] + list(args)
        log("+ %s < message (%d bytes)" % (" ".join(shlex.quote(a) for a in cmd), len(message)))
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, input=message, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            fail("hato did not finish within %d s" % timeout)
        log("exit %d after %.2f s" % (proc.returncode, time.monotonic() - started))
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        if out:
            log("--- stdout:\n%s---" % out)
        if err:
            log("--- stderr:\n%s---" % err)
        proc.out, proc.err = out, err
        self.keep_output(proc)
        self.check_no_secrets(out + err)
        return proc

    def keep_output(self, proc):
        """Copy the run's stdout, stderr and maillog to
        $HATO_BUILD_ROOT/test-output/interop/[PEER-]CASE/runN.* for
        tests/secrets."""
        build = os.environ.get("HATO_BUILD_ROOT")
        if not build:
            return
        # Each peer runs the same case names, possibly at the same time.
        name = self.case if self.peer == "postfix" else "%s-%s" % (self.peer, self.case)
        d = os.path.join(build, "test-output", "interop", name)
        self.runs = getattr(self, "runs", 0) + 1
        if self.runs == 1:
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, exist_ok=True)
        for what, data in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            with open(os.path.join(d, "run%d.%s" % (self.runs, what)), "wb") as f:
                f.write(data)
        if os.path.exists(self.maillog_path()):
            shutil.copyfile(self.maillog_path(), os.path.join(d, "run%d.maillog" % self.runs))

    def check_no_secrets(self, text):
        """The password must never appear, neither raw nor in an AUTH line."""
        pw = self.password.encode()
        user = self.user.encode()
        forms = {
            "the password": self.password,
            "base64 of the password": base64.b64encode(pw).decode(),
            "the AUTH PLAIN response": base64.b64encode(b"\0" + user + b"\0" + pw).decode(),
        }
        for what, form in forms.items():
            check(form not in text, "hato's output contains %s" % what)

    def expect_sent(self, proc):
        last = "\n".join(proc.err.strip().splitlines()[-3:])
        check(proc.returncode == EX_OK,
              "hato exited %d, expected 0 (sent); stderr ends with:\n%s" % (proc.returncode, last))

    # ---- Maildirs ------------------------------------------------------

    def mailboxes(self):
        try:
            return sorted(os.listdir(self.maildir_root))
        except OSError as e:
            fail("cannot list %s: %s" % (self.maildir_root, e))

    def find_copies(self, message_id, mailboxes=None):
        """{mailbox: [path]} of delivered files whose header has message_id."""
        needle = ("Message-ID: " + message_id).lower().encode()
        found = {}
        for box in mailboxes if mailboxes is not None else self.mailboxes():
            for sub in ("new", "cur"):
                d = os.path.join(self.maildir_root, box, sub)
                try:
                    names = os.listdir(d)
                except FileNotFoundError:
                    continue
                for name in names:
                    path = os.path.join(d, name)
                    try:
                        with open(path, "rb") as f:
                            head = f.read(65536)
                    except FileNotFoundError:
                        continue  # moved new -> cur meanwhile
                    head = head.split(b"\n\n", 1)[0].lower()
                    if needle in head:
                        found.setdefault(box, []).append(path)
        return found

    def wait_delivered(self, message_id, mailboxes, timeout=30):
        """Wait until each mailbox has exactly one copy; returns {box: path}."""
        deadline = time.monotonic() + timeout
        while True:
            copies = self.find_copies(message_id, mailboxes)
            if all(box in copies for box in mailboxes):
                break
            if time.monotonic() > deadline:
                missing = [b for b in mailboxes if b not in copies]
                fail("message %s not delivered to %s within %d s; see %s"
                     % (message_id, ", ".join(missing), timeout, self.server_log))
            time.sleep(0.2)
        for box, paths in copies.items():
            check(len(paths) == 1, "mailbox %s got %d copies of %s: %s"
                  % (box, len(paths), message_id, paths))
        for box, paths in copies.items():
            log("delivered to %s: %s" % (box, paths[0]))
        return {box: paths[0] for box, paths in copies.items()}

    def expect_not_delivered(self, message_id, settle=3):
        """Nothing with message_id arrives anywhere, nor is it queued."""
        time.sleep(settle)
        copies = self.find_copies(message_id)
        check(not copies, "message %s was delivered although it should not be: %s"
              % (message_id, copies))
        if self.peer in ("postfix", "dovecot"):
            check(self.queue_id(message_id) is None,
                  "Postfix accepted message %s although it should not have" % message_id)

    # ---- what the server saw ---------------------------------------------

    def read_server_log(self):
        with open(self.server_log, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()

    def exim_received_line(self, message_id, timeout=10):
        """Exim's '<=' line for message_id (logged as id=LOCAL@DOMAIN)."""
        needle = " id=%s " % message_id.strip("<>")
        deadline = time.monotonic() + timeout
        while True:
            for line in self.read_server_log():
                if " <= " in line and needle in line + " ":
                    log("exim: %s" % line)
                    return line
            if time.monotonic() > deadline:
                fail("no Exim '<=' line for %s in %s" % (message_id, self.server_log))
            time.sleep(0.2)

    def auth_logged(self, message_id):
        """(mechanism, user) the server logged for the session that
        submitted message_id."""
        if self.peer == "postfix":
            session = self.smtpd_session(message_id)
            return session.get("sasl_method"), session.get("sasl_username")
        if self.peer == "exim":
            # A=AUTHENTICATOR:USER; start-peers.sh names one authenticator
            # per mechanism.
            m = re.search(r" A=(\w+):(\S+)", self.exim_received_line(message_id))
            check(m, "Exim logged no A= (authentication) for %s" % message_id)
            names = {"plain": "PLAIN", "login": "LOGIN", "cram": "CRAM-MD5"}
            return names.get(m.group(1), m.group(1)), m.group(2)
        if self.peer == "dovecot":
            # Postfix queue id -> the submission process that relayed it
            # (its reply names the id) -> that process's login line.
            deadline = time.monotonic() + 10
            qid = self.queue_id(message_id)
            while True:
                lines = self.read_server_log()
                pid = None
                for line in lines:
                    m = re.search(r"submission\([^)]*\)<(\d+)><[^>]*>: Info: Successfully "
                                  r"relayed message: .*queued as %s'" % qid, line)
                    if qid and m:
                        pid = m.group(1)
                for line in lines if pid else []:
                    m = re.search(r"Login: user=<([^>]*)>, method=([\w-]+), .*mpid=%s," % pid, line)
                    if m:
                        log("dovecot: %s" % line)
                        return m.group(2), m.group(1)
                if time.monotonic() > deadline:
                    fail("no Dovecot submission login for Postfix queue id %s (message %s) in %s"
                         % (qid, message_id, self.server_log))
                time.sleep(0.2)
                qid = qid or self.queue_id(message_id)
        fail("%s does not authenticate" % self.peer)

    # ---- Postfix log -----------------------------------------------------

    def read_postfix_log(self):
        with open(self.postfix_log, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()

    def queue_id(self, message_id):
        pattern = re.compile(r"postfix/cleanup\[\d+\]: ([0-9A-F]+): message-id=%s"
                             % re.escape(message_id))
        for line in self.read_postfix_log():
            m = pattern.search(line)
            if m:
                return m.group(1)
        return None

    def smtpd_session(self, message_id, timeout=10):
        """The smtpd 'QUEUEID: client=..., sasl_method=...' line of the
        session that submitted message_id, as a dict of its fields."""
        deadline = time.monotonic() + timeout
        while True:
            qid = self.queue_id(message_id)
            if qid:
                for line in self.read_postfix_log():
                    m = re.search(r"/smtpd\[\d+\]: %s: (client=.*)" % qid, line)
                    if m:
                        log("postfix: %s" % line)
                        fields = dict(re.findall(r"(\w+)=([^,]*)", m.group(1)))
                        return fields
            if time.monotonic() > deadline:
                fail("no smtpd log line for message %s (queue id %s) in %s"
                     % (message_id, qid, self.postfix_log))
            time.sleep(0.2)


# ---- messages ----------------------------------------------------------

def strip_server_headers(data):
    """Remove the header fields the server prepended at the top."""
    lines = data.split(b"\n")
    i = 0
    while i < len(lines):
        name = lines[i].split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        if name not in SERVER_HEADERS or b":" not in lines[i]:
            break
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\n".join(lines[i:])


def normalise(data):
    """As Maildir stores it: LF line ends, and a final line end."""
    data = data.replace(b"\r\n", b"\n")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data


def header_section(data):
    return data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]


def header_names(data):
    names = []
    for line in header_section(data).split(b"\n"):
        if line and line[:1] not in (b" ", b"\t") and b":" in line:
            names.append(line.split(b":", 1)[0].strip().lower().decode("ascii", "replace"))
    return names


def closed_port():
    """A loopback port nothing listens on (bound, then released): a relay
    that is down."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_delivered(path):
    with open(path, "rb") as f:
        return f.read()


def compare_messages(sent, delivered_path):
    """Delivered copy == sent message apart from the prepended headers."""
    got = strip_server_headers(read_delivered(delivered_path))
    want = normalise(sent)
    if got == want:
        log("delivered copy matches the sent message (%d bytes)" % len(want))
        return
    n = 0
    while n < min(len(got), len(want)) and got[n] == want[n]:
        n += 1
    fail("delivered copy %s differs from the sent message at byte %d "
         "(sent %d bytes, delivered %d after removing the server's headers):\n"
         "  sent:      %r\n  delivered: %r"
         % (delivered_path, n, len(want), len(got), want[max(0, n - 40):n + 40],
            got[max(0, n - 40):n + 40]))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def rfc2822_date():
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
