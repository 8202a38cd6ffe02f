#!/usr/bin/python3
"""The privilege model (issue 4 section 3, docs/security.md) in its real
shape: hato setgid to a group that owns the spool, used by an ordinary
user.

Runs as root.  It re-executes itself in a private mount namespace where
/etc is a copy (so the test group, /etc/hato.conf -- the configuration a
setgid hato trusts -- and the loader's cache exist only there; the host is
not changed), then as root:

  - copies the built hato into a bin/ of its own, chgrp to the test group
    (hatotest, created in the copy), chmod 2755; libhato.so.0 goes into a
    directory named in the copied ld.so.cache (a setgid program ignores
    $ORIGIN and LD_LIBRARY_PATH), unless the program was linked with
    -Dstatic_program=true;
  - writes /etc/hato.conf for the test Postfix (STARTTLS, SASL with a
    password map 0600 root, queue_directory in the test directory,
    hato_user_queue_limit = 3) and a maillog root:hatotest 0660;

and checks, running as nobody:nogroup without supplementary groups
(setpriv):

  1. root's first run creates the spool root:hatotest: dir 0750, tmp/ and
     queue/ 3770, failed/ 0700;
  2. a submission is accepted (exit 0, nothing on stderr) and only queued:
     the file is owned by nobody, group hatotest, mode 0640;
  3. nobody cannot open the queue file, list queue/, or open the password
     map;
  4. hato -C /etc/shadow (and -C the password map) fails with a
     permission error and prints nothing of the file; -C with a readable
     file naming the system spool gives up the group: nothing is queued;
  5. mailq as nobody lists nobody's messages and not root's;
  6. the fourth message is refused with hato_user_queue_limit named, exit
     75, and a "refused" line in the maillog;
  7. hato -q as nobody is refused (exit 77);
  8. root's hato -q delivers nobody's three messages (and root's own) to
     alice's Maildir through the real Postfix; the queue is then empty.

Needs HATO_TEST_SERVERS (tests/servers/start.sh) and HATO_BIN.
"""
import glob
import os
import grp
import pwd
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import interop  # noqa: E402
from interop import check, fail, log  # noqa: E402

GROUP = "hatotest"
EX_OK, EX_NOPERM, EX_TEMPFAIL = 0, 77, 75


def in_namespace():
    """Re-run this script in a private mount namespace (once)."""
    if os.environ.get("HATO_PRIVILEGE_NS") == "1":
        return
    if os.geteuid() != 0:
        print("FAIL: setgid: the privilege tests run as root (they create a group, a setgid "
              "binary and run hato as nobody)", file=sys.stderr)
        sys.exit(1)
    env = dict(os.environ, HATO_PRIVILEGE_NS="1")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                        sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env=env)
    sys.exit(r.returncode)


def run(cmd, data=b"", user=None, timeout=120):
    """cmd as root, or as nobody:nogroup with no supplementary groups."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent"}
    # The sanitizer build's settings go along; LeakSanitizer cannot inspect
    # a set-group-ID process (it is not dumpable), so it is off for those.
    for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if key in os.environ:
            env[key] = os.environ[key]
    if user == "nobody":
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + cmd
        if "ASAN_OPTIONS" in env:
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
    log("+ %s" % " ".join(cmd))
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    log("exit %d" % p.returncode)
    if p.out:
        log("--- stdout:\n%s---" % p.out)
    if p.err:
        log("--- stderr:\n%s---" % p.err)
    return p


def message(t, mid, subject):
    return ("From: Nobody <nobody@example.test>\nTo: alice@example.test\nDate: %s\n"
            "Message-ID: %s\nSubject: %s\n\nsubmitted by an ordinary user\n"
            % (interop.rfc2822_date(), mid, subject)).encode()


def setup(t):
    """The copied /etc, the group, the setgid binary, config and maillog."""
    os.chmod(t.tmp, 0o755)  # nobody must reach bin/hato
    etc = os.path.join(t.tmp, "etc")
    subprocess.run(["cp", "-a", "/etc", etc], check=True)
    subprocess.run(["mount", "--bind", etc, "/etc"], check=True)
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
    gid = grp.getgrnam(GROUP).gr_gid
    log("group %s is gid %d (in this namespace's /etc only)" % (GROUP, gid))

    # The library where a setgid program's loader looks: the cache.
    lib = os.path.join(t.tmp, "lib")
    os.makedirs(lib)
    ldd = subprocess.run(["ldd", t.hato], stdout=subprocess.PIPE, check=True).stdout.decode()
    for line in ldd.splitlines():
        if "libhato.so" in line and "=>" in line:
            path = line.split("=>")[1].split()[0]
            shutil.copy(os.path.realpath(path), os.path.join(lib, os.path.basename(path)))
    if not os.listdir(lib):
        # -Dstatic_program=true: libhato, mbedTLS and libgsasl linked in.
        shared = [l for l in ldd.splitlines() if "libmbed" in l or "libgsasl" in l]
        check(not shared, "ldd %s names no libhato.so but loads:\n%s" % (t.hato, ldd))
    os.chmod(lib, 0o755)
    with open("/etc/ld.so.conf.d/zz-hato-privilege-test.conf", "w") as f:
        f.write(lib + "\n")
    subprocess.run(["ldconfig"], check=True)

    bindir = os.path.join(t.tmp, "bin")
    os.makedirs(bindir)
    os.chmod(bindir, 0o755)
    hato = os.path.join(bindir, "hato")
    shutil.copy(t.hato, hato)
    os.chown(hato, 0, gid)
    os.chmod(hato, 0o2755)

    key = "[127.0.0.1]:%d" % t.port_starttls
    pwmap = t.write_password_map([(key, t.user, t.password)])  # 0600 root
    maillog = t.maillog_path()
    open(maillog, "a").close()
    os.chown(maillog, 0, gid)
    os.chmod(maillog, 0o660)
    state = os.path.join(t.tmp, "state")
    os.makedirs(state, mode=0o700, exist_ok=True)
    spool = os.path.join(t.tmp, "spool")
    settings = [
        ("relayhost", key),
        ("smtp_sasl_auth_enable", "yes"),
        ("smtp_sasl_password_maps", "hash:" + pwmap),
        ("smtp_tls_security_level", "verify"),
        ("smtp_tls_CAfile", t.ca),
        ("data_directory", state),
        ("queue_directory", spool),
        ("myhostname", "client.example.test"),
        ("maillog_file", maillog),
        ("hato_user_queue_limit", "3"),
    ]
    with open("/etc/hato.conf", "w") as f:
        f.write("# hato privilege test\n")
        for k, v in settings:
            f.write("%s = %s\n" % (k, v))
    os.chmod("/etc/hato.conf", 0o644)
    return hato, gid, spool, pwmap, maillog


def mode_of(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def queue_files(spool):
    return sorted(p for p in glob.glob(os.path.join(spool, "queue", "*"))
                  if not p.endswith(".state"))


def setgid_case(t):
    hato, gid, spool, pwmap, maillog = setup(t)
    nobody = pwd.getpwnam("nobody").pw_uid

    # 1. root creates the spool with the group's layout.
    p = run([hato, "-bp"])
    check(p.returncode == EX_OK and "Mail queue is empty" in p.out,
          "root's hato -bp on a new spool: exit %d, %r" % (p.returncode, p.out))
    for sub, want in (("", 0o750), ("tmp", 0o3770), ("queue", 0o3770), ("failed", 0o700)):
        got = mode_of(os.path.join(spool, sub))
        check(got == (0, gid, want), "%s/%s is uid %d gid %d mode %04o, expected root:%s %04o"
              % (spool, sub, got[0], got[1], got[2], GROUP, want))

    # 2. nobody submits: accepted, only queued, the file nobody's.
    mids = [t.message_id(".nobody%d" % i) for i in range(4)]
    p = run([hato, "-i", "-f", t.user, "alice@example.test"], message(t, mids[0], "first"),
            user="nobody")
    check(p.returncode == EX_OK, "nobody's submission exited %d, expected 0" % p.returncode)
    check(p.err == "", "nobody's submission printed on stderr: %r" % p.err)
    files = queue_files(spool)
    check(len(files) == 1, "expected one queued message, found %s" % files)
    nobody_file = files[0]
    got = mode_of(nobody_file)
    check(got == (nobody, gid, 0o640), "queue file %s is uid %d gid %d mode %04o, expected "
          "nobody:%s 0640" % (nobody_file, got[0], got[1], got[2], GROUP))
    check(not t.find_copies(mids[0]), "nobody's message was sent at once; it must only be queued")

    # 3. nobody reads nothing of the spool, nor the password.
    for what, cmd in (("the queue file", ["cat", nobody_file]),
                      ("queue/", ["ls", os.path.join(spool, "queue")]),
                      ("the password map", ["cat", pwmap])):
        p = run(cmd, user="nobody")
        check(p.returncode != 0 and "Permission denied" in p.err,
              "nobody could read %s (exit %d)" % (what, p.returncode))
        check(t.password not in p.out and "X-Original" not in p.out, "%s leaked" % what)

    # 4. -C: opened with nobody's rights only; never the spool's group.
    with open("/etc/shadow") as f:
        shadow = [line.strip() for line in f if line.strip()]
    for target in ("/etc/shadow", pwmap):
        p = run([hato, "-C", target, "-i", "alice@example.test"], message(t, "<x@y>", "x"),
                user="nobody")
        check(p.returncode == EX_NOPERM, "hato -C %s as nobody exited %d, expected 77"
              % (target, p.returncode))
        check("Permission denied" in p.err, "hato -C %s: no permission error: %r"
              % (target, p.err))
        for line in shadow:
            check(line not in p.out + p.err, "hato -C /etc/shadow printed a line of it")
        check(t.password not in p.out + p.err, "hato -C %s printed the password" % target)
    own = os.path.join(t.tmp, "own.cf")
    with open(own, "w") as f:
        f.write("relayhost = [127.0.0.1]:1\nqueue_directory = %s\n" % spool)
    os.chmod(own, 0o644)
    before = queue_files(spool)
    p = run([hato, "-C", own, "-i", "alice@example.test"], message(t, "<own@x>", "own"),
            user="nobody")
    check(p.returncode == EX_TEMPFAIL and "NOT accepted" in p.err,
          "-C naming the system spool: exit %d, expected 75 (the group is given up)"
          % p.returncode)
    check(queue_files(spool) == before, "-C FILE as nobody still wrote into the spool")

    # 5. root's own message, then mailq as nobody shows only nobody's.
    root_mid = t.message_id(".root")
    p = run([hato, "-odq", "-i", "-f", t.user, "alice@example.test"],
            message(t, root_mid, "root's"))
    check(p.returncode == EX_OK, "root's -odq submission exited %d" % p.returncode)
    root_ids = [os.path.basename(f) for f in queue_files(spool) if f != nobody_file]
    check(len(root_ids) == 1, "expected root's message queued beside nobody's: %s"
          % queue_files(spool))
    nobody_id = os.path.basename(nobody_file)
    p = run([hato, "-bp"], user="nobody")
    check(p.returncode == EX_OK, "mailq as nobody exited %d" % p.returncode)
    check(nobody_id in p.out, "mailq as nobody does not list nobody's %s" % nobody_id)
    check(root_ids[0] not in p.out, "mailq as nobody lists root's message %s" % root_ids[0])
    p = run([hato, "-bp"])
    check(nobody_id in p.out and root_ids[0] in p.out, "root's mailq does not list both")

    # 6. the per-user limit (3): two more pass, the fourth is refused.
    for i in (1, 2):
        p = run([hato, "-i", "-f", t.user, "alice@example.test"],
                message(t, mids[i], "more %d" % i), user="nobody")
        check(p.returncode == EX_OK, "nobody's message %d exited %d" % (i + 1, p.returncode))
    p = run([hato, "-i", "-f", t.user, "alice@example.test"], message(t, mids[3], "too many"),
            user="nobody")
    check(p.returncode == EX_TEMPFAIL, "the 4th message exited %d, expected 75" % p.returncode)
    check("hato_user_queue_limit = 3" in p.err and "NOT accepted" in p.err,
          "the refusal does not name the limit: %r" % p.err)
    with open(maillog) as f:
        logtext = f.read()
    check("uid=%d" % nobody in logtext and "refused" in logtext
          and "hato_user_queue_limit" in logtext,
          "no refusal line in the maillog %s:\n%s" % (maillog, logtext))
    check(len(queue_files(spool)) == 4, "expected 4 queued messages (3 nobody, 1 root): %s"
          % queue_files(spool))
    check(not glob.glob(os.path.join(spool, "tmp", "*")), "the refusal left a tmp/ file")

    # 7. only root runs the queue.
    p = run([hato, "-q"], user="nobody")
    check(p.returncode == EX_NOPERM and "only root" in p.err,
          "hato -q as nobody exited %d, expected 77" % p.returncode)

    # 8. root's flush sends nobody's messages through the real Postfix.
    p = run([hato, "-q"])
    check(p.returncode == EX_OK, "root's hato -q exited %d" % p.returncode)
    t.check_no_secrets(p.out + p.err)
    for mid in mids[:3] + [root_mid]:
        t.wait_delivered(mid, ["alice"])
    check(not t.find_copies(mids[3]), "the refused message was delivered")
    check(queue_files(spool) == [], "queue not empty after root's flush: %s" % queue_files(spool))


if __name__ == "__main__":
    in_namespace()
    sys.argv[1:] = ["--case", "setgid"]
    interop.main(lambda fn, env: fn(env), {"setgid": setgid_case})
