"""A TCP proxy that delays every byte by a fixed time in each direction (a "slow link").

Run as a process of its own (so its CPU does not count in the measuring process)::

    python bench/_latency_proxy.py --upstream 127.0.0.1:4222 --delay-ms 0.5

It prints the port it listens on (127.0.0.1, chosen by the OS) on its first line, then
forwards every connection to ``--upstream``: each chunk read is written to the other side
``--delay-ms`` milliseconds later (or a little more: asyncio sleeps in whole milliseconds),
in order.  A round trip through it therefore costs at least ``2 x delay`` more than the
same round trip on loopback, as a service talking to a server on another host pays; the benchmark uses it to show what costs round trips
(``stop()``) and what costs CPU.
"""

from __future__ import annotations

import argparse
import asyncio


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(65536):
            loop.call_later(delay, writer.write, data)  # equal delays keep the order
    finally:
        loop.call_later(delay, writer.close)


async def _serve(upstream: tuple[str, int], delay: float) -> None:
    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection(*upstream)
        await asyncio.gather(
            _pipe(client_reader, server_writer, delay),
            _pipe(server_reader, client_writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    asyncio.run(_serve((host, int(port)), args.delay_ms / 1000))


if __name__ == "__main__":
    main()
