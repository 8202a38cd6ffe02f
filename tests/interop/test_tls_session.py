#!/usr/bin/python3
"""TLS sessions and the probe against the real Postfix.

Cases:
  resumption  two hato processes share a data_directory: the first makes a
              full handshake and stores the session (a 0600 file), the
              second resumes it (hato's INFO line says so), and both
              messages arrive
  probe       hato --probe over STARTTLS with credentials: greeting, TLS
              version and verified chain with SHA-256 fingerprints,
              capabilities before and after STARTTLS, the mechanism chosen
              and why others were passed over, a successful login; no mail
"""
import os
import re
import stat

import interop
from interop import check


def settings(t, key):
    return [("relayhost", key), ("smtp_tls_CAfile", t.ca), ("smtp_tls_loglevel", "1"),
            ("maillog_file", t.maillog_path())] + t.auth_settings(key)


def message(t, msgid, n):
    return ("From: alice@example.test\nTo: bob@example.test\nDate: %s\nMessage-ID: %s\n"
            "Subject: session %d\n\nsend %d\n" % (interop.rfc2822_date(), msgid, n, n)).encode()


def resumption(t):
    key = "[%s]:%d" % (t.host, t.port_starttls)
    config = t.write_config(settings(t, key))
    state = os.path.join(t.tmp, "state")
    lines = []
    for n in (1, 2):
        msgid = t.message_id(".%d" % n)
        proc = t.run_hato(config, ["-v", "-i", "-f", t.user, "bob@example.test"],
                          message(t, msgid, n))
        t.expect_sent(proc)
        t.wait_delivered(msgid, ["bob"])
        tls = [l for l in proc.err.splitlines() if l.startswith("hato: TLS with ")]
        check(len(tls) == 1, "run %d: expected one 'TLS with' line, got %r" % (n, tls))
        lines.append(tls[0] if tls else "")
        if n == 1:
            sessions = os.path.join(state, "sessions")
            files = os.listdir(sessions) if os.path.isdir(sessions) else []
            check(len(files) == 1, "after the first run %s holds %r, expected one session"
                  % (sessions, files))
            for f in files:
                mode = stat.S_IMODE(os.stat(os.path.join(sessions, f)).st_mode)
                check(mode == 0o600, "session file %s has mode %o, expected 600" % (f, mode))
    check("resumed" not in lines[0], "the first run claims a resumed session: %s" % lines[0])
    check("resumed" in lines[1], "the second run did not resume the session: %s" % lines[1])


def probe(t):
    key = "[%s]:%d" % (t.host, t.port_starttls)
    config = t.write_config(settings(t, key))
    proc = t.run_hato(config, ["--probe"], b"")
    check(proc.returncode == 0, "hato --probe exited %d, expected 0" % proc.returncode)
    out = proc.out
    for what, pattern in [
        ("the port scan", r"(?m)^ports of %s:" % re.escape(t.host)),
        ("the greeting", r"(?m)^greeting: 220 "),
        ("capabilities before TLS with STARTTLS", r"(?m)^capabilities before TLS: .*STARTTLS"),
        ("the TLS version", r"(?m)^TLS: TLSv1\.[23] "),
        ("a verified leaf certificate with its SHA-256",
         r"(?m)^  certificate 0: subject .*CN=localhost.*sha256 cert ([0-9A-F]{2}:){31}[0-9A-F]{2}.*verified"),
        ("capabilities with TLS listing AUTH", r"(?m)^capabilities with TLS: .*AUTH "),
        ("the mechanism chosen", r"(?m)^SASL: hato chooses SCRAM-SHA-256"),
        ("a successful login", r"(?m)^SASL: login as %s .*succeeded" % re.escape(t.user)),
        ("the verdict", r"(?m)^ready: a message can be sent"),
    ]:
        check(re.search(pattern, out), "--probe output lacks %s (/%s/)" % (what, pattern))
    check(not os.path.exists(t.maillog_path()) or "status=sent" not in open(t.maillog_path()).read(),
          "--probe sent a message")


CASES = {"resumption": resumption, "probe": probe}

if __name__ == "__main__":
    interop.main(lambda case, t: case(t), CASES)
