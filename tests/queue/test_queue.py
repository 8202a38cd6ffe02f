#!/usr/bin/python3
"""The queue (issue 4 section 3) against the real test Postfix, and a
crash loop against a small SMTP sink of this file's own.

Cases:
  relay-down      relay at a closed port: exit 0, the message is queued,
                  mailq lists it with the error; with the relay back (the
                  real Postfix) "hato -q" delivers it byte-exact and the
                  queue is empty
  bounce-5xx      a recipient Postfix refuses with 550: a multipart/report
                  DSN from <> reaches the sender's Maildir (alice) naming the
                  recipient and the reply; the message is in failed/
  expiry          maximal_queue_lifetime = 1s, relay down: the next flush
                  bounces it; with the relay back the DSN (4.x.x, expired)
                  arrives at alice
  concurrent      two "hato -q" at once on a queue of N messages (to the
                  sink): each delivered exactly once, queue empty
  kill9           at least 200 trials of kill -9 at a random instant, half
                  during submission (enqueue + delivery), half during a
                  flush; then a final flush: every message hato accepted
                  (exit 0) was delivered, every queue file is whole, the
                  queue is empty; duplicates are counted and printed

Needs HATO_TEST_SERVERS (tests/servers/start.sh) and HATO_BIN, as the
interop suite: a missing server is a failure, not a skip.
"""
import os
import random
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import interop  # noqa: E402
from interop import check, log  # noqa: E402

EX_OK = 0


# ---- a sink relay that records what it took ------------------------------

class Sink:
    """Accepts every message (no TLS, no AUTH) on 127.0.0.1 and counts the
    Message-IDs of those it answered 250 after the final dot."""

    def __init__(self, data_delay=0.0):
        self.lock = threading.Lock()
        self.got = {}
        self.data_delay = data_delay
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                w = self.wfile
                try:
                    w.write(b"220 sink ESMTP\r\n")
                    while True:
                        line = self.rfile.readline(4096)
                        if not line:
                            return
                        cmd = line.strip().upper()
                        if cmd.startswith(b"EHLO"):
                            w.write(b"250-sink\r\n250 8BITMIME\r\n")
                        elif cmd.startswith(b"HELO") or cmd.startswith(b"MAIL") \
                                or cmd.startswith(b"RCPT") or cmd.startswith(b"RSET") \
                                or cmd.startswith(b"NOOP"):
                            w.write(b"250 ok\r\n")
                        elif cmd == b"DATA":
                            w.write(b"354 go\r\n")
                            body = []
                            while True:
                                d = self.rfile.readline(65536)
                                if not d:
                                    return
                                if d == b".\r\n":
                                    break
                                body.append(d)
                            if sink.data_delay:
                                time.sleep(sink.data_delay)
                            m = re.search(rb"(?im)^message-id:\s*(<[^>]*>)", b"".join(body))
                            mid = m.group(1).decode() if m else "?"
                            with sink.lock:
                                sink.got[mid] = sink.got.get(mid, 0) + 1
                            w.write(b"250 2.0.0 taken\r\n")
                        elif cmd == b"QUIT":
                            w.write(b"221 bye\r\n")
                            return
                        else:
                            w.write(b"502 5.5.1 no\r\n")
                except OSError:
                    return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, mid):
        with self.lock:
            return self.got.get(mid, 0)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---- helpers ----------------------------------------------------------------

def queue_settings(t, extra=()):
    return [("queue_directory", os.path.join(t.tmp, "spool")),
            ("myhostname", "client.example.test"),
            ("maillog_file", t.maillog_path())] + list(extra)


def down_config(t, extra=(), name="down.cf"):
    return t.write_config([("relayhost", "[127.0.0.1]:%d" % interop.closed_port()),
                           ("smtp_tls_security_level", "none")] + queue_settings(t, extra), name)


def up_config(t, extra=(), name="up.cf"):
    key = "[127.0.0.1]:%d" % t.port_starttls
    return t.write_config([("relayhost", key)] + t.auth_settings(key) + [
        ("smtp_tls_security_level", "verify"), ("smtp_tls_CAfile", t.ca),
    ] + queue_settings(t, extra), name)


def sink_config(t, sink, extra=(), name="sink.cf"):
    return t.write_config([("relayhost", "[127.0.0.1]:%d" % sink.port),
                           ("smtp_tls_security_level", "none")] + queue_settings(t, extra), name)


def spool(t, sub):
    d = os.path.join(t.tmp, "spool", sub)
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        return []


def queued_ids(t):
    return [n for n in spool(t, "queue") if "." not in n]


def message(t, msgid, to="alice@example.test", subject="queue test", body="hello\n"):
    return ("From: Alice <alice@example.test>\nTo: %s\nDate: %s\nMessage-ID: %s\n"
            "Subject: %s %s\n\n%s" % (to, interop.rfc2822_date(), msgid, subject, t.case,
                                      body)).encode()


def hato_quiet(t, config, args, data=b"", timeout=60):
    """Runs hato without logging its output (for loops)."""
    return subprocess.run([t.hato, "-C", config] + list(args), input=data,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def find_dsn(t, original_msgid, timeout=30):
    """The report in alice's Maildir whose copied headers hold original_msgid."""
    needle = original_msgid.encode()
    deadline = time.monotonic() + timeout
    while True:
        for sub in ("new", "cur"):
            d = os.path.join(t.maildir_root, "alice", sub)
            for name in (os.listdir(d) if os.path.isdir(d) else []):
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
                if b"multipart/report" in data and needle in data:
                    return data.decode("utf-8", "replace")
        if time.monotonic() > deadline:
            interop.fail("no DSN for %s reached alice's Maildir within %d s; see %s"
                         % (original_msgid, timeout, t.postfix_log))
        time.sleep(0.2)


# ---- cases ------------------------------------------------------------------

def relay_down(t):
    msgid = t.message_id()
    msg = message(t, msgid, body="queued while the relay was down\n.leading dot\n")
    down = down_config(t)
    proc = t.run_hato(down, ["-i", "-f", t.user, "alice@example.test"], msg)
    check(proc.returncode == EX_OK, "hato exited %d with the relay down; expected 0 (queued)"
          % proc.returncode)
    check("queued as" in proc.err, "stderr does not say the message was queued: %r" % proc.err)
    ids = queued_ids(t)
    check(len(ids) == 1, "expected one queued message, found %s" % ids)
    qid = ids[0]
    lst = t.run_hato(down, ["-bp"], b"")
    check(lst.returncode == EX_OK, "hato -bp exited %d" % lst.returncode)
    check(qid in lst.out and "alice@example.test" in lst.out, "mailq does not list %s: %r"
          % (qid, lst.out))
    check("Connection refused" in lst.out, "mailq does not show the last error: %r" % lst.out)
    with open(t.maillog_path()) as f:
        ml = f.read()
    check(re.search(r"%s: to=<alice@example.test>, .*status=deferred" % qid, ml),
          "maillog has no status=deferred line with queue id %s:\n%s" % (qid, ml))

    up = up_config(t)
    flush = t.run_hato(up, ["-q"], b"")
    check(flush.returncode == EX_OK, "hato -q exited %d" % flush.returncode)
    path = t.wait_delivered(msgid, ["alice"])[ "alice"]
    interop.compare_messages(msg, path)
    check(queued_ids(t) == [] and spool(t, "queue") == [], "the queue is not empty after the "
          "flush: %s" % spool(t, "queue"))
    lst = t.run_hato(up, ["-bp"], b"")
    check("Mail queue is empty" in lst.out, "mailq after the flush: %r" % lst.out)
    with open(t.maillog_path()) as f:
        ml = f.read()
    check(re.search(r"%s: to=<alice@example.test>, relay=127\.0\.0\.1.*status=sent" % qid, ml),
          "maillog has no status=sent line with queue id %s" % qid)


def bounce_5xx(t):
    msgid = t.message_id()
    msg = message(t, msgid, to="nobody@example.test")
    up = up_config(t)
    proc = t.run_hato(up, ["-i", "-f", t.user, "nobody@example.test"], msg)
    check(proc.returncode != 75, "a 5xx must not look like a deferral (exit %d)" % proc.returncode)
    check("non-delivery report" in proc.err, "stderr does not mention the report: %r" % proc.err)
    failed = [n for n in spool(t, "failed") if "." not in n]
    check(len(failed) == 1, "expected the message in failed/, found %s" % spool(t, "failed"))
    check(queued_ids(t) == [], "queue not empty: %s" % spool(t, "queue"))
    dsn = find_dsn(t, msgid)
    log("--- DSN:\n%s---" % dsn)
    for want in ("Content-Type: multipart/report; report-type=delivery-status",
                 "Content-Type: message/delivery-status", "Content-Type: text/rfc822-headers",
                 "Reporting-MTA: dns; client.example.test",
                 "Final-Recipient: rfc822; nobody@example.test", "Action: failed",
                 "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1", "Arrival-Date: ",
                 "Return-Path: <>", "Message-ID: " + msgid):
        check(want in dsn, "the DSN lacks %r" % want)
    check(re.search(r"(?m)^<nobody@example.test>: .*\n\s+550 5\.1\.1", dsn),
          "the human part does not name the recipient with the reply")


def expiry(t):
    msgid = t.message_id()
    msg = message(t, msgid)
    extra = [("maximal_queue_lifetime", "1s"), ("minimal_backoff_time", "1s"),
             ("maximal_backoff_time", "2s")]
    down = down_config(t, extra)
    proc = t.run_hato(down, ["-i", "-f", t.user, "alice@example.test"], msg)
    check(proc.returncode == EX_OK and len(queued_ids(t)) == 1,
          "expected exit 0 and one queued message (exit %d, queue %s)"
          % (proc.returncode, spool(t, "queue")))
    time.sleep(2.2)
    t.run_hato(down, ["-q"], b"")
    check(len([n for n in spool(t, "failed") if "." not in n]) == 1,
          "the expired message is not in failed/: %s" % spool(t, "failed"))
    ids = queued_ids(t)
    check(len(ids) == 1, "expected exactly the DSN queued (relay still down): %s" % ids)
    with open(os.path.join(t.tmp, "spool", "queue", ids[0]), "rb") as f:
        head = f.read(4096)
    check(b"\nsender \n" in head and b"\nrcpt alice@example.test\n" in head,
          "the queued report is not from <> to alice: %r" % head[:200])
    up = up_config(t, extra)
    t.run_hato(up, ["-q"], b"")
    dsn = find_dsn(t, msgid)
    log("--- DSN:\n%s---" % dsn)
    for want in ("Final-Recipient: rfc822; alice@example.test", "Action: failed",
                 "Status: 4.4.1", "expired", "maximal_queue_lifetime"):
        check(want in dsn, "the expiry DSN lacks %r" % want)
    check(queued_ids(t) == [], "queue not empty: %s" % spool(t, "queue"))


def concurrent(t):
    sink = Sink(data_delay=0.01)
    try:
        cfg = sink_config(t, sink)
        n = 40
        ids = []
        for i in range(n):
            mid = t.message_id(".%d" % i)
            ids.append(mid)
            p = hato_quiet(t, cfg, ["-odq", "-i", "-f", t.user, "alice@example.test"],
                           message(t, mid))
            check(p.returncode == 0, "queueing %d failed: %s" % (i, p.stderr.decode()))
        check(len(queued_ids(t)) == n, "expected %d queued, found %d" % (n, len(queued_ids(t))))
        procs = [subprocess.Popen([t.hato, "-C", cfg, "-q"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(2)]
        for p in procs:
            p.wait(timeout=120)
            check(p.returncode == 0, "hato -q exited %d: %s" % (p.returncode, p.stderr.read()))
        counts = [sink.count(m) for m in ids]
        log("deliveries per message: %s" % counts)
        check(all(c == 1 for c in counts), "not every message delivered exactly once: %s" % counts)
        check(queued_ids(t) == [], "queue not empty: %s" % spool(t, "queue"))
    finally:
        sink.stop()


def kill9(t):
    trials = int(os.environ.get("HATO_QUEUE_TRIALS", "400"))
    rng = random.Random(os.environ.get("HATO_QUEUE_SEED", str(os.getpid())))
    sink = Sink()
    try:
        cfg = sink_config(t, sink, [("minimal_backoff_time", "1s"),
                                    ("maximal_backoff_time", "1s")])
        # How long an undisturbed submission takes, to spread the kills over it.
        t0 = time.monotonic()
        for i in range(5):
            hato_quiet(t, cfg, ["-i", "-f", t.user, "alice@example.test"],
                       message(t, t.message_id(".cal%d" % i)))
        span = (time.monotonic() - t0) / 5
        log("an undisturbed submission takes %.1f ms" % (span * 1000))
        accepted, submitted = set(), []
        killed = {"submit": 0, "flush": 0}
        for i in range(trials):
            if i % 2 == 0:
                mid = t.message_id(".k%d" % i)
                submitted.append(mid)
                p = subprocess.Popen([t.hato, "-C", cfg, "-i", "-f", t.user,
                                      "alice@example.test"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                p.stdin.write(message(t, mid))
                p.stdin.close()
                kind = "submit"
            else:
                # Something to flush: a queued message or two (-odq).
                for j in range(2):
                    mid = t.message_id(".k%d.%d" % (i, j))
                    submitted.append(mid)
                    q = hato_quiet(t, cfg, ["-odq", "-i", "-f", t.user, "alice@example.test"],
                                   message(t, mid))
                    if q.returncode == 0:
                        accepted.add(mid)
                p = subprocess.Popen([t.hato, "-C", cfg, "-q"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                kind = "flush"
            time.sleep(rng.uniform(0, span * 1.2))
            try:
                p.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = p.wait(timeout=60)
            if rc == -signal.SIGKILL:
                killed[kind] += 1
            elif kind == "submit" and rc == 0:
                accepted.add(submitted[-1])
            # Every file in queue/ must be a whole message or state file.
            for name in spool(t, "queue"):
                path = os.path.join(t.tmp, "spool", "queue", name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                if "." in name:
                    check(data.startswith(b"hato-state 1\n"), "damaged state file %s" % name)
                else:
                    check(data.startswith(b"hato-queue 1\n") and b"\nend\n" in data and
                          data.rstrip().endswith(b"hello"), "damaged queue file %s: %r"
                          % (name, data[-80:]))
        # The final flush (twice: reports of messages a kill left locked
        # are not an issue here, but one pass must find the queue whole).
        p = hato_quiet(t, cfg, ["-q"], timeout=300)
        check(p.returncode == 0, "final flush exited %d: %s" % (p.returncode, p.stderr.decode()))
        left = spool(t, "queue")
        check(left == [], "queue not empty after the final flush: %s" % left)
        check(spool(t, "failed") == [], "messages in failed/: %s" % spool(t, "failed"))
        lost = [m for m in accepted if sink.count(m) == 0]
        counts = [sink.count(m) for m in submitted]
        dup = sum(c - 1 for c in counts if c > 1)
        dup_msgs = sum(1 for c in counts if c > 1)
        delivered = sum(1 for c in counts if c > 0)
        never = len(submitted) - delivered
        log("kill9: %d trials (%d submissions killed, %d flushes killed); %d messages "
            "submitted, %d accepted with exit 0, %d delivered, %d never queued (killed before "
            "the commit), %d lost; duplicates: %d extra copies of %d messages"
            % (trials, killed["submit"], killed["flush"], len(submitted), len(accepted),
               delivered, never, len(lost), dup, dup_msgs))
        check(not lost, "accepted messages never delivered: %s" % lost)
        check(trials >= 200, "fewer than 200 trials (%d)" % trials)
    finally:
        sink.stop()


CASES = {"relay-down": relay_down, "bounce-5xx": bounce_5xx, "expiry": expiry,
         "concurrent": concurrent, "kill9": kill9}

if __name__ == "__main__":
    interop.main(lambda fn, env: fn(env), CASES)
