#!/usr/bin/python3
"""Run one scripted scenario against the hato program.

    run_scenario.py NAME        run scenario NAME (exit 0 pass, 1 fail)
    run_scenario.py --list      list scenario names
    smtpscript.py serve NAME    server side only: print the hato command to
                                run by hand, then the transcript

Environment: HATO_BIN (the program under test, required), HATO_SOURCE_ROOT,
HATO_BUILD_ROOT (the CA is cached under it), HATO_KEEP=1 keeps the temp dir.

Every run's stdout, stderr and maillog, and the scenario's report, are copied
to $HATO_BUILD_ROOT/test-output/scripted/NAME/ for the secrets suite
(tests/secrets), which greps them for the test passwords and tokens.
"""

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, HERE)

import smtpscript  # noqa: E402

# Generous bound for one run of the client; a scenario that needs a hang
# bound of its own checks run.elapsed.
HATO_RUN_LIMIT = 30.0


class ManualDone(Exception):
    pass


def ca_dir(fallback):
    """Directory with ca.crt, server.crt, server.key, other-ca.crt from
    tests/setup/make-ca.sh: cached under HATO_BUILD_ROOT, else `fallback`."""
    build = os.environ.get("HATO_BUILD_ROOT")
    d = os.path.join(build, "tests", "scripted-ca") if build else fallback
    os.makedirs(d, exist_ok=True)
    src = os.environ.get("HATO_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
    with open(d + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # meson runs tests in parallel
        crt = os.path.join(d, "ca.crt")
        # make-ca.sh certificates live 30 days; a cached CA is renewed weekly
        if os.path.exists(crt) and time.time() - os.path.getmtime(crt) > 7 * 86400:
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))
        subprocess.run(["sh", os.path.join(src, "tests", "setup", "make-ca.sh"), d],
                       check=True)
    return d


# Certificates beside the test CA's server certificate, for the negative TLS
# scenarios.  Debian 12's OpenSSL 3.0 has no -not_after in req/x509, so the
# expired one is signed with `openssl ca -startdate/-enddate` (as
# tests/unit/test_tls.c does).  The self-signed ones serve TOFU too: two keys.
EXTRA_CERTS_SH = r"""
set -e
ca=$1
: > index.txt
echo 1000 > serial
printf '[ca]\ndefault_ca = t\n[t]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\norganizationName = optional\n' > ca.cnf
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > local.ext
printf 'subjectAltName=DNS:mail.other.test,DNS:smtp.other.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > other.ext
openssl req -new -key "$ca/server.key" -subj '/O=hato tests/CN=localhost' -out local.csr 2>/dev/null
openssl ca -batch -notext -config ca.cnf -cert "$ca/ca.crt" -keyfile "$ca/ca.key" \
    -in local.csr -extfile local.ext -startdate 20200101000000Z -enddate 20200102000000Z \
    -out expired.crt 2>/dev/null
openssl req -new -key "$ca/server.key" -subj '/O=hato tests/CN=mail.other.test' -out other.csr 2>/dev/null
openssl x509 -req -in other.csr -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -set_serial 4242 \
    -days 30 -extfile other.ext -out wrongname.crt 2>/dev/null
for n in selfsigned tofu2; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout $n.key -out $n.crt -days 30 \
        -subj "/O=hato tests/CN=hato $n server" \
        -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' 2>/dev/null
done
chmod 600 selfsigned.key tofu2.key
rm -f local.csr other.csr
"""


def extra_certs(ca):
    """Directory with expired.crt and wrongname.crt (server.key, signed by the
    CA in `ca`), selfsigned.crt/.key and tofu2.crt/.key (self-signed, two
    other keys).  Remade whenever the CA is."""
    d = ca.rstrip("/") + "-extra"
    with open(d + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(os.path.join(ca, "ca.crt"), "rb") as f:
            stamp = hashlib.sha256(f.read()).hexdigest()
        stamp_file = os.path.join(d, "ca.sha256")
        try:
            with open(stamp_file) as f:
                if f.read().strip() == stamp:
                    return d
        except OSError:
            pass
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        subprocess.run(["sh", "-c", EXTRA_CERTS_SH, "extra-certs", ca], cwd=d, check=True)
        with open(stamp_file, "w") as f:
            f.write(stamp + "\n")
    return d


def colon_hex(data):
    """SHA-256 of `data` as Postfix prints fingerprints: AB:CD:..."""
    return ":".join("%02X" % b for b in hashlib.sha256(data).digest())


def cert_der(pem_file):
    import ssl
    with open(pem_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def spki_der(pem_file):
    """The certificate's SubjectPublicKeyInfo (DER): what pkey pins hash."""
    pub = subprocess.run(["openssl", "x509", "-in", pem_file, "-pubkey", "-noout"],
                         check=True, capture_output=True).stdout
    return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          check=True, capture_output=True).stdout


def output_dir(suite, name):
    """$HATO_BUILD_ROOT/test-output/SUITE/NAME, emptied; None without a build root."""
    build = os.environ.get("HATO_BUILD_ROOT")
    if not build:
        return None
    d = os.path.join(build, "test-output", suite, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, exist_ok=True)
    return d


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Run:
    """What one run of hato did, plus what the server saw."""

    def __init__(self, argv, code, stdout, stderr, elapsed, maxrss_kb, server):
        self.argv, self.code, self.stdout = argv, code, stdout
        self.stderr, self.elapsed, self.maxrss_kb = stderr, elapsed, maxrss_kb
        self.server = server


class Case:
    def __init__(self, name, manual=False):
        self.name, self.manual = name, manual
        self.dir = tempfile.mkdtemp(prefix="hato-scripted-%s-" % name)
        self.failures = []
        self.srv = None
        self.run = None
        self.runs = []
        self.host = "127.0.0.1"
        self.maillog = None
        self.outdir = None if manual else output_dir("scripted", name)

    # -- setup -----------------------------------------------------------

    def ca(self):
        return ca_dir(os.path.join(self.dir, "ca"))

    def extra_certs(self):
        return extra_certs(self.ca())

    def serve(self, script, tls=False, implicit_tls=False, host="127.0.0.1",
              cert=None, key=None, tls_tweak=None, port=0, later_421=False):
        """cert/key: serve another certificate than the CA's server.crt;
        tls_tweak(ctx): adjust the server's SSLContext; port: reuse the port
        of an earlier server (the same relayhost in the config)."""
        self.host = host
        certs = self.ca() if (tls or implicit_tls) else None
        self.srv = smtpscript.Server(script, certs=certs, implicit_tls=implicit_tls,
                                     host=host, cert=cert, key=key,
                                     tls_tweak=tls_tweak, port=port,
                                     later_421=later_421).start()
        return self.srv

    @property
    def relayhost(self):
        return "[%s]:%d" % (self.host, self.srv.port)

    def config(self, **keys):
        """Write main.cf: relayhost and myhostname, plus `keys` (None drops one).
        data_directory (TLS session tickets, TOFU keys) is the scenario's own,
        never the machine's."""
        conf = {"relayhost": self.relayhost, "myhostname": "client.example.test",
                "smtp_tls_security_level": "none", "data_directory": self.path("state"),
                # The scenario's own spool, never the machine's /var/spool/hato.
                "queue_directory": self.path("spool")}
        conf.update(keys)
        self.maillog = conf.get("maillog_file")
        path = os.path.join(self.dir, "main.cf")
        with open(path, "w") as f:
            f.write("# written by tests/scripted for scenario %s\n" % self.name)
            for k, v in conf.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))
        self.cf = path
        return path

    def sasl_config(self, user, password, **keys):
        """Config with SASL on and a 0600 password file for the relayhost."""
        pw = os.path.join(self.dir, "sasl_passwd")
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("%s %s:%s\n" % (self.relayhost, user, password))
        base = {"smtp_sasl_auth_enable": "yes",
                "smtp_sasl_password_maps": "texthash:" + pw,
                "smtp_sasl_security_options": "noanonymous"}
        base.update(keys)
        return self.config(**base)

    def path(self, name):
        return os.path.join(self.dir, name)

    def hosts(self, text):
        """Run hato in a private mount namespace whose /etc/hosts is `text`,
        so one name can resolve to several loopback addresses."""
        path = self.path("hosts")
        with open(path, "w") as f:
            f.write(text)
        self.hosts_file = path

    def dns(self, *records):
        """A DNS server of the scenario's own (dnsmasq, Debian's dnsmasq-base)
        on a loopback address unique to this process, port 53, answering
        only `records` (dnsmasq options such as "--mx-host=a.test,mx.a.test,10"
        and "--host-record=mx.a.test,127.0.0.1"); hato runs in a private
        mount namespace whose /etc/resolv.conf names it and whose /etc/hosts
        knows only localhost, so every other name goes to this server."""
        pid = os.getpid()
        addr = "127.%d.%d.%d" % (150 + pid // 65536 % 100, pid // 256 % 256, pid % 256)
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        argv = [binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--user=root", "--group=root", "--bind-interfaces",
                # Authoritative for .test: a name without the type asked
                # for is NODATA, not a failure to forward.
                "--local=/test/",
                "--listen-address=" + addr, "--port=53", "--log-queries",
                "--log-facility=" + self.path("dnsmasq.log"),
                "--pid-file=" + self.path("dnsmasq.pid")] + list(records)
        self.dnsmasq = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        # Ready when it answers: a query for a name it does not know.
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x05ready\x04test\x00\x00\x01\x00\x01")
        deadline = time.monotonic() + 10
        while True:
            if self.dnsmasq.poll() is not None:
                raise SystemExit("FAIL: dnsmasq exited with %d (%s)"
                                 % (self.dnsmasq.returncode, " ".join(argv)))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(0.2)
                try:
                    u.sendto(query, (addr, 53))
                    u.recv(512)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("FAIL: dnsmasq on %s:53 does not answer" % addr)
        self.dns_addr = addr
        path = self.path("resolv.conf")
        with open(path, "w") as f:
            f.write("nameserver %s\noptions timeout:2 attempts:1\n" % addr)
        self.resolv_file = path
        if not getattr(self, "hosts_file", None):
            self.hosts("127.0.0.1 localhost\n::1 localhost\n")

    def cleanup(self):
        p = getattr(self, "dnsmasq", None)
        if p is not None and p.poll() is None:
            p.terminate()
            p.wait()

    # -- running the client ----------------------------------------------

    def hato(self, args, message):
        stdin_path = self.path("message.in")
        with open(stdin_path, "wb") as f:
            f.write(message)
        binary = os.path.abspath(os.environ["HATO_BIN"]) if os.environ.get("HATO_BIN") else ""
        argv = [binary or "hato", "-C", self.cf] + list(args)
        if getattr(self, "invoked_as", None):
            # The same program through a symlink, as /usr/sbin/sendmail.
            link = self.path(self.invoked_as)
            if not os.path.lexists(link):
                os.symlink(argv[0], link)
            argv[0] = link
        if getattr(self, "resolv_file", None):
            # /etc/resolv.conf may be a symlink: the bind goes to its target.
            argv = ["unshare", "--mount", "sh", "-c",
                    'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && '
                    'shift && exec "$@"', self.hosts_file, self.resolv_file] + argv
        elif getattr(self, "hosts_file", None):
            # unshare and sh exec in turn, so hato keeps the pid watched below.
            argv = ["unshare", "--mount", "sh", "-c",
                    'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts_file] + argv
        shown = " ".join(shlex.quote(a) for a in argv) + " < " + stdin_path
        if self.manual:
            print("server listening on %s; config %s" % (self.relayhost, self.cf))
            print("run:\n  " + shown, flush=True)
            res = self.srv.finish(timeout=600, wait_for_client=True)
            print(res.format())
            print("server verdict: %s" % ("ok" if res.ok else "; ".join(res.failures)))
            raise ManualDone()
        if not binary or not os.access(binary, os.X_OK):
            raise SystemExit("FAIL: HATO_BIN is %r: not an executable program; build "
                             "hato and set HATO_BIN (meson test does)" % binary)
        out, err = open(self.path("stdout"), "wb+"), open(self.path("stderr"), "wb+")
        t = time.monotonic()
        with open(stdin_path, "rb") as inp:
            p = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=err,
                                 cwd=self.dir, start_new_session=True)
        status, hung, peak = None, False, 0
        while True:
            # ru_maxrss would include the forked Python image before exec, so
            # sample the peak RSS of hato's own address space instead
            peak = max(peak, vm_hwm_kb(p.pid))
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t > HATO_RUN_LIMIT:
                hung = True
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, _ = os.wait4(p.pid, 0)
                break
            time.sleep(0.002)
        elapsed = time.monotonic() - t
        p.returncode = code = os.waitstatus_to_exitcode(status)
        res = self.srv.finish()
        out.seek(0)
        err.seek(0)
        self.run = Run(argv, code, out.read().decode("utf-8", "replace"),
                       err.read().decode("utf-8", "replace"), elapsed,
                       peak, res)
        self.runs.append(self.run)
        self.shown = shown
        self.keep_output()
        if hung:
            self.fail("hato still running after %gs: killed" % HATO_RUN_LIMIT)
        if code < 0:
            self.fail("hato died of signal %d" % -code)
        return self.run

    def keep_output(self):
        """Copy this run's stdout, stderr and maillog for tests/secrets."""
        if not self.outdir:
            return
        n = len(self.runs)
        for src, what in ((self.path("stdout"), "stdout"), (self.path("stderr"), "stderr"),
                          (self.maillog, "maillog")):
            if src and os.path.exists(src):
                shutil.copyfile(src, os.path.join(self.outdir, "run%d.%s" % (n, what)))

    # -- assertions (all are collected; the first does not stop the rest) --

    def fail(self, msg):
        self.failures.append(smtpscript.redact(msg))

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond

    def server_ok(self):
        r = self.run.server
        for f in r.failures:
            self.fail("server: " + f)
        self.check(r.done or r.failures, "server: script did not run to its end")

    def exit_code(self, *codes):
        self.check(self.run.code in codes, "exit status %d, expected %s"
                   % (self.run.code, " or ".join(map(str, codes))))

    def deferred(self):
        """A temporary failure since the queue (issue 4): exit 0, and the
        message waits in the scenario's spool with one attempt recorded."""
        self.exit_code(0)
        q = self.path(os.path.join("spool", "queue"))
        names = sorted(os.listdir(q)) if os.path.isdir(q) else []
        msgs = [n for n in names if "." not in n]
        if self.check(len(msgs) == 1, "expected the message queued in %s, found %s" % (q, names)):
            try:
                with open(os.path.join(q, msgs[0] + ".state")) as f:
                    state = f.read()
            except OSError:
                state = ""
            self.check("attempts 1\n" in state, "no state with one attempt for %s: %r"
                       % (msgs[0], state))
        self.check("queued as" in self.run.stderr, "stderr does not say the message was queued")

    def exit_nonzero(self):
        self.check(self.run.code > 0, "exit status %d, expected a failure status"
                   % self.run.code)

    def stderr_has(self, *words):
        """Each word (or regex, if it starts with '/') must occur, ignoring case."""
        for w in words:
            if w.startswith("/"):
                ok = re.search(w[1:], self.run.stderr, re.IGNORECASE)
            else:
                ok = w.lower() in self.run.stderr.lower()
            self.check(ok, "stderr does not mention %r" % w)

    def stderr_quiet(self):
        self.check(self.run.stderr.strip() == "",
                   "stderr not empty on success: %r" % self.run.stderr[:300])

    def commands(self):
        return self.run.server.commands()

    def no_command(self, *verbs):
        for c in self.commands():
            for v in verbs:
                self.check(not c.upper().startswith(v), "client sent %r" % c)

    def no_credentials(self):
        """Nothing of the credentials reached the server: no AUTH command, and
        neither a password or token nor base64 holding one in any byte the
        client sent (in clear or inside TLS)."""
        self.no_command("AUTH")
        wire = b"".join(r.server.client_bytes() for r in self.runs).decode("latin-1")
        if any(s in wire for s in smtpscript._SECRETS):
            self.fail("a credential (or base64 holding it) went over the wire")

    def report(self):
        out = ["scenario %s" % self.name]
        for i, r in enumerate(self.runs, 1):
            if len(self.runs) > 1:
                out.append("=== run %d" % i)
            out.append("command: %s" % " ".join(shlex.quote(a) for a in r.argv))
            out.append("exit %d after %.2fs, peak RSS %d KiB (sampled)"
                       % (r.code, r.elapsed, r.maxrss_kb))
            out.append("--- stderr\n%s--- end stderr" % (r.stderr if r.stderr.endswith("\n")
                                                        or not r.stderr else r.stderr + "\n"))
            out.append("--- server transcript\n%s\n--- end transcript" % r.server.format())
        if self.failures:
            out.append("FAIL:")
            out.extend("  - " + f for f in self.failures)
        else:
            out.append("PASS")
        text = "\n".join(out)
        print(text)
        if self.outdir:
            with open(os.path.join(self.outdir, "report.txt"), "w") as f:
                f.write(text + "\n")


def main(argv, manual=False):
    import scenarios
    if argv and argv[0] == "--list":
        print("\n".join(scenarios.SCENARIOS))
        return 0
    if manual:
        if len(argv) != 2 or argv[0] != "serve":
            print("usage: smtpscript.py serve NAME", file=sys.stderr)
            return 64
        argv = argv[1:]
    if len(argv) != 1 or argv[0] not in scenarios.SCENARIOS:
        print("usage: run_scenario.py NAME | --list; names: %s"
              % ", ".join(scenarios.SCENARIOS), file=sys.stderr)
        return 64
    case = Case(argv[0], manual=manual)
    try:
        scenarios.SCENARIOS[argv[0]](case)
    except ManualDone:
        return 0
    except scenarios.Skip as e:
        print("SKIP: %s" % e)
        return 77
    finally:
        case.cleanup()
        if os.environ.get("HATO_KEEP"):
            print("kept %s" % case.dir)
        else:
            shutil.rmtree(case.dir, ignore_errors=True)
    case.report()
    return 1 if case.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
