#!/usr/bin/python3
"""What differs from server to server: refusals, several messages over one
connection, and which SMTP extensions hato used with what the server offers.
Run with --peer postfix|exim|opensmtpd|dovecot.

  refused-recipient  the only recipient is unknown: nothing is accepted, hato
                     exits 67 (EX_NOUSER; OpenSMTPD's "550 Invalid recipient"
                     has no enhanced code) and stderr carries the reply
  partial            one recipient of two is unknown: the other gets the
                     message byte for byte, hato exits 67 (hato(8): the
                     refusals alone decide the status) and the sender gets a
                     non-delivery report naming the refused address
  keep-alive         three messages queued with -odq, then one 'hato -q -v':
                     one connection carries all three (MAIL FROM three times,
                     RSET or a fresh transaction between), each arrives once
  keep-alive-refused the middle of three queued messages has only an unknown
                     recipient; the same connection carries the third
  smtputf8           UTF-8 in the header, ASCII body: SMTPUTF8 and
                     BODY=8BITMIME where offered, else refused (65) before MAIL
  dsn                -N/-R/-V: NOTIFY, ORCPT, RET, ENVID where DSN is offered
                     (OpenSMTPD, Postfix), dropped where not; delivered
  extensions         with -v, the body goes as BDAT where the server offers
                     CHUNKING (Exim, Postfix, Dovecot) and as DATA where it
                     does not (OpenSMTPD), commands are pipelined only where
                     PIPELINING is offered; Exim's log confirms it (K and L
                     on its '<=' line)
"""
import os
import re
import time

import interop
from interop import check, fail, log

UNKNOWN = "nobody-here@example.test"


def message(t, msgid, subject, to="bob@example.test"):
    return ("From: Alice <alice@example.test>\nTo: %s\nDate: %s\nMessage-ID: %s\n"
            "Subject: %s (%s)\n\nline one\n.a line with a leading dot\nlast line\n"
            % (to, interop.rfc2822_date(), msgid, subject, t.peer)).encode()


def config(t, extra=()):
    _, settings = t.submit_settings()
    return t.write_config(settings + list(extra))


def refused_recipient(t):
    msgid = t.message_id()
    proc = t.run_hato(config(t), ["-i", "-f", t.user, UNKNOWN],
                      message(t, msgid, "refused", UNKNOWN))
    check(proc.returncode == 67,
          "hato exited %d when the only recipient was refused as unknown; expected 67 "
          "(EX_NOUSER)" % proc.returncode)
    check(re.search(r"\b550\b", proc.err) and UNKNOWN in proc.err,
          "stderr does not carry the server's 550 reply for <%s>: %r" % (UNKNOWN, proc.err))
    t.expect_not_delivered(msgid)


def partial(t):
    msgid = t.message_id()
    msg = message(t, msgid, "partial", "bob@example.test, %s" % UNKNOWN)
    proc = t.run_hato(config(t), ["-i", "-f", t.user, "bob@example.test", UNKNOWN], msg)
    # hato(8): the status is decided by the refusals alone; every one said
    # the mailbox does not exist.
    check(proc.returncode == 67, "hato exited %d, expected 67 (EX_NOUSER) with one of two "
          "recipients unknown" % proc.returncode)
    check(UNKNOWN in proc.err, "stderr does not name the refused recipient: %r" % proc.err)
    copies = t.wait_delivered(msgid, ["bob"])
    interop.compare_messages(msg, copies["bob"])
    # The report to the sender (alice) quotes the message's header.
    needle = msgid.encode()
    deadline = time.monotonic() + 30
    while True:
        for sub in ("new", "cur"):
            d = os.path.join(t.maildir_root, "alice", sub)
            for name in os.listdir(d) if os.path.isdir(d) else []:
                data = interop.read_delivered(os.path.join(d, name))
                if needle in data and UNKNOWN.encode() in data and \
                        b"message-id: " + needle.lower() not in interop.header_section(data).lower():
                    log("non-delivery report in %s" % os.path.join(d, name))
                    return
        if time.monotonic() > deadline:
            fail("no non-delivery report naming %s and %s reached alice within 30 s"
                 % (UNKNOWN, msgid))
        time.sleep(0.2)


def keep_alive(t):
    cfg = config(t)
    ids = [t.message_id(".%d" % n) for n in (1, 2, 3)]
    msgs = [message(t, m, "keep-alive %d" % n) for n, m in enumerate(ids, 1)]
    for msg in msgs:
        proc = t.run_hato(cfg, ["-odq", "-i", "-f", t.user, "bob@example.test"], msg)
        check(proc.returncode == 0, "hato -odq exited %d" % proc.returncode)
    for m in ids:
        check(not t.find_copies(m, ["bob"]), "hato -odq sent %s at once" % m)
    proc = t.run_hato(cfg, ["-q", "-v"], b"")
    check(proc.returncode == 0, "hato -q exited %d" % proc.returncode)
    connects = re.findall(r"(?m)^hato: connected to ", proc.err)
    mails = re.findall(r"(?m)^hato: > MAIL FROM:", proc.err)
    check(len(connects) == 1, "hato -q opened %d connections for 3 messages, expected 1"
          % len(connects))
    check(len(mails) == 3, "hato -q sent MAIL FROM %d times, expected 3" % len(mails))
    for msg, m in zip(msgs, ids):
        interop.compare_messages(msg, t.wait_delivered(m, ["bob"])["bob"])
    if t.peer == "exim":
        ports = {re.search(r"\]:(\d+) ", t.exim_received_line(m)).group(1) for m in ids}
        check(len(ports) == 1, "Exim received the three messages from client ports %s" % ports)


def keep_alive_refused(t):
    """The middle one of three queued messages has only an unknown
    recipient: its transaction fails at RCPT (with PIPELINING and CHUNKING
    the MAIL, RCPT and BDAT already went out together), and the same
    connection must still carry the third message."""
    cfg = config(t)
    ids = [t.message_id(".%d" % n) for n in (1, 2, 3)]
    rcpts = ["bob@example.test", UNKNOWN, "carol@example.test"]
    msgs = [message(t, m, "keep-alive-refused %d" % n, r)
            for n, (m, r) in enumerate(zip(ids, rcpts), 1)]
    for msg, rcpt in zip(msgs, rcpts):
        proc = t.run_hato(cfg, ["-odq", "-i", "-f", t.user, rcpt], msg)
        check(proc.returncode == 0, "hato -odq exited %d" % proc.returncode)
    proc = t.run_hato(cfg, ["-q", "-v"], b"")
    check(proc.returncode == 0, "hato -q exited %d" % proc.returncode)
    check(re.search(r"(?m)^hato: recipient <%s> refused" % re.escape(UNKNOWN), proc.err),
          "hato -q -v does not report the refused recipient")
    # The report to alice may take a connection of its own; the three
    # queued messages must not.
    conn = proc.err.split("a non-delivery report")[0]
    check(len(re.findall(r"(?m)^hato: connected to ", conn)) == 1,
          "hato -q opened more than one connection for the three queued messages")
    interop.compare_messages(msgs[0], t.wait_delivered(ids[0], ["bob"])["bob"])
    interop.compare_messages(msgs[2], t.wait_delivered(ids[2], ["carol"])["carol"])
    check(not t.find_copies(ids[1]), "message 2 was delivered somewhere")


def smtputf8(t):
    """UTF-8 in From and Subject, an ASCII body (RFC 6532).  Where the server
    offers SMTPUTF8 (Exim, Postfix) MAIL carries SMTPUTF8 and BODY=8BITMIME
    and the message arrives byte for byte; where it does not (OpenSMTPD,
    Dovecot submission) hato refuses before MAIL: exit 65, a message naming
    SMTPUTF8, nothing delivered."""
    msgid = t.message_id()
    msg = ("From: J\u00f6rg <alice@example.test>\nTo: bob@example.test\nDate: %s\n"
           "Message-ID: %s\nSubject: Gr\u00fc\u00dfe aus K\u00f6ln (%s)\n\nASCII only\n"
           % (interop.rfc2822_date(), msgid, t.peer)).encode("utf-8")
    proc = t.run_hato(config(t), ["-v", "-i", "-f", t.user, "bob@example.test"], msg)
    mail = re.findall(r"(?m)^hato: > (MAIL FROM:<%s>.*)$" % re.escape(t.user), proc.err)
    if t.peer in ("exim", "postfix"):
        t.expect_sent(proc)
        check(mail and re.search(r"\bSMTPUTF8\b", mail[0]) and "BODY=8BITMIME" in mail[0],
              "MAIL lacks SMTPUTF8 or BODY=8BITMIME: %r" % mail)
        interop.compare_messages(msg, t.wait_delivered(msgid, ["bob"])["bob"])
    else:
        check(proc.returncode == 65, "hato exited %d, expected 65 (the server has no SMTPUTF8)"
              % proc.returncode)
        check("does not offer SMTPUTF8" in proc.err, "stderr does not name SMTPUTF8: %r" % proc.err)
        check(not mail, "hato sent MAIL for a message the server cannot take: %r" % mail)
        t.expect_not_delivered(msgid)


def dsn(t):
    """-N failure,delay -R hdrs -V ENVID: the DSN parameters (RFC 3461) go
    where DSN is offered (OpenSMTPD, Postfix) and are dropped where not
    (Exim as configured, Dovecot submission), as Postfix does; the message
    arrives either way."""
    msgid = t.message_id()
    msg = message(t, msgid, "dsn")
    envid = "hato-" + t.token.replace(".", "-")[-20:]
    proc = t.run_hato(config(t), ["-v", "-N", "failure,delay", "-R", "hdrs", "-V", envid,
                                  "-i", "-f", t.user, "bob@example.test"], msg)
    t.expect_sent(proc)
    interop.compare_messages(msg, t.wait_delivered(msgid, ["bob"])["bob"])
    offered = re.search(r"(?m)^hato: < 250[- ]DSN\b", proc.err) is not None
    mail = re.findall(r"(?m)^hato: > (MAIL FROM:<%s>.*)$" % re.escape(t.user), proc.err)
    rcpt = re.findall(r"(?m)^hato: > (RCPT TO:<bob@example\.test>.*)$", proc.err)
    check(mail and rcpt, "no MAIL or RCPT in the -v trace")
    expect_offered = t.peer in ("opensmtpd", "postfix")
    check(offered == expect_offered, "%s %s DSN" % (t.peer, "offers" if offered else "does not offer"))
    if offered:
        check("RET=HDRS" in mail[0] and ("ENVID=" + envid) in mail[0],
              "MAIL lacks RET=HDRS or ENVID: %s" % mail[0])
        check("NOTIFY=FAILURE,DELAY" in rcpt[0] and "ORCPT=rfc822;bob@example.test" in rcpt[0],
              "RCPT lacks NOTIFY or ORCPT: %s" % rcpt[0])
    else:
        check("RET=" not in mail[0] and "ENVID=" not in mail[0] and "NOTIFY=" not in rcpt[0],
              "DSN parameters went to a server without DSN: %s / %s" % (mail[0], rcpt[0]))


def extensions(t):
    msgid = t.message_id()
    msg = message(t, msgid, "extensions")
    proc = t.run_hato(config(t), ["-v", "-i", "-f", t.user, "bob@example.test"], msg)
    t.expect_sent(proc)
    interop.compare_messages(msg, t.wait_delivered(msgid, ["bob"])["bob"])
    trace = [l[len("hato: "):] for l in proc.err.splitlines() if l.startswith("hato: ")]
    # The capabilities of the last EHLO (after STARTTLS where there is one).
    caps, collecting = [], False
    for line in trace:
        if line.startswith("> EHLO"):
            caps, collecting = [], True
        elif collecting and re.match(r"< 250[- ]", line):
            caps.append(line[6:].split(" ")[0].upper())
            collecting = line[5] == "-"
    log("capabilities: %s" % " ".join(caps))
    sent = [l[2:] for l in trace if l.startswith("> ")]
    bdat = [c for c in sent if c.startswith("BDAT ")]
    data = [c for c in sent if c == "DATA"]
    if "CHUNKING" in caps:
        check(bdat and not data, "the server offers CHUNKING but hato sent %s" % (data or "no BDAT"))
    else:
        check(data and not bdat, "the server offers no CHUNKING but hato sent %s" % (bdat or "no DATA"))
    # Without PIPELINING every command waits for its reply: in the trace no
    # two client lines follow each other (the body lines aside).
    if "PIPELINING" not in caps:
        for a, b in zip(trace, trace[1:]):
            if a.startswith("> ") and b.startswith("> ") and not b.startswith("> ["):
                if a != "> .":
                    fail("without PIPELINING hato sent %r before the reply to %r" % (b, a))
    expect = {"exim": {"CHUNKING", "PIPELINING", "SMTPUTF8", "AUTH"},
              "dovecot": {"CHUNKING", "PIPELINING", "AUTH"},
              "postfix": {"CHUNKING", "PIPELINING", "SMTPUTF8", "AUTH"},
              "opensmtpd": set()}[t.peer]
    check(expect <= set(caps), "%s did not offer %s" % (t.peer, " ".join(expect - set(caps))))
    if t.peer == "opensmtpd":
        check(not {"CHUNKING", "PIPELINING", "SMTPUTF8"} & set(caps),
              "OpenSMTPD now offers %s: this case no longer tests the fallbacks" % caps)
    if t.peer == "exim":
        line = t.exim_received_line(msgid)
        check(re.search(r" K ", line), "Exim's log does not show CHUNKING (K): %s" % line)
        check(re.search(r" L[. ]", line), "Exim's log does not show PIPELINING (L): %s" % line)
        check(re.search(r" X=TLS1\.[23]:", line), "Exim's log shows no TLS session: %s" % line)


CASES = {
    "refused-recipient": refused_recipient,
    "partial": partial,
    "keep-alive": keep_alive,
    "keep-alive-refused": keep_alive_refused,
    "smtputf8": smtputf8,
    "dsn": dsn,
    "extensions": extensions,
}

if __name__ == "__main__":
    interop.main(lambda case, t: case(t), CASES)
