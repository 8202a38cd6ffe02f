#!/usr/bin/python3
"""Each SASL mechanism Dovecot offers, forced with smtp_sasl_mechanism_filter,
over STARTTLS verified against the test CA, with -v.  The message must arrive,
Postfix must log sasl_method=<MECH> for that very session (so a client that
silently picks another mechanism fails), and the -v trace must name the AUTH
mechanism without showing the credentials.

  test_sasl.py --case plain|login|cram-md5|digest-md5|scram-sha-1|scram-sha-256
"""
import re

import interop
from interop import check

MECHS = ["plain", "login", "cram-md5", "digest-md5", "scram-sha-1", "scram-sha-256"]


def run(mech, t):
    key = "[%s]:%d" % (t.host, t.port_starttls)
    settings = [("relayhost", key)] + t.auth_settings(key) + [
        ("smtp_sasl_mechanism_filter", mech),
        # Postfix's default (noplaintext, noanonymous) would forbid PLAIN and
        # LOGIN even inside TLS.
        ("smtp_sasl_tls_security_options", "noanonymous"),
        ("smtp_tls_security_level", "verify"),
        ("smtp_tls_CAfile", t.ca),
        ("myhostname", "client.example.test"),
    ]
    config = t.write_config(settings)
    msgid = t.message_id()
    msg = ("From: alice@example.test\nTo: dave@example.test\nDate: %s\nMessage-ID: %s\n"
           "Subject: SASL %s\n\nauthenticated with %s\n"
           % (interop.rfc2822_date(), msgid, mech.upper(), mech.upper())).encode()
    proc = t.run_hato(config, ["-v", "-i", "-f", t.user, "dave@example.test"], msg)
    t.expect_sent(proc)
    t.wait_delivered(msgid, ["dave"])
    session = t.smtpd_session(msgid)
    check(session.get("sasl_method") == mech.upper(),
          "Postfix logged sasl_method=%s for this session, expected %s"
          % (session.get("sasl_method"), mech.upper()))
    check(session.get("sasl_username") == t.user,
          "Postfix logged sasl_username=%s, expected %s" % (session.get("sasl_username"), t.user))
    check(re.search(r"AUTH\s+%s\b" % re.escape(mech.upper()), proc.out + proc.err, re.I),
          "the -v trace does not show the AUTH %s command" % mech.upper())


if __name__ == "__main__":
    interop.main(run, {m: m for m in MECHS})
