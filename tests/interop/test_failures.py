#!/usr/bin/python3
"""Failures a user will meet, against the real server.  In every case nothing
may be delivered or even accepted by Postfix.

  wrong-password   AUTH fails: exit 75 (Postfix's smtp_sasl_auth_soft_bounce
                   default), stderr says it was authentication
  wrong-password-plain  the same with PLAIN, pipelined with MAIL and RCPT:
                   no content after the refusal (Exim, Dovecot submission)
  wrong-ca         level verify against an unrelated CA: non-zero exit,
                   stderr mentions the certificate
  unauthenticated  no SASL: the server refuses the recipient (554 5.7.1 ...
                   Access denied); a permanent failure whose reply reaches
                   stderr
"""
import re

import interop
from interop import check


def message(t, msgid):
    return ("From: alice@example.test\nTo: alice@example.test\nDate: %s\nMessage-ID: %s\n"
            "Subject: must not arrive (%s)\n\nthis message must not be delivered\n"
            % (interop.rfc2822_date(), msgid, t.case)).encode()


def base_settings(t):
    key = "[%s]:%d" % (t.host, t.port_starttls)
    return key, [("relayhost", key),
                 ("smtp_tls_security_level", "verify"),
                 ("smtp_tls_CAfile", t.ca)]


def wrong_password(t, extra=(), args=()):
    key, settings = base_settings(t)
    pwmap = t.write_password_map([(key, t.user, "not the password")])
    settings += [("smtp_sasl_auth_enable", "yes"),
                 ("smtp_sasl_password_maps", "hash:" + pwmap)] + list(extra)
    msgid = t.message_id()
    proc = t.run_hato(t.write_config(settings),
                      list(args) + ["-i", "-f", t.user, "alice@example.test"], message(t, msgid))
    # A refused login defers (smtp_sasl_auth_soft_bounce): since the queue
    # (issue 4) that is exit 0 with the message kept in the spool.
    check(proc.returncode == 0 and "queued as" in proc.err,
          "hato exited %d on a wrong password, expected 0 with the message queued"
          % proc.returncode)
    check("authentication" in proc.err.lower(),
          "stderr does not say that authentication failed: %r" % proc.err)
    check("not the password" not in proc.out + proc.err, "hato printed the password")
    t.expect_not_delivered(msgid)
    return proc


def wrong_password_plain(t):
    """PLAIN forced: AUTH leads a pipelined group with MAIL and RCPT; after
    its refusal no content may follow (Dovecot's submission-login read a
    BDAT chunk's lines as commands)."""
    proc = wrong_password(t, [("smtp_sasl_mechanism_filter", "plain"),
                              ("smtp_sasl_tls_security_options", "noanonymous")], ["-v"])
    sent = [l for l in proc.err.splitlines() if l.startswith("hato: > ")]
    check(any(l.startswith("hato: > AUTH PLAIN") for l in sent), "hato did not use AUTH PLAIN")
    check(not any(l.startswith(("hato: > BDAT", "hato: > [")) for l in sent),
          "message content went after the refused login: %r" % sent)
    check(not re.search(r"(?m)^hato: < 500 ", proc.err),
          "the server took something hato sent for a bad command:\n%s" % proc.err)


def wrong_ca(t):
    key, settings = base_settings(t)
    settings = [s for s in settings if s[0] != "smtp_tls_CAfile"]
    settings += [("smtp_tls_CAfile", t.other_ca)] + t.auth_settings(key)
    msgid = t.message_id()
    proc = t.run_hato(t.write_config(settings), ["-i", "-f", t.user, "alice@example.test"],
                      message(t, msgid))
    # A certificate that does not verify defers: exit 0, message queued.
    check(proc.returncode == 0 and "queued as" in proc.err,
          "hato exited %d on an unverified certificate, expected 0 with the message queued"
          % proc.returncode)
    check("certificate" in proc.err.lower(),
          "stderr does not mention the certificate: %r" % proc.err)
    t.expect_not_delivered(msgid)


def unauthenticated(t):
    key, settings = base_settings(t)
    msgid = t.message_id()
    proc = t.run_hato(t.write_config(settings), ["-i", "-f", t.user, "alice@example.test"],
                      message(t, msgid))
    check(proc.returncode != 0, "hato exited 0 although the server refused the recipient")
    check(proc.returncode != interop.EX_TEMPFAIL,
          "hato exited 75 (temporary) on a 554 refusal, which is permanent")
    check("554" in proc.err and "Access denied" in proc.err,
          "stderr does not carry the server's reply (554 5.7.1 ... Access denied): %r" % proc.err)
    t.expect_not_delivered(msgid)


CASES = {
    "wrong-password": wrong_password,
    "wrong-password-plain": wrong_password_plain,
    "wrong-ca": wrong_ca,
    "unauthenticated": unauthenticated,
}

if __name__ == "__main__":
    interop.main(lambda case, t: case(t), CASES)
