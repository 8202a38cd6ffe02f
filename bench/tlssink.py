#!/usr/bin/env python3
"""tlssink.py: a discarding SMTP server with STARTTLS (or implicit TLS),
for benchmarks that need TLS and more sessions or bytes than the test
Postfix can take (Postfix's smtpd is one process per session and writes
every message to its queue; Postfix's smtp-sink has no TLS).

usage: tlssink.py PORT CERT KEY [--implicit] [--stats FILE]

One asyncio process.  It offers PIPELINING, SIZE, 8BITMIME, CHUNKING,
ENHANCEDSTATUSCODES and (after TLS) AUTH PLAIN, which it accepts from
anyone; MAIL, RCPT, DATA and BDAT are answered 250 and the content is
thrown away.  With --stats, it appends a line "sessions messages bytes"
to FILE whenever it gets SIGUSR1.  TLS is OpenSSL through Python's ssl
module; the SMTP parsing is Python, so this server, not the client, is
what limits high session counts (docs/performance.md).
"""
import asyncio
import signal
import ssl
import sys

port = int(sys.argv[1])
cert, key = sys.argv[2], sys.argv[3]
implicit = "--implicit" in sys.argv
stats_file = sys.argv[sys.argv.index("--stats") + 1] if "--stats" in sys.argv else None
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
counts = {"sessions": 0, "messages": 0, "bytes": 0}

CAPS_PLAIN = [b"PIPELINING", b"SIZE 0", b"8BITMIME", b"ENHANCEDSTATUSCODES", b"CHUNKING",
              b"STARTTLS"]
CAPS_TLS = [b"PIPELINING", b"SIZE 0", b"8BITMIME", b"ENHANCEDSTATUSCODES", b"CHUNKING",
            b"AUTH PLAIN"]


def ehlo_reply(caps):
    lines = [b"sink.example.test"] + caps
    return b"".join(b"250-" + l + b"\r\n" for l in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"


async def session(reader, writer):
    counts["sessions"] += 1
    tls = implicit
    if tls:
        note_cipher(writer)
    try:
        writer.write(b"220 sink.example.test ESMTP tlssink\r\n")
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(ehlo_reply(CAPS_TLS if tls else CAPS_PLAIN))
            elif verb == b"STAR" and not tls:
                writer.write(b"220 2.0.0 ready to start TLS\r\n")
                await writer.drain()
                await writer.start_tls(ctx)
                tls = True
                note_cipher(writer)
            elif verb == b"AUTH":
                parts = line.split()
                if len(parts) == 2:  # "AUTH PLAIN" then the response on its own line
                    writer.write(b"334 \r\n")
                    await writer.drain()
                    await reader.readline()
                writer.write(b"235 2.7.0 authenticated\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                writer.write(b"250 2.0.0 ok\r\n")
            elif verb == b"DATA":
                writer.write(b"354 end with .\r\n")
                await writer.drain()
                # Scan big reads for CRLF.CRLF rather than line by line (a
                # Python loop per line would cap the rate at ~15 MB/s); what
                # follows the dot (a pipelined QUIT) goes back to the reader.
                n = 0
                tail = b"\r\n"  # the data starts at a line start
                while True:
                    chunk = await reader.read(1 << 20)
                    if not chunk:
                        return
                    both = tail + chunk
                    end = both.find(b"\r\n.\r\n")
                    if end >= 0:
                        rest = both[end + 5:]
                        n += end + 2 - len(tail)
                        if rest:
                            reader._buffer[:0] = rest  # noqa: private
                        break
                    n += len(chunk)
                    tail = both[-4:]
                counts["messages"] += 1
                counts["bytes"] += n
                writer.write(b"250 2.0.0 ok: queued\r\n")
            elif verb == b"BDAT":
                parts = line.split()
                n = int(parts[1])
                left = n
                while left:
                    chunk = await reader.read(min(left, 1 << 20))
                    if not chunk:
                        return
                    left -= len(chunk)
                counts["bytes"] += n
                if len(parts) > 2 and parts[2].upper() == b"LAST":
                    counts["messages"] += 1
                    writer.write(b"250 2.0.0 ok: queued\r\n")
                else:
                    writer.write(b"250 2.0.0 %d octets\r\n" % n)
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 not implemented\r\n")
            # Pipelined commands: reply in one write when the client sent
            # several (RFC 2920), as Postfix does.
            if not reader._buffer:  # noqa: private, but the cheapest check
                await writer.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        try:
            writer.close()
        except OSError:
            pass


ciphers_seen = set()


def note_cipher(writer):
    """Logs each TLS version and cipher the first time a client gets it."""
    obj = writer.get_extra_info("ssl_object")
    c = obj.cipher() if obj else None
    if c and c[:2] not in ciphers_seen:
        ciphers_seen.add(c[:2])
        print("tlssink: %s %s" % (c[1], c[0]), flush=True)


def dump_stats():
    if stats_file:
        with open(stats_file, "a") as f:
            f.write("%(sessions)d %(messages)d %(bytes)d\n" % counts)


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump_stats)
    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=4096,
                                        ssl=ctx if implicit else None, limit=1 << 16)
    print("tlssink: port %d, %s" % (port, "implicit TLS" if implicit else "STARTTLS"), flush=True)
    await server.serve_forever()


asyncio.run(main())
