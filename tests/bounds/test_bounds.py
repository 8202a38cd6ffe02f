#!/usr/bin/python3
"""Resource bounds of one send through the hato program (issue 6).

Cases (--case NAME):
  memory    peak RSS (VmHWM of /proc/PID/status, polled every 2 ms until
            hato exits: getrusage would report the forking Python's RSS,
            which ru_maxrss keeps across exec) of hato sending a 1 KB and a
            100 MB message to a local sink, and with 1 and 1000 recipients:
            the growth must stay under fixed bounds that do not scale with
            the message (docs/testing.md, "Resource bounds")
  fds       the descriptors hato holds while the relay sits on the final
            dot, read from /proc/PID/fd; then the same send under
            RLIMIT_NOFILE = FD_LIMIT must still succeed
  diskfull  queue_directory on a 256 KiB tmpfs in a private mount namespace
            (unshare --mount), a 1 MB message: exit 75, "NOT accepted",
            the error names the disk (No space left on device), nothing
            left in tmp/ or queue/, nothing reached the relay
  diskfull-report  a queued message whose recipient the relay refuses
            (550), flushed while the spool's disk is full: the report
            cannot be queued, so the message stays queued with the
            recipient pending and nothing half-written; once there is room,
            the next flush queues and sends the report (from <>)

Needs HATO_BIN; diskfull needs root (mount).  No test servers.
"""
import argparse
import os
import resource
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

HATO = os.environ.get("HATO_BIN", "build/src/program/hato")
MIB = 1024 * 1024

# The bounds asserted (and documented in docs/testing.md).
RSS_GROWTH_100MB = 4 * MIB     # 100 MB message vs 1 KB message
RSS_CEILING = 8 * MIB          # peak RSS of any single send here
PER_RCPT = 2048                # bytes of RSS per extra recipient, at most
FD_HELD_MAX = 8                # descriptors open during a send, stdio included
FD_LIMIT = 16                  # RLIMIT_NOFILE a send must work under
MAX_RECIPIENTS = 1000          # HATO_MAX_RECIPIENTS (include/hato.h)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Sink:
    """A plain SMTP relay on 127.0.0.1 that takes everything and throws the
    body away; with hold set, it waits on the final dot until released."""

    def __init__(self, hold=False):
        self.messages = 0
        self.rcpts = 0
        self.bytes = 0
        self.senders = []
        self.hold = threading.Event() if hold else None
        self.at_dot = threading.Event()
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
                            w.write(b"250-sink\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
                        elif cmd.startswith(b"RCPT"):
                            sink.rcpts += 1
                            if cmd.startswith(b"RCPT TO:<BOUNCE"):
                                w.write(b"550 5.1.1 no such user\r\n")
                            else:
                                w.write(b"250 ok\r\n")
                        elif cmd.startswith(b"MAIL"):
                            sink.senders.append(line.split(b":", 1)[1].split()[0].decode())
                            w.write(b"250 ok\r\n")
                        elif cmd[:4] in (b"HELO", b"RSET", b"NOOP"):
                            w.write(b"250 ok\r\n")
                        elif cmd == b"DATA":
                            w.write(b"354 go\r\n")
                            while True:
                                d = self.rfile.readline(1 << 20)
                                if not d:
                                    return
                                if d == b".\r\n":
                                    break
                                sink.bytes += len(d)
                            sink.at_dot.set()
                            if sink.hold is not None:
                                sink.hold.wait(60)
                            sink.messages += 1
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

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def write_config(tmp, port, spool):
    path = os.path.join(tmp, "hato.cf")
    with open(path, "w") as f:
        f.write("relayhost = [127.0.0.1]:%d\n" % port)
        f.write("smtp_tls_security_level = none\n")
        f.write("myhostname = client.example.test\n")
        f.write("queue_directory = %s\n" % spool)
        f.write("data_directory = %s\n" % os.path.join(tmp, "data"))
        f.write("maillog_file = %s\n" % os.path.join(tmp, "maillog"))
    return path


def header(rcpts):
    return ("From: a@example.test\nTo: %s\nSubject: bounds\n"
            "Message-ID: <bounds.%d@example.test>\n\n" % (rcpts[0], time.time_ns())).encode()


def run_hato(config, rcpts, body_size, preexec=None, during=None):
    """Runs hato with a message of about body_size bytes written to its
    stdin in pieces (never held whole here).  Returns (status, stderr,
    peak RSS in bytes)."""
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([HATO, "-C", config, "-i", "--"] + rcpts, stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=err, preexec_fn=preexec)
    line = (b"x" * 77) + b"\n"
    chunk = line * (65536 // len(line))
    peak = [0]
    done = threading.Event()

    def watch():  # the peak while stdin is still being written, too
        while not done.is_set() and p.poll() is None:
            peak[0] = max(peak[0], vm_hwm(p.pid))
            time.sleep(0.002)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        p.stdin.write(header(rcpts))
        left = body_size
        while left > 0:
            piece = chunk[:left]
            p.stdin.write(piece)
            left -= len(piece)
        p.stdin.close()
    except BrokenPipeError:
        pass
    done.set()
    watcher.join()
    if during is not None:
        during(p)
    hwm = peak[0]
    while p.poll() is None:
        hwm = max(hwm, vm_hwm(p.pid))
        time.sleep(0.002)
    err.seek(0)
    return p.returncode, err.read().decode(errors="replace"), hwm


def vm_hwm(pid):
    """The peak resident set of process pid so far, in bytes (0 once gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def case_memory(tmp):
    sink = Sink()
    try:
        config = write_config(tmp, sink.port, os.path.join(tmp, "spool"))
        one = ["rcpt@example.test"]
        results = {}
        for name, rcpts, size in [("1 KB", one, 1000), ("100 MB", one, 100 * 1000 * 1000),
                                  ("1 rcpt", one, 10000),
                                  ("1000 rcpts", ["r%d@example.test" % i for i in range(1000)],
                                   10000)]:
            t0 = time.monotonic()
            rc, err, rss = run_hato(config, rcpts, size)
            check(rc == 0, "%s: hato exited %d: %s" % (name, rc, err))
            results[name] = rss
            print("%-10s  peak RSS %6.2f MiB  (%.1f s)" % (name, rss / MIB, time.monotonic() - t0))
        check(sink.messages == 4, "the sink took %d messages, not 4" % sink.messages)
        check(sink.rcpts == 1003, "the sink saw %d RCPTs, not 1003" % sink.rcpts)
        check(sink.bytes >= 100 * 1000 * 1000, "the sink got only %d bytes" % sink.bytes)
        growth = results["100 MB"] - results["1 KB"]
        print("growth 1 KB -> 100 MB: %d KiB (bound %d KiB)" % (growth // 1024, RSS_GROWTH_100MB // 1024))
        check(growth <= RSS_GROWTH_100MB, "peak RSS grew by %d bytes from a 1 KB to a 100 MB "
              "message (bound %d)" % (growth, RSS_GROWTH_100MB))
        per = (results["1000 rcpts"] - results["1 rcpt"]) / 999
        print("per extra recipient: %.0f bytes (bound %d)" % (per, PER_RCPT))
        check(per <= PER_RCPT, "peak RSS grew by %.0f bytes per recipient (bound %d)" % (per, PER_RCPT))
        for name, rss in results.items():
            check(rss <= RSS_CEILING, "%s: peak RSS %d bytes over the ceiling %d" % (name, rss, RSS_CEILING))
        # One more than HATO_MAX_RECIPIENTS is refused before spooling: a
        # queued message the library cannot send would wait until it expires.
        many = ["r%d@example.test" % i for i in range(MAX_RECIPIENTS + 1)]
        rc, err, _ = run_hato(config, many, 1000)
        print("%d recipients: exit %d: %s" % (len(many), rc, err.strip()))
        check(rc == 64 and "too many recipients" in err and "NOT accepted" in err,
              "%d recipients: exit %d, not 64 with \"too many recipients\"" % (len(many), rc))
        queued = os.listdir(os.path.join(tmp, "spool", "queue"))
        check(queued == [], "%d recipients: something was queued: %s" % (len(many), queued))
        check(sink.messages == 4, "the sink took a message with too many recipients")
    finally:
        sink.stop()


def case_fds(tmp):
    sink = Sink(hold=True)
    seen = {}

    def during(p):
        check(sink.at_dot.wait(30), "the relay never saw the final dot")
        fd_dir = "/proc/%d/fd" % p.pid
        for fd in sorted(os.listdir(fd_dir), key=int):
            try:
                seen[int(fd)] = os.readlink(os.path.join(fd_dir, fd))
            except FileNotFoundError:
                pass
        sink.hold.set()

    try:
        spool = os.path.join(tmp, "spool")
        config = write_config(tmp, sink.port, spool)
        rc, err, _ = run_hato(config, ["rcpt@example.test"], 100000, during=during)
        check(rc == 0, "hato exited %d: %s" % (rc, err))
        print("descriptors held on the final dot:")
        for fd, target in seen.items():
            print("  %d -> %s" % (fd, target))
        check(len(seen) <= FD_HELD_MAX, "hato held %d descriptors (bound %d)" % (len(seen), FD_HELD_MAX))
        check(any(t.startswith("socket:") for t in seen.values()), "no socket among them")
        sink.hold = None

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        rc, err, _ = run_hato(config, ["rcpt@example.test"], 100000, preexec=low_limit)
        check(rc == 0, "under RLIMIT_NOFILE=%d hato exited %d: %s" % (FD_LIMIT, rc, err))
        print("a send under RLIMIT_NOFILE=%d: exit 0" % FD_LIMIT)
        check(sink.messages == 2, "the sink took %d messages, not 2" % sink.messages)
    finally:
        if sink.hold is not None:
            sink.hold.set()
        sink.stop()


def case_diskfull(tmp):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise Failure("diskfull needs root and unshare(1) for a private tmpfs")
    sink = Sink()
    try:
        spool = os.path.join(tmp, "spool")
        os.makedirs(spool)
        config = write_config(tmp, sink.port, spool)
        msg = os.path.join(tmp, "message")
        with open(msg, "wb") as f:
            f.write(header(["rcpt@example.test"]))
            f.write(((b"y" * 77) + b"\n") * (1000 * 1000 // 78))
        listing = os.path.join(tmp, "listing")
        script = ('mount -t tmpfs -o size=256k,mode=0755 hato-bounds "$1" || exit 99\n'
                  '"$2" -C "$3" -i rcpt@example.test < "$4" 2> "$5.err"; rc=$?\n'
                  'find "$1" -type f > "$5"\n'
                  'exit $rc\n')
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                            "sh", spool, HATO, config, msg, listing], timeout=60)
        rc = p.returncode
        with open(listing + ".err") as f:
            err = f.read()
        with open(listing) as f:
            files = [line.strip() for line in f if line.strip()]
        print("exit %d; stderr: %s" % (rc, err.strip()))
        print("files left on the full tmpfs: %s" % (files or "none"))
        check(rc != 99, "could not mount a tmpfs (is this a container without CAP_SYS_ADMIN?)")
        check(rc == 75, "exit %d, not 75 (EX_TEMPFAIL)" % rc)
        check("NOT accepted" in err, "stderr does not say the message was NOT accepted")
        check("No space left on device" in err, "stderr does not name the full disk")
        leftovers = [f for f in files if in_spool(spool, f, "tmp", "queue")]
        check(not leftovers, "half-written files left in the spool: %s" % leftovers)
        check(sink.messages == 0, "the relay got a message hato did not accept")
        check(os.listdir(spool) == [], "the tmpfs leaked out of the mount namespace")
    finally:
        sink.stop()


def case_diskfull_report(tmp):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise Failure("diskfull-report needs root and unshare(1) for a private tmpfs")
    sink = Sink()
    try:
        spool = os.path.join(tmp, "spool")
        os.makedirs(spool)
        config = write_config(tmp, sink.port, spool)
        msg = os.path.join(tmp, "message")
        with open(msg, "wb") as f:
            f.write(header(["bounce@example.test"]) + b"hello\n")
        out = os.path.join(tmp, "out")
        script = ('mount -t tmpfs -o size=256k,mode=0755 hato-bounds "$1" || exit 99\n'
                  '"$2" -C "$3" -odq -f a@example.test bounce@example.test < "$4" 2> "$5.submit" || exit 98\n'
                  'dd if=/dev/zero of="$1/filler" bs=4k 2> /dev/null\n'
                  '"$2" -C "$3" -q > "$5.flush1" 2>&1; echo $? > "$5.rc1"\n'
                  'find "$1" -type f ! -name filler | sort > "$5.files1"\n'
                  'rm -f "$1/filler"\n'
                  '"$2" -C "$3" -q > "$5.flush2" 2>&1; echo $? > "$5.rc2"\n'
                  'find "$1" -type f | sort > "$5.files2"\n')
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                            "sh", spool, HATO, config, msg, out], timeout=120)
        check(p.returncode != 99, "could not mount a tmpfs")
        check(p.returncode != 98, "the message could not be queued with -odq: %s"
              % open(out + ".submit").read())

        def read(suffix):
            with open(out + suffix) as f:
                return f.read()
        maillog = read_maillog(tmp)
        files1 = read(".files1").split()
        files2 = read(".files2").split()
        print("first flush (disk full): exit %s; %s" % (read(".rc1").strip(), read(".flush1").strip()))
        print("  files: %s" % files1)
        print("second flush: exit %s; files: %s" % (read(".rc2").strip(), files2))
        print("relay saw senders %s" % sink.senders)
        queued1 = [f for f in files1 if in_spool(spool, f, "queue")]
        check(queued1, "after the flush on a full disk the message is no longer in queue/")
        check(not [f for f in files1 if in_spool(spool, f, "tmp")], "half-written files in tmp/: %s" % files1)
        check("No space left on device" in read(".flush1") + maillog,
              "neither the flush's output nor the maillog names the full disk")
        check(sink.senders.count("<>") == 1, "the report went %d times, not once (after room was "
              "made): %s" % (sink.senders.count("<>"), sink.senders))
        check(not [f for f in files2 if in_spool(spool, f, "tmp", "queue")],
              "after the second flush the spool still holds %s" % files2)
    finally:
        sink.stop()


def in_spool(spool, path, *subdirs):
    """Whether path lies in one of the spool's subdirectories."""
    return os.path.relpath(path, spool).split(os.sep)[0] in subdirs


def read_maillog(tmp):
    try:
        with open(os.path.join(tmp, "maillog")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


CASES = {"memory": case_memory, "fds": case_fds, "diskfull": case_diskfull,
         "diskfull-report": case_diskfull_report}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES), required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hato-bounds-")
    try:
        CASES[a.case](tmp)
    except Failure as e:
        print("FAIL %s: %s" % (a.case, e))
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
