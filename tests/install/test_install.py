#!/usr/bin/env python3
"""Install test (suite 'install', issue 4 section 5).

Configures a fresh build of the source tree with everything on
(-Dsendmail_links=true -Dsystemd=true --prefix=/usr), builds it, runs
'meson install --destdir' into a temporary root and checks what landed
there: the binary, the library, header and .pc, the sendmail/mailq/
newaliases links, the man pages (rendered by groff without a warning),
the systemd units (accepted by systemd-analyze verify, or by a small
parser when it is missing), and that the installed hato runs from there
(under its own name and under each link's).

The test's own build directory is not used: its options are whatever the
developer chose.  PKG_CONFIG_PATH comes from the environment, and
--mbedtls repeats the outer build's choice, so the fresh build finds the
same mbedTLS; --static-program repeats -Dstatic_program, with which the
installed hato must load none of libhato, mbedTLS and libgsasl.  HATO_TEST_KEEP=1 keeps the temporary directory.
"""
import argparse
import configparser
import glob
import os
import shutil
import subprocess
import sys
import tempfile

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def ok(msg):
    print("ok: " + msg, flush=True)


def run(cmd, log, **kw):
    """Runs cmd with its output in log; True when it exits 0."""
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kw).returncode
    if rc != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        fail("%s exited %d; the end of %s:\n%s" % (" ".join(cmd), rc, log, tail))
    return rc == 0


def check_sync(src):
    r = subprocess.run([sys.executable, os.path.join(src, "docs", "config-to-man.py"), "--check"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("docs/hato.conf.5 is out of date: " + r.stderr.strip())
    else:
        ok("docs/hato.conf.5 matches docs/config.md")


def check_files(root):
    expect = {
        "binary": "usr/sbin/hato",
        "header": "usr/include/hato.h",
        "hato(8)": "usr/share/man/man8/hato.8",
        "hato.conf(5)": "usr/share/man/man5/hato.conf.5",
        "libhato(3)": "usr/share/man/man3/libhato.3",
        "docs": "usr/share/doc/hato/queue.md",
        "install guide": "usr/share/doc/hato/install.md",
    }
    for what, rel in expect.items():
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            fail("%s missing: /%s" % (what, rel))
        else:
            ok("%s: /%s" % (what, rel))
    if not os.access(os.path.join(root, "usr/sbin/hato"), os.X_OK):
        fail("/usr/sbin/hato is not executable")
    for what, pattern in [("library", "usr/lib/**/libhato.so.0"),
                          ("pkg-config file", "usr/lib/**/pkgconfig/hato.pc")]:
        found = glob.glob(os.path.join(root, pattern), recursive=True)
        if not found:
            fail("%s missing: no /%s" % (what, pattern))
        else:
            ok("%s: /%s" % (what, os.path.relpath(found[0], root)))


def check_links(root):
    hato = os.path.realpath(os.path.join(root, "usr/sbin/hato"))
    for rel in ["usr/sbin/sendmail", "usr/bin/mailq", "usr/bin/newaliases"]:
        link = os.path.join(root, rel)
        if not os.path.islink(link):
            fail("/%s is not a symbolic link" % rel)
            continue
        target = os.readlink(link)
        # an absolute target names the installed system, not the DESTDIR
        resolved = os.path.join(root, target.lstrip("/")) if os.path.isabs(target) \
            else os.path.join(os.path.dirname(link), target)
        if os.path.realpath(resolved) != hato:
            fail("/%s points to %s, not to /usr/sbin/hato" % (rel, target))
        else:
            ok("/%s -> %s" % (rel, target))


def check_man(root, tmp):
    for rel in ["usr/share/man/man8/hato.8", "usr/share/man/man5/hato.conf.5",
                "usr/share/man/man3/libhato.3"]:
        page = os.path.join(root, rel)
        if not os.path.isfile(page):
            continue
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page],
                           capture_output=True, text=True)
        if r.returncode != 0 or r.stderr:
            fail("groff -man -ww /%s: exit %d: %s" % (rel, r.returncode, r.stderr.strip()))
            continue
        env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="")
        r = subprocess.run(["man", "-l", page], capture_output=True, text=True, env=env)
        if r.returncode != 0 or "NAME" not in r.stdout or r.stderr:
            fail("man -l /%s: exit %d: %s" % (rel, r.returncode, r.stderr.strip()))
            continue
        ok("/%s renders without warnings (%d lines)" % (rel, r.stdout.count("\n")))


UNIT_SECTIONS = {
    ".service": {"Unit", "Service", "Install"},
    ".timer": {"Unit", "Timer", "Install"},
    ".socket": {"Unit", "Socket", "Install"},
}


def parse_unit(path):
    """A small systemd.syntax(7) check for machines without systemd-analyze:
    sections known for the unit type, Key=Value lines, and what each type
    needs to start.  Returns a list of problems."""
    problems = []
    suffix = os.path.splitext(path)[1]
    sections = {}
    current = None
    with open(path) as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            if not s.endswith("]"):
                problems.append("%d: bad section header" % n)
                continue
            current = s[1:-1]
            if current not in UNIT_SECTIONS.get(suffix, set()):
                problems.append("%d: section [%s] unknown for a %s unit" % (n, current, suffix))
            sections.setdefault(current, {})
        elif "=" not in s:
            problems.append("%d: not Key=Value: %s" % (n, s))
        elif current is None:
            problems.append("%d: assignment before any section" % n)
        else:
            key, value = s.split("=", 1)
            sections[current].setdefault(key.strip(), []).append(value.strip())
    if suffix == ".service":
        svc = sections.get("Service", {})
        for cmd in svc.get("ExecStart", []):
            if not cmd.lstrip("-@:+!").startswith("/"):
                problems.append("ExecStart is not an absolute path: " + cmd)
        if not svc.get("ExecStart"):
            problems.append("no ExecStart")
        for t in svc.get("Type", []):
            if t not in {"simple", "exec", "forking", "oneshot", "dbus", "notify", "idle"}:
                problems.append("unknown Type=" + t)
    elif suffix == ".timer":
        timer = sections.get("Timer", {})
        if not any(k.startswith("On") for k in timer):
            problems.append("no On...= trigger in [Timer]")
    elif suffix == ".socket":
        if not any(k.startswith("Listen") for k in sections.get("Socket", {})):
            problems.append("no Listen...= in [Socket]")
    return problems


def check_units(root, tmp):
    names = ["hato-flush.service", "hato-flush.timer",
             "hato-submission.socket", "hato-submission@.service"]
    dirs = {os.path.dirname(p) for p in
            glob.glob(os.path.join(root, "**", "hato-flush.timer"), recursive=True)}
    if len(dirs) != 1:
        fail("hato-flush.timer installed %d times, expected once" % len(dirs))
        return
    unitdir = dirs.pop()
    ok("units in /" + os.path.relpath(unitdir, root))
    for name in names:
        if not os.path.isfile(os.path.join(unitdir, name)):
            fail("unit missing: " + name)
    service = os.path.join(unitdir, "hato-flush.service")
    if os.path.isfile(service):
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.optionxform = str
        cp.read(service)
        if cp.get("Service", "Type", fallback="") != "oneshot":
            fail("hato-flush.service: Type is not oneshot")
        if not cp.get("Service", "ExecStart", fallback="").startswith("/usr/sbin/hato -q"):
            fail("hato-flush.service: ExecStart is not /usr/sbin/hato -q...: "
                 + cp.get("Service", "ExecStart", fallback=""))
    timer = os.path.join(unitdir, "hato-flush.timer")
    if os.path.isfile(timer):
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.optionxform = str
        cp.read(timer)
        want = {"OnBootSec": "2min", "OnUnitActiveSec": "5min", "Persistent": "true"}
        for k, v in want.items():
            if cp.get("Timer", k, fallback=None) != v:
                fail("hato-flush.timer: %s is not %s" % (k, v))
    present = [n for n in names if os.path.isfile(os.path.join(unitdir, n))]

    analyze = shutil.which("systemd-analyze")
    if analyze:
        # Verify copies whose commands point into the DESTDIR (verify checks
        # that they exist); Documentation=man: is checked against the man
        # pages just installed.
        vdir = os.path.join(tmp, "verify")
        os.makedirs(vdir, exist_ok=True)
        for n in present:
            with open(os.path.join(unitdir, n)) as f:
                text = f.read()
            text = text.replace("/usr/sbin/hato", os.path.join(root, "usr/sbin/hato"))
            with open(os.path.join(vdir, n), "w") as f:
                f.write(text)
        env = dict(os.environ, MANPATH=os.path.join(root, "usr/share/man"))
        # a template is verified through an instance of it
        args = [os.path.join(vdir, n) for n in present if not n.endswith("@.service")]
        r = subprocess.run([analyze, "verify"] + args, capture_output=True, text=True,
                           env=env, cwd=vdir)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or out:
            fail("systemd-analyze verify: exit %d:\n%s" % (r.returncode, out))
        else:
            ok("systemd-analyze verify accepts " + ", ".join(present))
    else:
        for n in present:
            problems = parse_unit(os.path.join(unitdir, n))
            if problems:
                fail("%s: %s" % (n, "; ".join(problems)))
        ok("unit syntax checked without systemd-analyze: " + ", ".join(present))


def check_runs(root, tmp, build, static_program):
    libs = glob.glob(os.path.join(root, "usr/lib/**/libhato.so.0"), recursive=True)
    if not libs:
        return
    libpath = [os.path.dirname(libs[0])]
    # mbedTLS 3.6 may live in a private prefix; the installed binary has no
    # rpath to it (meson drops build rpaths on install).
    r = subprocess.run(["pkg-config", "--variable=libdir", "mbedtls"],
                       capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.strip():
        libpath.append(r.stdout.strip())
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libpath))

    hato = os.path.join(root, "usr/sbin/hato")
    r = subprocess.run(["ldd", hato], capture_output=True, text=True, env=env)
    if static_program:
        shared = [l.strip() for l in r.stdout.split("\n")
                  if any(n in l for n in ("libhato.so", "libmbed", "libgsasl"))]
        if r.returncode != 0 or shared:
            fail("installed hato, built with -Dstatic_program=true, loads %s"
                 % (shared or r.stdout + r.stderr))
        else:
            ok("installed hato has libhato, mbedTLS and libgsasl linked in")
    else:
        line = [l for l in r.stdout.split("\n") if "libhato.so" in l]
        if not line or os.path.realpath(root) not in line[0] and root not in line[0]:
            fail("installed hato does not load the installed libhato: %s" % (line or r.stdout))
        else:
            ok("installed hato loads " + line[0].strip())

    spool = os.path.join(tmp, "spool")
    aliases = os.path.join(tmp, "aliases")
    conf = os.path.join(tmp, "hato.conf")
    with open(aliases, "w") as f:
        f.write("root: admin@example.org\npostmaster: root\n")
    with open(conf, "w") as f:
        f.write("relayhost = [127.0.0.1]:1\nmyhostname = host.example\n"
                "alias_maps = %s\nqueue_directory = %s\ndata_directory = %s\n"
                % (aliases, spool, os.path.join(tmp, "state")))
    os.chmod(conf, 0o600)

    def call(argv0, args, want, what):
        path = os.path.join(root, argv0)
        if os.path.islink(path) and os.path.isabs(os.readlink(path)):
            # an absolute link names the installed system, not the DESTDIR
            path = os.path.join(root, os.readlink(path).lstrip("/"))
        try:
            # argv[0] is the link's name: hato chooses its mode by it
            r = subprocess.run([os.path.basename(argv0)] + args, executable=path,
                               capture_output=True, text=True, env=env,
                               stdin=subprocess.DEVNULL, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            fail("%s (/%s): %s" % (what, argv0, e))
            return
        if r.returncode != 0 or want not in r.stdout:
            fail("%s (/%s %s): exit %d, stdout %r, stderr %r"
                 % (what, argv0, " ".join(args), r.returncode, r.stdout, r.stderr))
        else:
            ok("%s: /%s %s" % (what, argv0, " ".join(args)))

    call("usr/sbin/hato", ["-C", conf, "-bv", "postmaster"], "to=<admin@example.org>",
         "installed hato expands aliases")
    call("usr/sbin/sendmail", ["-C", conf, "-bv", "root"], "to=<admin@example.org>",
         "sendmail link runs hato")
    call("usr/bin/mailq", ["-C", conf], "Mail queue is empty", "mailq link lists the queue")
    call("usr/bin/newaliases", ["-oA" + aliases, "-C", conf], "2 aliases",
         "newaliases link checks the aliases")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbedtls", default="auto")
    ap.add_argument("--static-program", default="false", choices=["true", "false"])
    opts = ap.parse_args()
    src = os.environ.get("HATO_SOURCE_ROOT")
    if not src:
        sys.exit("HATO_SOURCE_ROOT is not set (run through meson test)")

    check_sync(src)

    tmp = tempfile.mkdtemp(prefix="hato-install.")
    build = os.path.join(tmp, "build")
    root = os.path.join(tmp, "root")
    print("working in " + tmp, flush=True)
    try:
        setup = ["meson", "setup", build, src, "--prefix=/usr",
                 "-Dsendmail_links=true", "-Dsystemd=true", "-Dmbedtls=" + opts.mbedtls,
                 "-Dstatic_program=" + opts.static_program]
        if run(setup, os.path.join(tmp, "setup.log")) \
                and run(["meson", "compile", "-C", build], os.path.join(tmp, "compile.log")) \
                and run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", root],
                        os.path.join(tmp, "install.log")):
            check_files(root)
            check_links(root)
            check_man(root, tmp)
            check_units(root, tmp)
            check_runs(root, tmp, build, opts.static_program == "true")
    finally:
        if failures or os.environ.get("HATO_TEST_KEEP"):
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all install checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
