"""Under 2,000 idle connections and 200 slow-body connections, a well-behaved client still
gets its webhooks accepted quickly, and memory stays bounded (issue 18).

Usage: python3 bench/slow_clients.py HOST:PORT SERVER_PID [seconds]
Prints the well-behaved client's p50/p99/max latency, its statuses, the server's peak
RSS and how many of the attackers' connections the server closed.
"""
import asyncio
import socket
import sys
import time

IDLE = 2000
SLOW = 200
SLOW_CL = 1024 * 1024  # each slow body announces 1 MiB


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def idle(host, port, closed):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    try:
        await reader.read(1)  # returns b"" when the server closes it
        closed["idle"] += 1
    except OSError:
        closed["idle"] += 1


async def slow(host, port, closed, until):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    writer.write(
        f"POST /webhook/bench HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {SLOW_CL}\r\n\r\n[".encode()
    )
    try:
        while time.monotonic() < until:
            writer.write(b"1,")  # two bytes a second: far below any minimum rate
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(100), 1.0)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    closed["slow"] += 1
                    return
            except asyncio.TimeoutError:
                pass
    except OSError:
        closed["slow"] += 1


async def well_behaved(host, port, until, latencies, statuses):
    body = b'{"ref":"refs/heads/main","commits":[{"id":"1"}]}'
    request = (
        b"POST /webhook/bench HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            statuses[int(head.split()[1])] = statuses.get(int(head.split()[1]), 0) + 1
            writer.close()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            statuses["error"] = statuses.get("error", 0) + 1
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.02)


async def main():
    addr, pid = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 20
    host, port = addr.rsplit(":", 1)
    port = int(port)
    closed = {"idle": 0, "slow": 0}
    peak = [rss_kb(pid)]
    start_rss = peak[0]
    until = time.monotonic() + seconds
    tasks = [asyncio.create_task(idle(host, port, closed)) for _ in range(IDLE)]
    tasks += [asyncio.create_task(slow(host, port, closed, until)) for _ in range(SLOW)]
    await asyncio.sleep(1)  # the attackers are in place
    latencies, statuses = [], {}
    good = asyncio.create_task(well_behaved(host, port, until, latencies, statuses))

    async def watch():
        while time.monotonic() < until:
            peak[0] = max(peak[0], rss_kb(pid))
            await asyncio.sleep(0.2)

    await asyncio.gather(good, watch())
    for t in tasks:
        t.cancel()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(f"well-behaved requests: {len(latencies)}  statuses: {statuses}")
    print(f"latency ms: p50 {p(0.50):.1f}  p99 {p(0.99):.1f}  max {latencies[-1]*1000:.1f}")
    print(f"server RSS: start {start_rss/1024:.1f} MiB, peak {peak[0]/1024:.1f} MiB")
    print(f"attackers closed by the server: idle {closed['idle']}/{IDLE}, slow {closed['slow']}/{SLOW}")


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main())
