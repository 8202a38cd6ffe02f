#!/usr/bin/python3
"""Fail if a test password or token shows up in any test's output.

    check_secrets.py --build DIR [--secrets FILE] [--testlog-only]
                     [--require PATH]...

Scans, under the build directory DIR:
  test-output/**            what each test run of hato printed and logged:
                            stdout, stderr (-v traces included), maillog
                            files and the scripted scenarios' reports
                            (tests/scripted/run_scenario.py and
                            tests/interop/interop.py put them there)
  meson-logs/testlog*       meson's record of every test's output
for every secret in tests/secrets/secrets.txt (and the interop passwords in
$HATO_TEST_SERVERS when set) in these forms: the raw text; base64 of it at
any byte offset (so AUTH PLAIN, LOGIN, OAUTHBEARER and XOAUTH2 responses are
all caught, whatever surrounds the secret); and hex, contiguous or as a
multi-line hex dump (mbedTLS's debug output at smtp_tls_loglevel 4).

Prints every hit as FILE:LINE: which secret (never the secret itself) and in
what form; exits 1 on any hit, 2 when there is nothing to scan.

Under meson (suite 'secrets', last by priority, alone) meson's own testlog
is still being written, so tests/run.sh runs this again with --testlog-only
once meson test has finished.
"""

import argparse
import base64
import binascii
import os
import re
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Secret:
    def __init__(self, kind, user, value, origin):
        self.kind, self.user, self.value, self.origin = kind, user, value, origin

    def label(self):
        return "the %s of %s (%s)" % (self.kind, self.user, self.origin)


def load_secrets(path):
    secrets = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) != 3 or parts[0] not in ("password", "token"):
                raise SystemExit("%s:%d: expected 'password|token USER SECRET'" % (path, n))
            secrets.append(Secret(parts[0], parts[1], parts[2],
                                  "%s:%d" % (os.path.basename(path), n)))
    return secrets


def servers_env_secrets(path):
    """HATO_TEST_USER/PASSWORD pairs from the interop servers' env file."""
    values = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, rest = line.strip().partition("=")
                if sep and re.fullmatch(r"HATO_TEST_[A-Z0-9_]+", key):
                    words = shlex.split(rest)
                    values[key] = words[0] if words else ""
    except (OSError, ValueError):
        return []
    out = []
    for suffix in ("", "2"):
        pw = values.get("HATO_TEST_PASSWORD" + suffix)
        if pw:
            out.append(Secret("password", values.get("HATO_TEST_USER" + suffix, "?"), pw,
                              os.path.basename(path)))
    return out


def base64_cores(raw):
    """Substrings that any base64 text holding `raw` must contain: one per
    alignment of the secret in the encoded bytes."""
    cores = []
    for k in range(3):
        total = k + len(raw)
        enc = base64.b64encode(b"\0" * k + raw)
        core = enc[4 if k else 0:(total // 3) * 4]
        if len(core) >= 8:
            cores.append(core)
    return cores


def forms(secret):
    """[(form name, bytes)] to look for."""
    raw = secret.value.encode("utf-8")
    user = secret.user.encode("utf-8")
    out = [("in clear", raw),
           ("as the AUTH PLAIN response", base64.b64encode(b"\0" + user + b"\0" + raw)),
           ("as the AUTH LOGIN password", base64.b64encode(raw))]
    out += [("in base64", c) for c in base64_cores(raw)]
    out += [("in hex", raw.hex().encode()), ("in hex", raw.hex().upper().encode())]
    return out


HEX_RUN = re.compile(rb"(?<![0-9A-Za-z])((?:[0-9A-Fa-f]{2}[ :]){3,}[0-9A-Fa-f]{2})(?![0-9A-Za-z])")
HEX_WORD = re.compile(rb"[0-9A-Fa-f]{16,}")


def hexdump_blobs(data):
    """Bytes recovered from hex dumps: runs of "xx xx xx" on consecutive
    lines are joined (a dump cuts a secret across its lines), and long
    contiguous hex words are decoded.  Yields (first line number, bytes)."""
    blob, start = bytearray(), 0
    for n, line in enumerate(data.split(b"\n"), 1):
        runs = HEX_RUN.findall(line)
        if runs:
            if not blob:
                start = n
            run = max(runs, key=len)
            blob += bytes.fromhex(run.replace(b":", b" ").decode())
        elif blob:
            yield start, bytes(blob)
            blob = bytearray()
        for word in HEX_WORD.findall(line):
            if len(word) % 2 == 0:
                try:
                    yield n, binascii.unhexlify(word)
                except binascii.Error:
                    pass
    if blob:
        yield start, bytes(blob)


def scan(data, table):
    """[(line, label, form)] of every secret form found in `data`."""
    hits = []
    for secret, fs in table:
        for name, form in fs:
            at = data.find(form)
            if at >= 0:
                hits.append((data.count(b"\n", 0, at) + 1, secret.label(), name))
    for line, blob in hexdump_blobs(data):
        for secret, fs in table:
            for name, form in fs:
                if name.startswith("in hex"):
                    continue
                if form in blob:
                    hits.append((line, secret.label(), "%s, inside a hex dump" % name))
    return hits


def self_check(table):
    """The detector must find what it is meant to find before it is trusted."""
    secret, _ = table[0]
    raw = secret.value.encode()
    samples = {
        "raw": b"x " + raw + b" y",
        "PLAIN": b"> AUTH PLAIN " + base64.b64encode(b"\0u\0" + raw),
        "OAUTHBEARER": base64.b64encode(b"n,a=u,\x01host=h\x01port=587\x01auth=Bearer " + raw
                                        + b"\x01\x01"),
        "hexdump": b"".join(b"ssl_msg.c:42: |4| %04x:  %s  ................\n"
                            % (i, b" ".join(b"%02x" % c for c in chunk))
                            for i, chunk in ((i, (b"AUTH PLAIN " + raw)[i:i + 16])
                                             for i in range(0, len(raw) + 11, 16))),
    }
    for name, sample in samples.items():
        if not scan(sample, table[:1]):
            raise SystemExit("check_secrets.py: self-check failed: a %s sample was not "
                             "detected" % name)
    if scan(b"hato: AUTH PLAIN [redacted]\n0000:  41 55 54 48\n", table):
        raise SystemExit("check_secrets.py: self-check failed: a clean sample was flagged")


def files_to_scan(build, testlog_only):
    out = []
    logs = os.path.join(build, "meson-logs")
    if os.path.isdir(logs):
        # Inside a meson run testlog.txt and .json hold this run so far, but
        # the JUnit file is written only at the end: it is still the last
        # run's, so it waits for the --testlog-only pass.
        out += [os.path.join(logs, f) for f in sorted(os.listdir(logs))
                if f.startswith("testlog") and (testlog_only or "junit" not in f)]
    if not testlog_only:
        root = os.path.join(build, "test-output")
        for d, _, names in sorted(os.walk(root)):
            out += [os.path.join(d, n) for n in sorted(names)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="the meson build directory")
    ap.add_argument("--secrets", default=os.path.join(HERE, "secrets.txt"))
    ap.add_argument("--testlog-only", action="store_true",
                    help="scan only meson-logs/testlog* (after meson test has finished)")
    ap.add_argument("--require", action="append", default=[],
                    help="a path under test-output/ that must exist (a run that must "
                         "have been captured)")
    args = ap.parse_args()

    secrets = load_secrets(args.secrets)
    if os.environ.get("HATO_TEST_SERVERS"):
        secrets += servers_env_secrets(os.environ["HATO_TEST_SERVERS"])
    seen, unique = set(), []
    for s in secrets:
        if s.value not in seen:
            seen.add(s.value)
            unique.append(s)
    table = [(s, forms(s)) for s in unique]
    self_check(table)

    missing = [r for r in args.require
               if not os.path.exists(os.path.join(args.build, "test-output", r))]
    if missing and not args.testlog_only:
        print("check_secrets: no captured output at %s under %s/test-output: run the "
              "scripted (and interop) suites first; they copy each run's output there"
              % (", ".join(missing), args.build))
        return 2
    paths = files_to_scan(args.build, args.testlog_only)
    if not paths:
        print("check_secrets: nothing to scan under %s" % args.build)
        return 2

    total, per_dir = 0, {}
    hits = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            print("check_secrets: cannot read %s: %s" % (path, e))
            hits.append((path, 0, "?", "unreadable"))
            continue
        total += 1
        rel = os.path.relpath(path, args.build)
        key = "/".join(rel.split(os.sep)[:2])
        per_dir[key] = per_dir.get(key, 0) + 1
        for line, label, form in scan(data, table):
            hits.append((path, line, label, form))

    print("check_secrets: %d secrets (%d forms each at most), %d files scanned:"
          % (len(table), max(len(f) for _, f in table), total))
    for key in sorted(per_dir):
        print("  %-40s %d files" % (key, per_dir[key]))
    if hits:
        print("FAIL: %d secret(s) found in test output:" % len(hits))
        for path, line, label, form in hits:
            print("  %s:%d: %s, %s" % (path, line, label, form))
        return 1
    print("PASS: no password or token in any scanned file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
