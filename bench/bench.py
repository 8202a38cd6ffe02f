#!/usr/bin/env python3
"""bench.py: hato against msmtp, curl and smtp-source, all in one run.

Called by bench/run.sh, which installs the peers, builds hato (release) and
starts the project's Postfix + Dovecot (tests/servers/start.sh).  This
script starts what else it needs (delay proxies, smtp-sink, the bench
STARTTLS sink), runs every figure, prints the table and writes
BENCH_OUT/results.json and BENCH_OUT/results.md.

usage: bench.py BUILD_DIR SERVERS_ENV OUT_DIR
Environment: BENCH_QUICK=1 for fewer repetitions and smaller sizes (a smoke
test of the script, not figures to quote).
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD, ENV_FILE, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
QUICK = os.environ.get("BENCH_QUICK") == "1"
HATO = os.path.join(BUILD, "src/program/hato")
HATO_BENCH = os.path.join(BUILD, "bench/hato-bench")
# A second build against Debian 12's mbedTLS 2.28 (TLS 1.2 only), for the
# issue's TLS 1.2 flight targets; run.sh makes it unless BENCH_TLS12=0.
BUILD_TLS12 = os.environ.get("BENCH_BUILD_TLS12") or None
EVENT_LOOP = os.path.join(BUILD, "examples/event-loop")
DELAY_MS = 20
REPS = 2 if QUICK else 5                  # runs per client for the wall-time figures
KEEPALIVE_N = 500 if QUICK else 5000      # messages over one connection, plain sink
TLS_N = 100 if QUICK else 1000            # messages over one connection, STARTTLS
RSS_SIZE = 10_000_000 if QUICK else 100_000_000
BODY_SIZE = 100_000_000 if QUICK else 1_000_000_000
CONC = [10, 100] if QUICK else [10, 100, 1000]

# Ports: 26000-26999 only (others on this machine use 24xxx, 25xxx, 27xxx, 28xxx).
P_SINK = 26030        # smtp-sink, plain
P_TLSSINK = 26040     # bench STARTTLS sink
P_PROXY_587 = 26101   # 20 ms proxy -> Postfix STARTTLS
P_PROXY_465 = 26102   # 20 ms proxy -> Postfix implicit TLS
P_PROXY_SINK = 26103  # 0 ms proxy -> smtp-sink (to count curl's connections)
P_PROXY_CHUNK = 26104 # 0 ms proxy -> the bench sink, which offers CHUNKING


def load_env(path):
    env = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            v = m.group(2)
            if v.startswith("'") and v.endswith("'"):
                v = v[1:-1].replace("'\\''", "'")
            env[m.group(1)] = v
    return env


E = load_env(ENV_FILE)
CA = E["HATO_TEST_CA"]
CADIR = os.path.dirname(CA)
USER, PASSWORD = E["HATO_TEST_USER"], E["HATO_TEST_PASSWORD"]
P_587, P_465 = int(E["HATO_TEST_PORT_STARTTLS"]), int(E["HATO_TEST_PORT_SMTPS"])
RCPT = "bob@example.test"
WORK = os.path.join(OUT, "work")
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK, mode=0o700)
children = []
results = {}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def start(argv, name):
    f = open(os.path.join(WORK, name + ".log"), "w")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    children.append(p)
    return p


def stop_all():
    for p in children:
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                p.kill()


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("bench: nothing listens on port %d" % port)


def run(argv, stdin_path=None, timeout=900, check=True):
    """Runs argv; returns (wall seconds, rusage, stdout).  Wall time is from
    just before the fork to the reaped exit; rusage from wait4."""
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=timeout) if False else (None, None)
    # communicate() would reap the child itself; read the pipes, then wait4.
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if stdin_path:
        fin.close()
    if check and p.returncode != 0:
        raise SystemExit("bench: %s exited %d:\n%s" % (" ".join(argv), p.returncode,
                                                       err.decode(errors="replace")[-2000:]))
    return wall, ru, out.decode(errors="replace")


def make_message(path, size):
    """size bytes: headers, then 71-byte lines; LF line ends."""
    head = ("From: alice@example.test\nTo: bob@example.test\nSubject: bench %d bytes\n"
            "Message-ID: <bench.%d.%d@example.test>\n\n" % (size, size, os.getpid())).encode()
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 01234\n"
    block = line * (1 << 14)
    with open(path, "wb") as f:
        f.write(head)
        left = size - len(head)
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n - 1] + b"\n" if n == left else block[:n])
            left -= n


# ---- client configurations ----------------------------------------------

def hato_config(name, port, wrapper, state=True):
    d = os.path.join(WORK, "hato-" + name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    key = "[localhost]:%d" % port
    pw = os.path.join(d, "sasl_passwd")
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s %s:%s\n" % (key, USER, PASSWORD))
    cfg = os.path.join(d, "main.cf")
    with open(cfg, "w") as f:
        f.write("relayhost = %s\n" % key)
        f.write("smtp_tls_CAfile = %s\n" % CA)
        f.write("smtp_tls_wrappermode = %s\n" % ("yes" if wrapper else "no"))
        f.write("smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:%s\n" % pw)
        f.write("smtp_sasl_mechanism_filter = plain\n")
        f.write("data_directory = %s\n" % os.path.join(d, "state"))
        f.write("queue_directory = %s\n" % os.path.join(d, "spool"))
        f.write("maillog_file = %s\n" % os.path.join(d, "maillog"))
    return cfg, d


def hato_cmd(cfg):
    return [HATO, "-C", cfg, "-i", "-f", "alice@example.test", RCPT]


def hato_sent(d, before):
    """Counts status=sent lines in the maillog (hato exits 0 when it queues)."""
    try:
        n = open(os.path.join(d, "maillog")).read().count("status=sent")
    except OSError:
        n = 0
    if n <= before:
        raise SystemExit("bench: hato did not deliver (maillog %s)" % os.path.join(d, "maillog"))
    return n


def msmtp_config(name, port, tls, starttls, auth=True):
    path = os.path.join(WORK, "msmtprc-" + name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("account default\nhost localhost\nport %d\n" % port)
        f.write("tls %s\ntls_starttls %s\n" % ("on" if tls else "off", "on" if starttls else "off"))
        if tls:
            f.write("tls_trust_file %s\n" % CA)
        if auth:
            f.write("auth plain\nuser %s\npassword %s\n" % (USER, PASSWORD))
        else:
            f.write("auth off\n")
        f.write("from alice@example.test\n")
    return ["msmtp", "-C", path, RCPT]


def curl_cmd(url, tls, auth=True, extra=()):
    c = ["curl", "-sS", "--url", url, "--mail-from", "alice@example.test", "--mail-rcpt", RCPT]
    if tls:
        c += ["--ssl-reqd", "--cacert", CA]
    if auth:
        # --user on the command line: a bench account on loopback only.
        c += ["--user", "%s:%s" % (USER, PASSWORD), "--login-options", "AUTH=PLAIN"]
    return c + list(extra)


# ---- the delay proxy's records -------------------------------------------

class Proxy:
    def __init__(self, port, target, delay):
        self.port = port
        self.stats = os.path.join(WORK, "proxy-%d.jsonl" % port)
        open(self.stats, "w").close()
        start([sys.executable, os.path.join(HERE, "delayproxy.py"), str(port), "127.0.0.1",
               str(target), str(delay), self.stats], "proxy-%d" % port)
        wait_port(port)
        time.sleep(0.1)
        self.mark()

    def mark(self):
        self.seen = len(open(self.stats).readlines())

    def records(self, expect=1, timeout=5):
        """The connections closed since the last mark()."""
        end = time.monotonic() + timeout
        while True:
            lines = open(self.stats).readlines()
            if len(lines) - self.seen >= expect or time.monotonic() > end:
                break
            time.sleep(0.02)
        new = [json.loads(l) for l in lines[self.seen:]]
        self.seen = len(lines)
        return new


# ---- figure 1: flights and wall time at 20 ms one-way --------------------

def fig_flights():
    log("== 1. flights and wall time, 10 KB message, %d ms one-way delay" % DELAY_MS)
    msg = os.path.join(WORK, "msg10k")
    res = {}
    for label, target, pport, wrapper in (("587", P_587, P_PROXY_587, False),
                                          ("465", P_465, P_PROXY_465, True)):
        proxy = Proxy(pport, target, DELAY_MS)
        cfg, d = hato_config("p" + label, pport, wrapper)
        sessions = os.path.join(d, "state", "sessions")
        clients = {
            "hato": hato_cmd(cfg),
            "hato-resumed": hato_cmd(cfg),
            # The library alone (no config, spool or queue state): hato_client,
            # one message, full handshake.
            "hato-library": [HATO_BENCH, "localhost", str(pport), "tls" if wrapper else "starttls",
                             CA, USER, PASSWORD, "1", "10240"],
            "msmtp": msmtp_config(label, pport, True, not wrapper),
            "curl": curl_cmd("%s://localhost:%d" % ("smtps" if wrapper else "smtp", pport), True,
                             extra=["--upload-file", msg]),
        }
        if BUILD_TLS12:
            cfg12, d12 = hato_config("p%s-tls12" % label, pport, wrapper)
            clients["hato-tls12"] = [os.path.join(BUILD_TLS12, "src/program/hato")] + hato_cmd(cfg12)[1:]
            clients["hato-tls12-resumed"] = clients["hato-tls12"]
        runs = {k: [] for k in clients}
        sent12 = 0
        sent = 0
        for rep in range(REPS + 1):  # the first round warms caches and is dropped
            for name, cmd in clients.items():
                if name == "hato":
                    shutil.rmtree(sessions, ignore_errors=True)  # a full handshake
                if name == "hato-tls12":
                    shutil.rmtree(os.path.join(d12, "state", "sessions"), ignore_errors=True)
                proxy.mark()
                wall, ru, _ = run(cmd, stdin_path=None if name == "curl" else msg)
                recs = proxy.records()
                if name in ("hato", "hato-resumed"):
                    sent = hato_sent(d, sent)
                elif name.startswith("hato-tls12"):
                    sent12 = hato_sent(d12, sent12)
                if len(recs) != 1:
                    raise SystemExit("bench: %s made %d connections" % (name, len(recs)))
                if rep > 0:
                    runs[name].append((wall, recs[0]["flights"]))
        for name, rs in runs.items():
            flights = sorted(f for _, f in rs)
            res["%s/%s" % (name, label)] = {
                "wall_ms": round(statistics.median(w for w, _ in rs) * 1000),
                "flights": flights[len(flights) // 2],
                "flights_all": flights,
            }
            log("  %-14s %s: %s" % (name, label, res["%s/%s" % (name, label)]))
    results["flights"] = res


# ---- figure 2: messages per second over one connection --------------------

def fig_rate():
    log("== 2. messages per second over one connection, 10 KB messages")
    msg = os.path.join(WORK, "msg10k")
    res = {}
    _, _, out = run([HATO_BENCH, "127.0.0.1", str(P_SINK), "plain", "-", "-", "-",
                     str(KEEPALIVE_N), "10240"])
    res["hato/plain"] = json.loads(out)["msgs_per_s"]
    _, _, out = run([HATO_BENCH, "localhost", str(P_587), "starttls", CA, USER, PASSWORD,
                     str(TLS_N), "10240"])
    res["hato/starttls-postfix"] = json.loads(out)["msgs_per_s"]
    res["hato/starttls-postfix-heap"] = json.loads(out)["heap_session"]
    res["hato/starttls-postfix-heap-last"] = json.loads(out)["heap_session_last"]
    _, _, out = run([HATO_BENCH, "localhost", str(P_TLSSINK), "starttls", CA, USER, PASSWORD,
                     str(KEEPALIVE_N), "10240"])
    res["hato/starttls-sink"] = json.loads(out)["msgs_per_s"]
    for s in (1, 4):
        per = KEEPALIVE_N // s
        wall, _, _ = run(["smtp-source", "-d", "-s", str(s), "-m", str(per * s), "-F", msg,
                          "-f", "alice@example.test", "-t", RCPT, "127.0.0.1:%d" % P_SINK])
        res["smtp-source/%d" % s] = round(per * s / wall, 1)
    # curl: one invocation, many URLs; check with a 0 ms proxy that it keeps
    # one connection and count its flights per message.
    def curl_many(port, n, tls, auth, scheme="smtp"):
        cfgf = os.path.join(WORK, "curl-many-%d-%d.cfg" % (port, n))
        with open(cfgf, "w") as f:
            for _ in range(n):
                f.write('url = "%s://localhost:%d"\nupload-file = "%s"\n' % (scheme, port, msg))
        return curl_cmd("%s://localhost:%d" % (scheme, port), tls, auth)[:1] + \
            [a for a in curl_cmd("x", tls, auth)[1:] if a not in ("--url", "x")] + ["-K", cfgf]
    # Flights per message on a kept connection: (flights for 21 messages -
    # flights for 11) / 10, so the connection's setup and end are not
    # counted (both runs keep the connection; one message would not).
    def per_message(proxy, cmd_for):
        flights, conns = [], 0
        for n in (11, 21):
            proxy.mark()
            run(cmd_for(n))
            time.sleep(0.3)
            recs = proxy.records()
            recs += proxy.records(expect=0, timeout=0.3)
            conns = len(recs)
            flights.append(sum(r["flights"] for r in recs))
        return conns, round((flights[1] - flights[0]) / 10, 2)
    hato_many = lambda port: lambda n: [HATO_BENCH, "localhost", str(port), "plain", "-", "-", "-",
                                        str(n), "10240"]
    proxy = Proxy(P_PROXY_SINK, P_SINK, 0)
    res["curl/connections-for-21"], res["curl/flights-per-message"] = per_message(
        proxy, lambda n: curl_many(P_PROXY_SINK, n, False, False))
    res["hato/connections-for-21"], res["hato/flights-per-message"] = per_message(
        proxy, hato_many(P_PROXY_SINK))
    proxy = Proxy(P_PROXY_CHUNK, P_TLSSINK, 0)
    res["hato/connections-for-21-chunking"], res["hato/flights-per-message-chunking"] = per_message(
        proxy, hato_many(P_PROXY_CHUNK))
    wall, _, _ = run(curl_many(P_SINK, KEEPALIVE_N, False, False))
    res["curl/plain"] = round(KEEPALIVE_N / wall, 1)
    wall, _, _ = run(curl_many(P_587, TLS_N, True, True))
    res["curl/starttls-postfix"] = round(TLS_N / wall, 1)
    wall, _, _ = run(curl_many(P_TLSSINK, KEEPALIVE_N, True, True))
    res["curl/starttls-sink"] = round(KEEPALIVE_N / wall, 1)
    # msmtp: one message per process.
    cmd = msmtp_config("sink", P_SINK, False, False, auth=False)
    n = 20 if QUICK else 100
    t0 = time.monotonic()
    for _ in range(n):
        run(cmd, stdin_path=msg)
    res["msmtp/plain"] = round(n / (time.monotonic() - t0), 1)
    for k, v in res.items():
        log("  %-28s %s" % (k, v))
    results["rate"] = res


# ---- figure 3: instructions ----------------------------------------------

def callgrind(cmd, stdin_path, name):
    outdir = os.path.join(WORK, "callgrind-" + name)
    os.makedirs(outdir, exist_ok=True)
    run(["valgrind", "--tool=callgrind", "--trace-children=yes",
         "--callgrind-out-file=%s/callgrind.out.%%p" % outdir] + cmd, stdin_path=stdin_path)
    total = 0
    for f in os.listdir(outdir):
        for line in open(os.path.join(outdir, f), errors="replace"):
            if line.startswith("totals:") or line.startswith("summary:"):
                total += int(line.split()[1])
                break
    return total


def fig_instructions():
    log("== 3. instructions (callgrind), one 10 KB send, STARTTLS + AUTH PLAIN, no delay")
    msg = os.path.join(WORK, "msg10k")
    cfg, d = hato_config("direct", P_587, False)
    res = {}
    shutil.rmtree(os.path.join(d, "state", "sessions"), ignore_errors=True)
    res["hato"] = callgrind(hato_cmd(cfg), msg, "hato")
    res["hato-resumed"] = callgrind(hato_cmd(cfg), msg, "hato-resumed")
    res["msmtp"] = callgrind(msmtp_config("direct", P_587, True, True), msg, "msmtp")
    res["curl"] = callgrind(curl_cmd("smtp://localhost:%d" % P_587, True,
                                     extra=["--upload-file", msg]), None, "curl")
    for k, v in res.items():
        log("  %-14s %.1f M" % (k, v / 1e6))
    results["instructions"] = res


# ---- figure 4: peak RSS ---------------------------------------------------

def peak_rss(cmd, stdin_path=None):
    """Peak RSS in KB, through /usr/bin/time: wait4's ru_maxrss for a child
    of this script counts the Python pages it had between fork and exec."""
    out = os.path.join(WORK, "time.out")
    run(["/usr/bin/time", "-f", "%M", "-o", out] + cmd, stdin_path=stdin_path)
    return int(open(out).read().split()[-1])


def fig_rss():
    log("== 4. peak RSS, %d MB message, STARTTLS + AUTH to the test Postfix" % (RSS_SIZE // 1000000))
    msg = os.path.join(WORK, "msg-rss")
    make_message(msg, RSS_SIZE)
    cfg, d = hato_config("rss", P_587, False)
    res = {}
    res["hato"] = peak_rss(hato_cmd(cfg), msg)
    hato_sent(d, 0)
    res["msmtp"] = peak_rss(msmtp_config("rss", P_587, True, True), msg)
    res["curl"] = peak_rss(curl_cmd("smtp://localhost:%d" % P_587, True, extra=["--upload-file", msg]))
    # 10 KB, for flatness.
    res["hato-10k"] = peak_rss(hato_cmd(cfg), os.path.join(WORK, "msg10k"))
    res["msmtp-10k"] = peak_rss(msmtp_config("rss", P_587, True, True), os.path.join(WORK, "msg10k"))
    os.unlink(msg)
    for k, v in res.items():
        log("  %-14s %d KB" % (k, v))
    results["rss_kb"] = res


# ---- figure 5: body throughput ----------------------------------------------

def fig_body():
    mb = BODY_SIZE / 1e6
    log("== 5. body throughput, one %d MB message" % mb)
    msg = os.path.join(WORK, "msg-body")
    make_message(msg, BODY_SIZE)
    res = {}

    def rec(key, wall, ru):
        cpu = ru.ru_utime + ru.ru_stime
        res[key] = {"mb_per_s": round(mb / wall, 1), "client_cpu_s": round(cpu, 2),
                    "mb_per_cpu_s": round(mb / cpu, 1) if cpu > 0 else None}
        log("  %-22s %s" % (key, res[key]))

    for where, port in (("smtp-sink", P_SINK), ("bench-sink", P_TLSSINK)):
        wall, ru, _ = run([HATO_BENCH, "127.0.0.1", str(port), "plain", "-", "-", "-", "1",
                           str(BODY_SIZE)])
        rec("hato/plain/" + where, wall, ru)
        wall, ru, _ = run(curl_cmd("smtp://127.0.0.1:%d" % port, False, False,
                                   extra=["--upload-file", msg]))
        rec("curl/plain/" + where, wall, ru)
        wall, ru, _ = run(msmtp_config("body-" + where, port, False, False, auth=False),
                          stdin_path=msg)
        rec("msmtp/plain/" + where, wall, ru)
    wall, ru, _ = run([HATO_BENCH, "localhost", str(P_TLSSINK), "starttls", CA, USER, PASSWORD,
                       "1", str(BODY_SIZE)])
    rec("hato/tls", wall, ru)
    wall, ru, _ = run(curl_cmd("smtp://localhost:%d" % P_TLSSINK, True,
                               extra=["--upload-file", msg]))
    rec("curl/tls", wall, ru)
    wall, ru, _ = run(msmtp_config("body-tls", P_TLSSINK, True, True), stdin_path=msg)
    rec("msmtp/tls", wall, ru)
    os.unlink(msg)
    results["body"] = res


# ---- figure 6: concurrent sessions ----------------------------------------

def cpu_of(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def fig_concurrent(sink):
    log("== 6. concurrent STARTTLS sessions from one epoll loop (examples/event-loop)")
    res = {}
    for n in CONC:
        for count in (1, 10):
            before = cpu_of(sink.pid)
            wall, ru, out = run([EVENT_LOOP, "localhost", str(P_TLSSINK), CA, USER, PASSWORD,
                                 "alice@example.test", RCPT, str(n), str(count)])
            r = json.loads(out)
            r["client_cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)
            r["server_cpu_s"] = round(cpu_of(sink.pid) - before, 2)
            r["wall_s"] = round(wall, 2)
            # Busy share of the wall time: a process near 100 % of one core
            # is the limit; both well below means latency and scheduling.
            cu, su = r["client_cpu_s"] / wall, r["server_cpu_s"] / wall
            r["limit"] = ("server" if su >= 0.8 and su >= cu else "client" if cu >= 0.8
                          else "neither (client %d%%, sink %d%% of a core)" % (cu * 100, su * 100))
            res["%d/%d" % (n, count)] = r
            log("  N=%-5d %d msg/session: %s" % (n, count, r))
    results["concurrent"] = res


# ---- the table ------------------------------------------------------------

def ratio(a, b, digits=2):
    if not isinstance(a, (int, float)) or not a or not b:
        return "-"
    return ("%." + str(digits) + "fx") % (a / b)


def table():
    rows = []  # (figure, hato, msmtp, curl, smtp-source, hato/msmtp, hato/curl, hato/smtp-source)
    f = results.get("flights", {})
    for port, what in (("587", "587 STARTTLS+AUTH PLAIN"), ("465", "465 implicit TLS+AUTH PLAIN")):
        for variant, label in (("hato", "fresh"), ("hato-resumed", "TLS session cached")):
            h = f.get("%s/%s" % (variant, port), {})
            m = f.get("msmtp/%s" % port, {})
            c = f.get("curl/%s" % port, {})
            note = "" if variant == "hato" else " (msmtp, curl: no cross-process cache)"
            rows.append(("flights, %s, %s%s" % (what, label, note), h.get("flights"), m.get("flights"),
                         c.get("flights"), None))
            rows.append(("wall ms @%d ms one-way, %s, %s" % (DELAY_MS, what, label), h.get("wall_ms"),
                         m.get("wall_ms"), c.get("wall_ms"), None))
        lib = f.get("hato-library/%s" % port)
        if lib:
            rows.append(("flights / wall ms, %s, the library alone (hato-bench, 1 message)" % what,
                         "%s / %s" % (lib["flights"], lib["wall_ms"]), None, None, None))
        for variant, label in (("hato-tls12", "fresh"), ("hato-tls12-resumed", "TLS session cached")):
            h = f.get("%s/%s" % (variant, port))
            if h:
                rows.append(("flights / wall ms, %s, mbedTLS 2.28 (TLS 1.2), %s" % (what, label),
                             "%s / %s" % (h["flights"], h["wall_ms"]), None, None, None))
    r = results.get("rate", {})
    rows.append(("msgs/s one connection, plain, smtp-sink (msmtp: 1 per process)",
                 r.get("hato/plain"), r.get("msmtp/plain"), r.get("curl/plain"), r.get("smtp-source/1")))
    rows.append(("msgs/s, plain, smtp-source with 4 sessions", r.get("hato/plain"), None, None,
                 r.get("smtp-source/4")))
    rows.append(("msgs/s one connection, STARTTLS+AUTH, test Postfix", r.get("hato/starttls-postfix"),
                 None, r.get("curl/starttls-postfix"), None))
    rows.append(("msgs/s one connection, STARTTLS+AUTH, bench sink", r.get("hato/starttls-sink"),
                 None, r.get("curl/starttls-sink"), None))
    rows.append(("connections for 21 messages in one run (smtp-sink)", r.get("hato/connections-for-21"),
                 None, r.get("curl/connections-for-21"), None))
    rows.append(("client flights per message on that connection (PIPELINING, no CHUNKING)",
                 r.get("hato/flights-per-message"), None, r.get("curl/flights-per-message"), None))
    rows.append(("client flights per message, bench sink (PIPELINING + CHUNKING)",
                 r.get("hato/flights-per-message-chunking"), None, None, None))
    i = results.get("instructions", {})
    M = lambda v: round(v / 1e6, 1) if v else None
    rows.append(("instructions (M), one 587 send, full handshake", M(i.get("hato")), M(i.get("msmtp")),
                 M(i.get("curl")), None))
    rows.append(("instructions (M), one 587 send, hato's session resumed", M(i.get("hato-resumed")),
                 M(i.get("msmtp")), M(i.get("curl")), None))
    s = results.get("rss_kb", {})
    rows.append(("peak RSS (KB), %d MB message" % (RSS_SIZE // 1000000), s.get("hato"), s.get("msmtp"),
                 s.get("curl"), None))
    rows.append(("peak RSS (KB), 10 KB message", s.get("hato-10k"), s.get("msmtp-10k"), None, None))
    rows.append(("library heap, live STARTTLS session, first message (bytes)",
                 r.get("hato/starttls-postfix-heap"), None, None, None))
    rows.append(("library heap, same session, %d-th message (bytes)" % TLS_N,
                 r.get("hato/starttls-postfix-heap-last"), None, None, None))
    b = results.get("body", {})
    for key, label in (("plain/smtp-sink", "plain, smtp-sink"), ("plain/bench-sink", "plain, bench sink"),
                       ("tls", "STARTTLS, bench sink")):
        g = lambda who, k: b.get("%s/%s" % (who, key), {}).get(k)
        rows.append(("body MB/s (wall), %d MB, %s" % (BODY_SIZE // 1000000, label), g("hato", "mb_per_s"),
                     g("msmtp", "mb_per_s"), g("curl", "mb_per_s"), None))
        rows.append(("body MB per client CPU second, %s" % label, g("hato", "mb_per_cpu_s"),
                     g("msmtp", "mb_per_cpu_s"), g("curl", "mb_per_cpu_s"), None))
    c = results.get("concurrent", {})
    for key, r2 in c.items():
        n, count = key.split("/")
        rows.append(("N=%s sessions x %s msg: msgs/s (limit: %s)" % (n, count, r2["limit"]),
                     r2["msgs_per_s"], None, None, None))
        rows.append(("N=%s sessions x %s msg: heap per session (bytes)" % (n, count),
                     r2["heap_per_session"], None, None, None))
    head = ("figure", "hato", "msmtp", "curl", "smtp-source", "hato/msmtp", "hato/curl",
            "hato/smtp-source")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "-" if v is None else str(v)
    for fig, h, m, c2, ss in rows:
        if h is None and m is None and c2 is None and ss is None:
            continue  # a figure this run skipped (BENCH_ONLY)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            fig, fmt(h), fmt(m), fmt(c2), fmt(ss), ratio(h, m), ratio(h, c2), ratio(h, ss)))
    return "\n".join(lines)


def targets():
    f, r, i, s, c = (results.get(k, {}) for k in ("flights", "rate", "instructions", "rss_kb",
                                                  "concurrent"))
    out = []

    def t(name, ok, figure):
        out.append("| %s | %s | %s |" % (name, "met" if ok else "NOT met", figure))
    for port, limit in (("587", 5), ("465", 3)):
        v = f.get("hato/%s" % port, {}).get("flights")
        if v is not None:
            t("flights, fresh, %s <= %d (TLS 1.3)" % (port, limit), v <= limit, v)
        h, m = f.get("hato/%s" % port, {}).get("wall_ms"), f.get("msmtp/%s" % port, {}).get("wall_ms")
        if h and m:
            t("wall time %s <= 0.7x msmtp" % port, h <= 0.7 * m, "%d ms vs %d ms (%.2fx)" % (h, m, h / m))
    for port, fresh, resumed in (("587", 6, 5), ("465", 4, 3)):
        a, b = f.get("hato-tls12/%s" % port), f.get("hato-tls12-resumed/%s" % port)
        if a and b:
            t("TLS 1.2 (mbedTLS 2.28) flights, %s: <= %d fresh, <= %d resumed" % (port, fresh, resumed),
              a["flights"] <= fresh and b["flights"] <= resumed,
              "%d fresh, %d resumed" % (a["flights"], b["flights"]))
    v = r.get("hato/flights-per-message")
    if v is not None:
        t("reused connection without CHUNKING: 2 flights per message", v <= 2,
          "%s (smtp-sink)" % v)
    v = r.get("hato/flights-per-message-chunking")
    if v is not None:
        t("reused connection with CHUNKING: 1 flight per message", v <= 1,
          "%s (bench sink)" % v)
    if r.get("hato/plain") and r.get("smtp-source/1"):
        t("msgs/s plain sink >= smtp-source 1 session", r["hato/plain"] >= r["smtp-source/1"],
          "%s vs %s" % (r["hato/plain"], r["smtp-source/1"]))
    if i.get("hato") and i.get("msmtp"):
        t("instructions <= 0.5x msmtp", i["hato"] <= 0.5 * i["msmtp"],
          "%.1f M vs %.1f M (%.2fx)" % (i["hato"] / 1e6, i["msmtp"] / 1e6, i["hato"] / i["msmtp"]))
    if s.get("hato"):
        t("peak RSS < 4 MB for %d MB, flat in size" % (RSS_SIZE // 1000000), s["hato"] < 4096,
          "%d KB (10 KB message: %s KB)" % (s["hato"], s.get("hato-10k")))
    big = [v for k, v in c.items() if k.startswith("%d/" % CONC[-1])]
    if big:
        heap = max(v["heap_per_session"] for v in big)
        bad = sum(v["failed_sessions"] for v in big)
        t("%d concurrent STARTTLS sessions, heap < 100 KB each" % CONC[-1],
          bad == 0 and heap < 100 * 1024,
          "%d bytes each at the worst peak (1 and 10 messages per session), %d failed"
          % (heap, bad))
    return "| target | result | figure |\n|---|---|---|\n" + "\n".join(out)


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    try:
        start(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % P_SINK, "1000"], "smtp-sink")
        sink = start([sys.executable, os.path.join(HERE, "tlssink.py"), str(P_TLSSINK),
                      os.path.join(CADIR, "server.crt"), os.path.join(CADIR, "server.key")], "tlssink")
        wait_port(P_SINK)
        wait_port(P_TLSSINK)
        make_message(os.path.join(WORK, "msg10k"), 10240)
        only = os.environ.get("BENCH_ONLY", "flights,rate,instructions,rss,body,concurrent").split(",")
        if "flights" in only:
            fig_flights()
        if "rate" in only:
            fig_rate()
        if "instructions" in only:
            fig_instructions()
        if "rss" in only:
            fig_rss()
        if "body" in only:
            fig_body()
        if "concurrent" in only:
            fig_concurrent(sink)
    finally:
        stop_all()
    tab, tg = table(), targets()
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(tab + "\n\n" + tg + "\n")
    print(tab)
    print()
    print(tg)


if __name__ == "__main__":
    main()
