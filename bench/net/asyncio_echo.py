"""CPython asyncio / uvloop echo servers in the four modes of the benchmark.

    /usr/bin/python3 bench/net/asyncio_echo.py <asyncio|uvloop> <protocol|buffered|streams|sock> <port|unix:/path>

Prints READY once listening. TCP_NODELAY is set on every TCP connection.
"""

import asyncio
import os
import signal
import socket
import sys

READ_SIZE = 256 * 1024
# Reads of at least this many bytes are echoed without a copy. Measured at 10 connections: uvloop at 100 KiB,
# 43.0 k req/s with no copy against 35.2 k with one; at 1 KiB, 28.3 k against 150.9 k (its write of a small
# memoryview is slow).
ZERO_COPY_MIN = 32 * 1024


def nodelay(sock):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        nodelay(transport.get_extra_info("socket"))

    def data_received(self, data):
        self.transport.write(data)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray(READ_SIZE)
        self.view = memoryview(self.buffer)
        nodelay(transport.get_extra_info("socket"))

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        if nbytes < ZERO_COPY_MIN:
            # The buffer is reused by the next read: write a copy.
            self.transport.write(self.buffer[:nbytes])
            return
        # Zero-copy: the transport keeps what the kernel did not take, and then the next read needs a fresh buffer.
        self.transport.write(self.view[:nbytes])
        if self.transport.get_write_buffer_size() > 0:
            self.buffer = bytearray(READ_SIZE)
            self.view = memoryview(self.buffer)


async def echo_stream(reader, writer):
    nodelay(writer.get_extra_info("socket"))
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def echo_sock(loop, conn):
    nodelay(conn)
    with conn:
        try:
            while True:
                data = await loop.sock_recv(conn, READ_SIZE)
                if not data:
                    break
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass


async def serve(mode, target):
    loop = asyncio.get_running_loop()
    unix = target[5:] if target.startswith("unix:") else None
    if unix and os.path.exists(unix):
        os.unlink(unix)
    port = None if unix else int(target)
    if mode in ("protocol", "buffered"):
        factory = EchoProtocol if mode == "protocol" else EchoBufferedProtocol
        if unix:
            server = await loop.create_unix_server(factory, unix, backlog=1024)
        else:
            server = await loop.create_server(factory, "127.0.0.1", port, backlog=1024)
    elif mode == "streams":
        if unix:
            server = await asyncio.start_unix_server(echo_stream, unix, backlog=1024)
        else:
            server = await asyncio.start_server(echo_stream, "127.0.0.1", port, backlog=1024)
    elif mode == "sock":
        server = None
        family = socket.AF_UNIX if unix else socket.AF_INET
        lsock = socket.socket(family, socket.SOCK_STREAM)
        if not unix:
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(unix or ("127.0.0.1", port))
        lsock.listen(1024)
        lsock.setblocking(False)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("READY", flush=True)
    if server is not None:
        await server.serve_forever()
    else:
        tasks = set()
        while True:
            conn, _ = await loop.sock_accept(lsock)
            conn.setblocking(False)
            task = loop.create_task(echo_sock(loop, conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


def main():
    impl, mode, target = sys.argv[1], sys.argv[2], sys.argv[3]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if impl == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(serve(mode, target))


if __name__ == "__main__":
    main()
