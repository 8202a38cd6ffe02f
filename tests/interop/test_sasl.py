#!/usr/bin/python3
"""Each SASL mechanism the server offers, forced with smtp_sasl_mechanism_filter,
over STARTTLS verified against the test CA, with -v.  The message must arrive,
the server must log that mechanism for that very session (Postfix's
sasl_method=, Exim's A=, Dovecot submission's method=; so a client that
silently picks another mechanism fails), and the -v trace must name the AUTH
mechanism without showing the credentials.

  test_sasl.py --case plain|login|cram-md5|digest-md5|scram-sha-1|scram-sha-256
               [--peer postfix|exim|dovecot]
"""
import re

import interop
from interop import check

MECHS = ["plain", "login", "cram-md5", "digest-md5", "scram-sha-1", "scram-sha-256"]


def run(mech, t):
    _, settings = t.submit_settings([
        ("smtp_sasl_mechanism_filter", mech),
        # Postfix's default (noplaintext, noanonymous) would forbid PLAIN and
        # LOGIN even inside TLS.
        ("smtp_sasl_tls_security_options", "noanonymous"),
    ])
    settings.append(("myhostname", "client.example.test"))
    config = t.write_config(settings)
    msgid = t.message_id()
    msg = ("From: alice@example.test\nTo: dave@example.test\nDate: %s\nMessage-ID: %s\n"
           "Subject: SASL %s\n\nauthenticated with %s\n"
           % (interop.rfc2822_date(), msgid, mech.upper(), mech.upper())).encode()
    proc = t.run_hato(config, ["-v", "-i", "-f", t.user, "dave@example.test"], msg)
    t.expect_sent(proc)
    t.wait_delivered(msgid, ["dave"])
    method, user = t.auth_logged(msgid)
    check(method == mech.upper(),
          "%s logged mechanism %s for this session, expected %s" % (t.peer, method, mech.upper()))
    check(user == t.user, "%s logged user %s, expected %s" % (t.peer, user, t.user))
    check(re.search(r"AUTH\s+%s\b" % re.escape(mech.upper()), proc.out + proc.err, re.I),
          "the -v trace does not show the AUTH %s command" % mech.upper())


if __name__ == "__main__":
    interop.main(run, {m: m for m in MECHS})
