#!/usr/bin/python3
"""probe.py CA SMTPS_PORT LOG "HOSTS" PORT...: wait (30 s at most) until every
HOST:PORT sends an SMTP 220 greeting; SMTPS_PORT is spoken to over TLS,
verified against CA for the name localhost.  Used by start.sh."""
import socket
import ssl
import sys
import time


def main():
    ca, smtps, log, hosts, ports = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5:]
    ctx = ssl.create_default_context(cafile=ca)
    deadline = time.monotonic() + 30
    for host in hosts:
        for port in ports:
            while True:
                try:
                    with socket.create_connection((host, int(port)), timeout=5) as sock:
                        if port == smtps:
                            sock = ctx.wrap_socket(sock, server_hostname="localhost")
                        greeting = sock.makefile("rb").readline()
                    if greeting.startswith(b"220"):
                        break
                    err = "greeting %r" % greeting
                except OSError as e:
                    err = str(e)
                if time.monotonic() > deadline:
                    sys.exit("start.sh: no SMTP greeting on [%s]:%s within 30 s (%s); see %s"
                             % (host, port, err, log))
                time.sleep(0.3)


main()
