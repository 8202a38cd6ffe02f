#!/usr/bin/python3
"""Relaying through the test Postfix with settings as a user would paste them.

Cases:
  guide-starttls  the guide's main.cf lines (hash: password map, noanonymous,
                  mechanism filter plain,login, level may, smtp_tls_CApath
                  naming a file) over STARTTLS; hato -t with To, Cc and Bcc;
                  every recipient gets one copy, none shows a Bcc header, and
                  hato's maillog_file has a status=sent line per recipient
  smtps           the same over implicit TLS (smtp_tls_wrappermode = yes),
                  level verify against the test CA
  ipv6            relayhost [::1]:port, STARTTLS, level verify (every peer;
                  plain text to OpenSMTPD)
  minimal         only relayhost, password map and CA: the defaults (verify,
                  PLAIN allowed inside TLS) carry the message
  plain-port      no TLS at all, AUTH PLAIN allowed explicitly
                  (smtp_sasl_security_options = noanonymous)
  (guide-starttls and smtps also run against Exim, guide-starttls against
  Dovecot's submission service: --peer)
  fallback-relay  relayhost is down; smtp_fallback_relay names the test
                  Postfix, which gets the message with the login of its own
                  entry in the password map (the relayhost's entry, with
                  another user and password, is never offered to it)
"""
import re

import interop
from interop import check, log


def guide_settings(t, relay, port, extra=()):
    key = "[%s]:%d" % (relay, port)
    pwmap = t.write_password_map([(key, t.user, t.password)])
    return [
        ("relayhost", key),
        ("smtp_sasl_auth_enable", "yes"),
        ("smtp_sasl_password_maps", "hash:" + pwmap),
        ("smtp_sasl_security_options", "noanonymous"),
        ("smtp_sasl_tls_security_options", "noanonymous"),
        ("smtp_sasl_mechanism_filter", "plain,login"),
        ("smtp_tls_security_level", "may"),
        ("smtp_tls_loglevel", "1"),
        # The guide gives the CA bundle *file* to the directory setting.
        ("smtp_tls_CApath", t.ca),
        ("myhostname", "client.example.test"),
        ("maillog_file", t.maillog_path()),
    ] + list(extra)


def message_with_bcc(t, msgid):
    return (
        "From: Alice <alice@example.test>\n"
        "To: Alice <alice@example.test>\n"
        "Cc: bob@example.test\n"
        "Bcc: carol@example.test\n"
        "Date: %s\n"
        "Message-ID: %s\n"
        "Subject: interop %s\n"
        "\n"
        "Hello from the hato interop test %s.\n" % (interop.rfc2822_date(), msgid, t.case, t.case)
    ).encode()


def relay_with_bcc(t, settings, port):
    msgid = t.message_id()
    config = t.write_config(settings)
    proc = t.run_hato(config, ["-t", "-i", "-f", t.user], message_with_bcc(t, msgid))
    t.expect_sent(proc)
    boxes = ["alice", "bob", "carol"]
    copies = t.wait_delivered(msgid, boxes)
    for box, path in copies.items():
        names = interop.header_names(interop.read_delivered(path))
        check("bcc" not in names, "the copy delivered to %s (%s) has a Bcc header" % (box, path))
        check(names.count("message-id") == 1 and names.count("date") == 1,
              "the copy delivered to %s has Date/Message-ID added or doubled: %s" % (box, names))
    method, _ = t.auth_logged(msgid)
    check(method in ("PLAIN", "LOGIN"),
          "%s logged mechanism %s, expected PLAIN or LOGIN (smtp_sasl_mechanism_filter = plain,login)"
          % (t.peer, method))
    check_maillog(t, ["alice@example.test", "bob@example.test", "carol@example.test"], port)


def check_maillog(t, rcpts, port):
    try:
        with open(t.maillog_path(), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        interop.fail("hato wrote no maillog_file %s" % t.maillog_path())
    log("--- hato maillog:\n%s\n---" % "\n".join(lines))
    for rcpt in rcpts:
        hits = [line for line in lines if "to=<%s>" % rcpt in line]
        check(len(hits) == 1, "maillog_file has %d lines for to=<%s>, expected 1" % (len(hits), rcpt))
        line = hits[0]
        check(re.search(r"relay=[^,\s]*\[[0-9a-fA-F.:]+\]:%d" % port, line),
              "maillog line lacks relay=host[addr]:%d: %s" % (port, line))
        check("status=sent" in line and "dsn=2.0.0" in line,
              "maillog line is not dsn=2.0.0, status=sent: %s" % line)
        check(re.search(r"delay=[0-9.]+", line), "maillog line lacks delay=: %s" % line)


def guide_starttls(t):
    relay_with_bcc(t, guide_settings(t, "localhost", t.port_starttls), t.port_starttls)


def smtps(t):
    settings = guide_settings(t, "localhost", t.port_smtps, [
        ("smtp_tls_wrappermode", "yes"),
        ("smtp_tls_security_level", "verify"),
        ("smtp_tls_CAfile", t.ca),
    ])
    # Later lines win in main.cf, as in Postfix; drop the guide's "may" anyway
    # so the file reads unambiguously.
    settings = [s for s in settings if s != ("smtp_tls_security_level", "may")]
    relay_with_bcc(t, settings, t.port_smtps)


def ipv6(t):
    check(t.ipv6, "HATO_TEST_IPV6 is not 'yes': start.sh found no ::1 on lo, but this test was "
          "registered because meson saw ::1 at configure time; restart the servers")
    port = t.port_starttls if t.port_starttls is not None else t.port_plain
    t.require_listener("::1", port)
    key = "[::1]:%d" % port
    settings = [("relayhost", key), ("inet_protocols", "all")]
    if t.port_starttls is not None:
        settings += t.auth_settings(key) + [
            # verify: the certificate's IP:::1 subjectAltName must match the
            # literal (mbedTLS 2.28 cannot; hato's TLS layer checks it itself).
            ("smtp_tls_security_level", "verify"),
            ("smtp_tls_CAfile", t.ca),
        ]
    else:
        settings += [("smtp_tls_security_level", "none")]  # OpenSMTPD: plain only
    config = t.write_config(settings)
    msgid = t.message_id()
    msg = ("From: alice@example.test\nTo: alice@example.test\nDate: %s\nMessage-ID: %s\n"
           "Subject: over IPv6\n\nsent to [::1]\n" % (interop.rfc2822_date(), msgid)).encode()
    proc = t.run_hato(config, ["-v", "-i", "-f", t.user, "alice@example.test"], msg)
    t.expect_sent(proc)
    check(re.search(r"(?m)^hato: connected to \S*\[::1\]:%d" % port, proc.err),
          "hato -v does not say it connected to [::1]:%d" % port)
    t.wait_delivered(msgid, ["alice"])
    if t.peer == "postfix":
        session = t.smtpd_session(msgid)
        check(session.get("client", "").endswith("[::1]"),
              "Postfix saw client=%s, expected a connection from [::1]" % session.get("client"))
    elif t.peer == "exim":
        line = t.exim_received_line(msgid)
        check(" [::1]:" in line, "Exim did not see the message come from [::1]: %s" % line)


def plain_port(t):
    key = "[%s]:%d" % (t.host, t.port_plain)
    settings = [("relayhost", key)] + t.auth_settings(key) + [
        ("smtp_tls_security_level", "none"),
        ("smtp_sasl_security_options", "noanonymous"),
        ("smtp_sasl_mechanism_filter", "plain"),
    ]
    config = t.write_config(settings)
    msgid = t.message_id()
    msg = ("From: alice@example.test\nTo: bob@example.test\nDate: %s\nMessage-ID: %s\n"
           "Subject: plain text\n\nno TLS here\n" % (interop.rfc2822_date(), msgid)).encode()
    t.expect_sent(t.run_hato(config, ["-i", "-f", t.user, "bob@example.test"], msg))
    t.wait_delivered(msgid, ["bob"])
    session = t.smtpd_session(msgid)
    check(session.get("sasl_method") == "PLAIN",
          "Postfix saw sasl_method=%s, expected PLAIN" % session.get("sasl_method"))


def minimal(t):
    """Only what hato needs: relayhost, the password map, the CA.  The
    defaults (level verify; PLAIN allowed inside TLS) must carry it, with
    PLAIN forced so the TLS-only default is what permits it."""
    key = "[%s]:%d" % (t.host, t.port_starttls)
    pwmap = t.write_password_map([(key, t.user, t.password)])
    config = t.write_config([
        ("relayhost", key),
        ("smtp_sasl_auth_enable", "yes"),
        ("smtp_sasl_password_maps", "hash:" + pwmap),
        ("smtp_sasl_mechanism_filter", "plain"),
        ("smtp_tls_CAfile", t.ca),
    ])
    msgid = t.message_id()
    msg = ("From: alice@example.test\nTo: bob@example.test\nDate: %s\nMessage-ID: %s\n"
           "Subject: defaults\n\nnothing but the essentials\n"
           % (interop.rfc2822_date(), msgid)).encode()
    t.expect_sent(t.run_hato(config, ["-i", "-f", t.user, "bob@example.test"], msg))
    t.wait_delivered(msgid, ["bob"])
    session = t.smtpd_session(msgid)
    check(session.get("sasl_method") == "PLAIN",
          "Postfix saw sasl_method=%s, expected PLAIN" % session.get("sasl_method"))


def fallback_relay(t):
    """The relay is down: the fallback relay takes the message, logged in
    with its own password-map entry, verified against the test CA."""
    down = "[127.0.0.1]:%d" % interop.closed_port()
    key = "[%s]:%d" % (t.host, t.port_starttls)
    pwmap = t.write_password_map([(down, "primary-only-user", "primary-only-secret"),
                                  (key, t.user, t.password)])
    config = t.write_config([
        ("relayhost", down),
        ("smtp_fallback_relay", key),
        ("smtp_sasl_auth_enable", "yes"),
        ("smtp_sasl_password_maps", "hash:" + pwmap),
        ("smtp_tls_CAfile", t.ca),
        ("maillog_file", t.maillog_path()),
    ])
    msgid = t.message_id()
    msg = ("From: alice@example.test\nTo: bob@example.test\nDate: %s\nMessage-ID: %s\n"
           "Subject: fallback\n\nthe relay is down\n" % (interop.rfc2822_date(), msgid)).encode()
    proc = t.run_hato(config, ["-v", "-i", "-f", t.user, "bob@example.test"], msg)
    t.expect_sent(proc)
    check("trying fallback relay [%s]:%d" % (t.host, t.port_starttls) in proc.err,
          "hato -v does not say it tried the fallback relay")
    # Each relay's own entry: the relayhost's for it, the fallback's for it.
    check(re.search(r"authenticating as %s \(from \S+ \[%s\]:%d;" % (re.escape(t.user),
                    re.escape(t.host), t.port_starttls), proc.err),
          "hato -v does not show the fallback relay's own password-map entry in use")
    t.wait_delivered(msgid, ["bob"])
    session = t.smtpd_session(msgid)
    check(session.get("sasl_username") == t.user,
          "Postfix logged sasl_username=%s, expected %s" % (session.get("sasl_username"), t.user))
    with open(t.maillog_path(), encoding="utf-8") as f:
        maillog = f.read()
    check(re.search(r"relay=%s\[[^]]+\]:%d, .*status=sent" % (re.escape(t.host), t.port_starttls),
                    maillog), "the maillog does not name the fallback relay:\n" + maillog)


CASES = {
    "fallback-relay": fallback_relay,
    "minimal": minimal,
    "guide-starttls": guide_starttls,
    "smtps": smtps,
    "ipv6": ipv6,
    "plain-port": plain_port,
}

if __name__ == "__main__":
    interop.main(lambda case, t: case(t), CASES)
