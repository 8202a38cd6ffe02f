#!/usr/bin/python3
"""Self-test of the scripted server, driven by Python's smtplib and raw
sockets: proves the server (recording, STARTTLS, implicit TLS, chunked
replies, deviation detection) works independently of hato."""

import base64
import json
import os
import re
import smtplib
import socket
import ssl
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, HERE)

import run_scenario  # noqa: E402
import scenarios  # noqa: E402
import smtpscript  # noqa: E402
from smtpscript import (Server, auth, auth_oauth, dot_stuff, expect, expect_data,  # noqa: E402
                        expect_eof, flood, inject, oauth_response, quit_and_close, send,
                        send_raw, stall, starttls)

CA = None
TMP = tempfile.TemporaryDirectory(prefix="hato-selftest-")


def ca():
    global CA
    if CA is None:
        CA = run_scenario.ca_dir(os.path.join(TMP.name, "ca"))
    return CA


def ehlo(*caps):
    return scenarios.ehlo_reply(*caps)


def transaction(rcpt="r@example.test"):
    return [expect(r"MAIL FROM:<s@example\.test>.*"), send("250 ok"),
            expect(r"RCPT TO:<%s>" % re.escape(rcpt)), send("250 ok"),
            expect("DATA"), send("354 go"), expect_data(), send("250 queued")] \
        + quit_and_close()


def raw_client(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=5)
    return s


def recv_until(s, marker):
    data = b""
    while marker not in data:
        d = s.recv(4096)
        if not d:
            break
        data += d
    return data


class ServerTest(unittest.TestCase):

    def test_plain_auth_and_body_recording(self):
        srv = Server([send("220 hi"), expect(r"EHLO \S+"), ehlo("AUTH PLAIN", "8BITMIME"),
                      auth("u", "p@ss")] + transaction()).start()
        body = "Subject: t\r\n\r\n.leading dot\r\nline\r\n"
        with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="c.example.test") as c:
            c.login("u", "p@ss")
            c.sendmail("s@example.test", ["r@example.test"], body)
        res = srv.finish()
        self.assertTrue(res.ok, res.format())
        self.assertEqual(res.messages, [b"Subject: t\r\n\r\n..leading dot\r\nline\r\n.\r\n"])
        self.assertEqual(res.auth, [("", "u", "p@ss")])
        self.assertEqual(res.commands()[0].upper(), "EHLO C.EXAMPLE.TEST")
        self.assertIn(b"QUIT\r\n", res.client_bytes())

    def test_wrong_password_is_a_deviation(self):
        srv = Server([send("220 hi"), expect(r"EHLO \S+"), ehlo("AUTH PLAIN"),
                      auth("u", "right")]).start()
        with smtplib.SMTP("127.0.0.1", srv.port) as c:
            with self.assertRaises(smtplib.SMTPException):
                c.login("u", "wrong")
        res = srv.finish()
        self.assertFalse(res.ok)
        self.assertIn("wrong password", res.failures[0])

    def test_starttls_with_verification(self):
        srv = Server([send("220 hi"), expect(r"EHLO \S+"), ehlo("STARTTLS"),
                      expect("STARTTLS"), send("220 go"), starttls(),
                      expect(r"EHLO \S+"), ehlo("AUTH PLAIN")] + transaction(),
                     certs=ca()).start()
        ctx = ssl.create_default_context(cafile=os.path.join(ca(), "ca.crt"))
        with smtplib.SMTP("127.0.0.1", srv.port) as c:
            c.starttls(context=ctx)
            c.sendmail("s@example.test", ["r@example.test"], "Subject: x\r\n\r\nx\r\n")
        res = srv.finish()
        self.assertTrue(res.ok, res.format())
        self.assertIsNotNone(res.tls_version)
        self.assertEqual([l.tls for l in res.lines][:3], [False, False, True])
        self.assertTrue(all(r[2] for r in res.reads[2:]))

    def test_starttls_must_fail_with_other_ca(self):
        srv = Server([send("220 hi"), expect(r"EHLO \S+"), ehlo("STARTTLS"),
                      expect("STARTTLS"), send("220 go"), starttls(must_fail=True),
                      expect_eof()], certs=ca()).start()
        ctx = ssl.create_default_context(cafile=os.path.join(ca(), "other-ca.crt"))
        with smtplib.SMTP("127.0.0.1", srv.port) as c:
            with self.assertRaises(ssl.SSLError):
                c.starttls(context=ctx)
            c.sock.close()
        res = srv.finish()
        self.assertTrue(res.ok, res.format())

    def test_implicit_tls(self):
        srv = Server([send("220 hi"), expect(r"EHLO \S+"), ehlo("8BITMIME")] + transaction(),
                     certs=ca(), implicit_tls=True).start()
        ctx = ssl.create_default_context(cafile=os.path.join(ca(), "ca.crt"))
        with smtplib.SMTP_SSL("127.0.0.1", srv.port, context=ctx) as c:
            c.sendmail("s@example.test", ["r@example.test"], "x\r\n")
        res = srv.finish()
        self.assertTrue(res.ok, res.format())
        self.assertEqual(res.messages, [b"x\r\n.\r\n"])

    def test_chunked_multiline_reply(self):
        reply = b"250-one\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
        srv = Server([send_raw(b"220 chunked\r\n", chunked=1), expect(r"EHLO \S+"),
                      send_raw(reply, chunked=1)] + quit_and_close()).start()
        with smtplib.SMTP("127.0.0.1", srv.port) as c:
            code, _ = c.ehlo()
            self.assertEqual(code, 250)
            self.assertTrue(c.has_extn("size") and c.has_extn("8bitmime"))
        res = srv.finish()
        self.assertTrue(res.ok, res.format())

    def test_chunks_and_bare_lf(self):
        srv = Server([send("220 hi"), expect("A"), expect("B"), expect("C")]).start()
        s = raw_client(srv.port)
        recv_until(s, b"\r\n")
        s.sendall(b"A\r\nB\r\n")
        time.sleep(0.1)
        s.sendall(b"C\n")
        time.sleep(0.1)
        s.close()
        res = srv.finish()
        self.assertFalse(res.ok)
        self.assertEqual([(l.text, l.chunk) for l in res.lines], [("A", 0), ("B", 0)])
        self.assertIn("bare LF", res.failures[0])

    def test_deviation_gets_421(self):
        srv = Server([send("220 hi"), expect(r"EHLO \S+")]).start()
        s = raw_client(srv.port)
        recv_until(s, b"\r\n")
        s.sendall(b"HELO x\r\n")
        reply = recv_until(s, b"\r\n")
        s.close()
        res = srv.finish()
        self.assertTrue(reply.startswith(b"421 "), reply)
        self.assertIn("expected /EHLO", res.failures[0])

    def test_inject_in_one_write_and_eof_check(self):
        srv = Server([send("220 hi"), expect("STARTTLS"),
                      inject(b"220 ready\r\n250 injected\r\n"), expect_eof()]).start()
        s = raw_client(srv.port)
        recv_until(s, b"\r\n")
        s.sendall(b"STARTTLS\r\n")
        got = recv_until(s, b"injected\r\n")
        s.sendall(b"\x16\x03\x01")  # what a client that ignored the injection sends
        time.sleep(0.1)
        s.close()
        res = srv.finish()
        self.assertEqual(got, b"220 ready\r\n250 injected\r\n")
        self.assertFalse(res.ok)
        self.assertIn("should have hung up", res.failures[0])

    def test_stall_until_client_gives_up(self):
        srv = Server([send("220 hi"), expect(r"EHLO \S+"), stall(limit=5)]).start()
        s = raw_client(srv.port)
        recv_until(s, b"\r\n")
        s.sendall(b"EHLO x\r\n")
        time.sleep(0.3)
        s.close()
        res = srv.finish()
        self.assertTrue(res.ok, res.format())

    def test_stall_limit(self):
        srv = Server([send("220 hi"), stall(limit=0.3)]).start()
        s = raw_client(srv.port)
        res = srv.finish()
        s.close()
        self.assertFalse(res.ok)
        self.assertIn("still connected", res.failures[0])

    def test_flood_stops_when_client_leaves(self):
        srv = Server([send("220 hi"), flood(b"250-", 64 * 1024 * 1024),
                      expect_eof(allow_quit=True)]).start()
        s = raw_client(srv.port)
        recv_until(s, b"250-xxxx")
        s.close()
        res = srv.finish()
        self.assertTrue(res.ok, res.format())

    def test_never_connected(self):
        res = Server([send("220 hi")]).start().finish()
        self.assertFalse(res.ok)
        self.assertIn("never connected", res.failures[0])

    def test_ipv6(self):
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        srv = Server([send("220 hi")] + quit_and_close(), host="::1").start()
        with smtplib.SMTP("::1", srv.port):
            pass
        self.assertTrue(srv.finish().ok)


    def oauth_exchange(self, mech, error=None, initial=True, end=None):
        """Drive auth_oauth over a raw socket; returns (result, final reply)."""
        srv = Server([send("220 hi"), auth_oauth(mech, "u", "tok-123", error=error)]).start()
        s = raw_client(srv.port)
        recv_until(s, b"\r\n")
        ir = base64.b64encode(oauth_response(mech, "u", "tok-123", "127.0.0.1", srv.port))
        if initial:
            s.sendall(b"AUTH " + mech.encode() + b" " + ir + b"\r\n")
        else:
            s.sendall(b"AUTH " + mech.encode() + b"\r\n")
            self.assertEqual(recv_until(s, b"\r\n"), b"334 \r\n")
            s.sendall(ir + b"\r\n")
        reply = recv_until(s, b"\r\n")
        if error is not None:
            self.assertTrue(reply.startswith(b"334 "), reply)
            self.assertEqual(json.loads(base64.b64decode(reply[4:].strip())), error)
            s.sendall(end + b"\r\n")
            reply = recv_until(s, b"\r\n")
        s.close()
        return srv.finish(), reply

    def test_oauthbearer_initial_response(self):
        res, reply = self.oauth_exchange("OAUTHBEARER")
        self.assertTrue(res.ok, res.format())
        self.assertTrue(reply.startswith(b"235 "), reply)

    def test_xoauth2_after_empty_challenge(self):
        res, reply = self.oauth_exchange("XOAUTH2", initial=False)
        self.assertTrue(res.ok, res.format())
        self.assertTrue(reply.startswith(b"235 "), reply)

    def test_oauth_error_challenge(self):
        err = {"status": "invalid_token"}
        res, reply = self.oauth_exchange("OAUTHBEARER", error=err, end=b"AQ==")
        self.assertTrue(res.ok, res.format())
        self.assertTrue(reply.startswith(b"535 "), reply)
        res, reply = self.oauth_exchange("XOAUTH2", error=err, end=b"")
        self.assertTrue(res.ok, res.format())
        res, reply = self.oauth_exchange("OAUTHBEARER", error=err, end=b"")
        self.assertFalse(res.ok)
        self.assertIn("expected 'AQ=='", res.failures[0])

    def test_oauth_exact_response(self):
        self.assertEqual(oauth_response("OAUTHBEARER", "u", "T", "127.0.0.1", 25),
                         b"n,a=u,\x01host=127.0.0.1\x01port=25\x01auth=Bearer T\x01\x01")
        self.assertEqual(oauth_response("XOAUTH2", "u", "T", "127.0.0.1", 25),
                         b"user=u\x01auth=Bearer T\x01\x01")

    def test_transcript_hides_auth_data(self):
        smtpscript.register_secret("selftest-secret-pw")
        texts = []
        for mech in ("PLAIN", "LOGIN"):
            srv = Server([send("220 hi"), expect(r"EHLO \S+"), ehlo("AUTH PLAIN LOGIN"),
                          auth("u", "selftest-secret-pw", mechanisms=(mech,)),
                          expect(r"MAIL FROM:<>")]).start()
            with smtplib.SMTP("127.0.0.1", srv.port) as c:
                c.user, c.password = "u", "selftest-secret-pw"
                c.ehlo()
                c.auth(mech, getattr(c, "auth_" + mech.lower()), initial_response_ok=True)
                c.putcmd("MAIL", "FROM:<selftest-secret-pw@example.test>")
                c.getreply()
            res = srv.finish()
            self.assertFalse(res.ok)  # the MAIL line deviates, and is reported
            texts.append(res.format() + "\n".join(res.failures))
        text = "\n".join(texts)
        self.assertNotIn("selftest-secret-pw", text)
        for core in smtpscript.base64_cores("selftest-secret-pw"):
            self.assertNotIn(core, text)
        self.assertIn("AUTH PLAIN <initial response", text)
        self.assertIn("<SASL response", text)
        self.assertIn("[secret]@example.test", text)

    def test_tls10_only_server(self):
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)

        def tls10(ctx):
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
        srv = Server([send("220 hi"), expect(r"EHLO \S+"), ehlo("STARTTLS"),
                      expect("STARTTLS"), send("220 go"), starttls()]
                     + quit_and_close(), certs=ca(), tls_tweak=tls10).start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(ca(), "ca.crt"))
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        with smtplib.SMTP("127.0.0.1", srv.port) as c:
            c.starttls(context=ctx)
        res = srv.finish()
        self.assertTrue(res.ok, res.format())
        self.assertEqual(res.tls_version, "TLSv1")


class HelperTest(unittest.TestCase):

    def test_base64_cores(self):
        secret = b"a secret of some length"
        for pre in (b"", b"x", b"xy", b"\0user\0"):
            for post in (b"", b"z", b"\x01\x01"):
                enc = base64.b64encode(pre + secret + post).decode()
                self.assertTrue(any(c in enc for c in smtpscript.base64_cores(secret)),
                                (pre, post))

    def test_secrets_list_holds_the_scenarios_secrets(self):
        with open(os.path.join(HERE, "..", "secrets", "secrets.txt"), encoding="utf-8") as f:
            listed = [l.rstrip("\n").split(None, 2)[2] for l in f
                      if l.strip() and not l.startswith("#")]
        for s in (scenarios.PASSWORD, scenarios.TOKEN):
            self.assertIn(s, listed, "tests/secrets/secrets.txt lacks a scenario secret")

    def test_extra_certificates(self):
        d = run_scenario.extra_certs(ca())
        for f in ("expired.crt", "wrongname.crt", "selfsigned.crt", "selfsigned.key",
                  "tofu2.crt", "tofu2.key"):
            self.assertTrue(os.path.exists(os.path.join(d, f)), f)
        self.assertNotEqual(run_scenario.spki_der(d + "/selfsigned.crt"),
                            run_scenario.spki_der(d + "/tofu2.crt"))
        pin = run_scenario.colon_hex(run_scenario.cert_der(d + "/selfsigned.crt"))
        self.assertRegex(pin, r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")

    def test_dot_stuff(self):
        self.assertEqual(dot_stuff(b"a\n.b\n.\nc"), b"a\r\n..b\r\n..\r\nc\r\n.\r\n")
        self.assertEqual(dot_stuff(b"a\r\n.\r\nc\n", ignore_dots=False), b"a\r\n.\r\n")
        self.assertEqual(dot_stuff(b""), b".\r\n")

    def test_meson_lists_every_scenario(self):
        with open(os.path.join(HERE, "meson.build")) as f:
            listed = re.findall(r"'([a-z0-9-]+)'", f.read().split("scripted_scenarios")[1]
                                .split("]")[0])
        self.assertEqual(sorted(listed), sorted(scenarios.SCENARIOS))


if __name__ == "__main__":
    unittest.main(verbosity=2)
