#!/usr/bin/env python3
"""delayproxy.py: a TCP proxy that adds a fixed one-way delay and counts the
client's flights.

usage: delayproxy.py LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS STATS_FILE

Listens on 127.0.0.1 and ::1 (so "localhost" works whichever address a
client tries first).  Every chunk read from either side is forwarded to the
other side DELAY_MS later, in order, so each direction has the same one-way
delay and a round trip costs 2 * DELAY_MS on top of loopback.

A client flight is counted when client bytes arrive after the server has
sent bytes (delivered to the client) since the client's previous bytes: the
first client bytes count only if the server spoke first (an SMTP greeting),
not a TLS ClientHello sent right after connect on an implicit-TLS port.
Bytes a client sends while server bytes are still in the delay line were
not caused by them and start no flight.

When a connection ends, one JSON line goes to STATS_FILE:
{"conn": n, "flights": f, "client_bytes": b, "server_bytes": b,
 "client_chunks": c, "server_chunks": c, "seconds": s}
"""
import asyncio
import json
import socket
import sys
import time

listen_port, target_host, target_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
delay = int(sys.argv[4]) / 1000.0
stats_path = sys.argv[5]
conn_seq = 0


class Conn:
    def __init__(self, n):
        self.n = n
        self.flights = 0
        self.server_spoke = False  # server bytes reached the client since its last bytes
        self.bytes = {"client": 0, "server": 0}
        self.chunks = {"client": 0, "server": 0}
        self.started = time.monotonic()


async def pump(side, reader, writer, conn, loop):
    """Read from one side, forward to the other after the delay, in order."""
    queue = asyncio.Queue()

    async def forward():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except OSError:
                    pass
                return
            try:
                writer.write(data)
                await writer.drain()
            except OSError:
                return
            if side == "server":
                conn.server_spoke = True

    task = asyncio.ensure_future(forward())
    try:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            if side == "client":
                if conn.server_spoke:
                    conn.flights += 1
                    conn.server_spoke = False
            conn.bytes[side] += len(data)
            conn.chunks[side] += 1
            queue.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    queue.put_nowait((loop.time() + delay, None))
    await task


async def handle(creader, cwriter):
    global conn_seq
    conn_seq += 1
    conn = Conn(conn_seq)
    loop = asyncio.get_running_loop()
    sock = cwriter.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sreader, swriter = await asyncio.open_connection(target_host, target_port)
    except OSError:
        cwriter.close()
        return
    ssock = swriter.get_extra_info("socket")
    if ssock is not None:
        ssock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.gather(pump("client", creader, swriter, conn, loop),
                         pump("server", sreader, cwriter, conn, loop))
    for w in (cwriter, swriter):
        try:
            w.close()
        except OSError:
            pass
    rec = {"conn": conn.n, "flights": conn.flights,
           "client_bytes": conn.bytes["client"], "server_bytes": conn.bytes["server"],
           "client_chunks": conn.chunks["client"], "server_chunks": conn.chunks["server"],
           "seconds": round(time.monotonic() - conn.started, 4)}
    with open(stats_path, "a") as f:
        f.write(json.dumps(rec) + "\n")


async def main():
    servers = []
    for host in ("127.0.0.1", "::1"):
        try:
            servers.append(await asyncio.start_server(handle, host, listen_port, reuse_address=True))
        except OSError:
            if host == "127.0.0.1":
                raise
    print("delayproxy: %d -> %s:%d, %d ms each way" % (listen_port, target_host, target_port,
                                                          delay * 1000), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
