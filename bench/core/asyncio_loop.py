"""CPython asyncio and uvloop running the same loop workloads as node-raw.mjs and loopwork-loop.ts.

    /usr/bin/python3 bench/core/asyncio_loop.py <asyncio|uvloop> <workload> <seconds> <warmup-seconds> [scale]

Prints one JSON line: {"ops": N, "seconds": S, ...}. The workloads are described in bench/README.md.
"""

import asyncio
import json
import sys
import time


def delays(n, scale):
    """Park-Miller: the same sequence in every system's script."""
    s = 42
    out = []
    for _ in range(n):
        s = (s * 48271) % 2147483647
        out.append(s / 2147483647 * scale)
    return out


CANCEL_DELAYS = delays(100_000, 1.0)
FIRE_DELAYS = delays(100_000, 0.001)
counter = 0
SCALE = 1.0  # batch sizes are multiplied by it (the smoke run uses 0.1)


def size(n):
    return max(2, round(n * SCALE))


def cb():
    global counter
    counter += 1


def callsoon_batch(loop):
    n = size(1_000_000)
    fut = loop.create_future()
    call_soon = loop.call_soon
    for _ in range(n):
        call_soon(cb)
    call_soon(fut.set_result, None)
    loop.run_until_complete(fut)
    return n


def callsoon_chain(loop):
    n = size(1_000_000)
    fut = loop.create_future()
    left = n

    def step():
        nonlocal left
        left -= 1
        if left > 0:
            loop.call_soon(step)
        else:
            fut.set_result(None)

    loop.call_soon(step)
    loop.run_until_complete(fut)
    return n


def calllater_cancel(loop):
    n = size(100_000)
    fut = loop.create_future()
    call_later = loop.call_later
    hs = [call_later(d, cb) for d in CANCEL_DELAYS[:n]]
    for i in range(0, n, 2):
        hs[i].cancel()
    for i in range(1, n, 2):
        hs[i].cancel()
    loop.call_soon(fut.set_result, None)
    loop.run_until_complete(fut)
    return n


def timers_fire(loop):
    n = size(100_000)
    fut = loop.create_future()
    left = n

    def fire():
        nonlocal left
        left -= 1
        if left == 0:
            fut.set_result(None)

    call_later = loop.call_later
    for d in FIRE_DELAYS[:n]:
        call_later(d, fire)
    loop.run_until_complete(fut)
    return n


def pingpong(loop):
    n = size(100_000)
    waiters = [None, None]
    done = loop.create_future()
    left = [2]

    async def player(me, other):
        for _ in range(n):
            f = loop.create_future()
            waiters[me] = f
            w = waiters[other]
            waiters[other] = None
            if w is not None:
                w.set_result(None)
            await f
        w = waiters[other]
        waiters[other] = None
        if w is not None:
            w.set_result(None)
        left[0] -= 1
        if left[0] == 0:
            done.set_result(None)

    loop.create_task(player(0, 1))
    loop.create_task(player(1, 0))
    loop.run_until_complete(done)
    return 2 * n


def sleep0_tasks(loop):
    tasks, m = 100, size(1000)
    done = loop.create_future()
    left = [tasks]

    async def worker():
        for _ in range(m):
            await asyncio.sleep(0)
        left[0] -= 1
        if left[0] == 0:
            done.set_result(None)

    for _ in range(tasks):
        loop.create_task(worker())
    loop.run_until_complete(done)
    return tasks * m


WORKLOADS = {
    "callsoon-batch": callsoon_batch,
    "callsoon-chain": callsoon_chain,
    "calllater-cancel": calllater_cancel,
    "timers-fire": timers_fire,
    "pingpong": pingpong,
    "sleep0-tasks": sleep0_tasks,
}


def measure(batch, loop, secs):
    ops = 0
    t0 = time.perf_counter()
    while True:
        ops += batch(loop)
        elapsed = time.perf_counter() - t0
        if elapsed >= secs:
            return {"ops": ops, "seconds": elapsed}


def main():
    impl, name = sys.argv[1], sys.argv[2]
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    warmup = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
    global SCALE
    SCALE = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    if impl == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
        version = uvloop.__version__
    else:
        loop = asyncio.new_event_loop()
        version = sys.version.split()[0]
    batch = WORKLOADS[name]
    measure(batch, loop, warmup)
    result = measure(batch, loop, secs)
    result["impl"] = f"{impl} {version}"
    loop.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
