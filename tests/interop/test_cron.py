#!/usr/bin/python3
"""What cron does, against the real Postfix.

Cases:
  cron-root   a message like cron's output, piped to `hato root` with no
              From, no Date, no Message-ID and a local recipient: the
              aliases file sends root's mail to alice; it arrives in
              alice's Maildir with From, Date and Message-ID added by hato
              and the body as written
"""
import os
import re
import time

import interop
from interop import check, fail


def find_by_subject(t, box, subject, timeout=30):
    deadline = time.monotonic() + timeout
    needle = ("Subject: " + subject).encode()
    while time.monotonic() < deadline:
        for sub in ("new", "cur"):
            d = os.path.join(t.maildir_root, box, sub)
            for name in os.listdir(d) if os.path.isdir(d) else []:
                path = os.path.join(d, name)
                data = interop.read_delivered(path)
                if needle in interop.header_section(data):
                    return data
        time.sleep(0.2)
    fail("no message with Subject %r arrived in %s within %d s; see %s"
         % (subject, box, timeout, t.postfix_log))


def cron_root(t):
    key = "[%s]:%d" % (t.host, t.port_starttls)
    aliases = os.path.join(t.tmp, "aliases")
    with open(aliases, "w") as f:
        f.write("# as in /etc/aliases\npostmaster: root\nroot: alice@example.test\n")
    config = t.write_config([
        ("relayhost", key), ("smtp_tls_CAfile", t.ca),
        ("myhostname", "server.example.test"), ("myorigin", "example.test"),
        ("alias_maps", "hash:" + aliases),
        # The provider takes only its account as sender.
        ("smtp_generic_maps", "texthash:" + write_generic(t)),
    ] + t.auth_settings(key))
    subject = "Cron <root@server> /usr/local/bin/backup %s" % t.token
    body = b"backup finished\n/var: 93% used\n"
    msg = ("Subject: %s\n\n" % subject).encode() + body
    t.expect_sent(t.run_hato(config, ["root"], msg))
    got = find_by_subject(t, "alice", subject)
    head = interop.header_section(got).decode("utf-8", "replace")
    for name in ("From", "Date", "Message-ID"):
        check(re.search(r"(?mi)^%s: " % name, head), "no %s header in the delivered copy:\n%s"
              % (name, head))
    check(re.search(r"(?mi)^From: .*alice@example\.test", head),
          "From was not rewritten to the provider account by smtp_generic_maps:\n%s" % head)
    check(got.endswith(body), "the body changed on the way:\n%r" % got[-200:])


def write_generic(t):
    path = os.path.join(t.tmp, "generic")
    with open(path, "w") as f:
        f.write("root@example.test alice@example.test\n")
    return path


CASES = {"cron-root": cron_root}

if __name__ == "__main__":
    interop.main(lambda case, t: case(t), CASES)
