# CPython asyncio's loop.sendfile (os.sendfile on the selector loop) serving a file to each connection.
#   python3 bench/sendfile/asyncio_sendfile.py <port> <file>
import asyncio
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 25100
PATH = sys.argv[2]


class Serve(asyncio.Protocol):
    def connection_made(self, transport):
        asyncio.get_running_loop().create_task(self.send(transport))

    async def send(self, transport):
        with open(PATH, 'rb') as f:
            await asyncio.get_running_loop().sendfile(transport, f)
        transport.close()


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Serve, '127.0.0.1', PORT)
    print('READY', flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
