#!/usr/bin/env python3
"""Tribune's gossip benchmark against serf (issue 3 point 6), and the idle-stability run.

Adapted from the neutral harness ../shared/bench/serf_bench.py: the same scenarios, the
same sniffer and the same /proc readings for both peers; serf is asked over its msgpack
RPC (`members`), Tribune over `GET /v1/agent/members`. Runs alternate serf, tribune,
serf, tribune... each behind the quiet-machine check of wait_quiet.py.

One run of one peer, N agents (default 16) on 127.0.0.1, each with its own ports:
  1. join convergence: agent 0 starts (for Tribune: a server, bootstrap_expect 1), then
     the N-1 others join it (serf -join, Tribune retry_join, all clients); the time from
     their start until each agent lists N alive members (median and last);
  2. idle window (--idle s, nothing polls the agents): bytes/s per node on the gossip
     ports counted by an AF_PACKET sniffer on lo (IP length, UDP and TCP, so push-pull
     is included once the window spans a push-pull interval), packets/s, CPU % and RSS;
  3. stress window (--stress-secs s): --hogs busy-loop processes; nobody may be marked
     failed;
  4. SIGSTOP of agent N/4 for --pause s, then SIGCONT; the survivors are polled for
     --pause-watch s: nobody may mark it failed (it must refute). Suspicions and
     refutations are counted from the agents' logs: memberlist's "Suspect X has failed"
     and "Refuting a suspect message", Tribune's "Suspecting a member" and "Refuted a
     suspicion of this member" (both logged once per suspicion at INFO);
  5. kill -9 of agent N/2: time until each survivor lists it as failed (first, median,
     last);
  6. false failures: log lines in which any agent marks a member other than the killed
     one failed, over the whole run.

Needs root (AF_PACKET), `serf` (Debian's package), python3-msgpack, and TRIBUNE_BIN.

Idle-stability mode (--stability SECONDS): 3 Tribune servers (bootstrap_expect 3,
retry_join, encrypt) and 1 client on 127.0.0.1 for SECONDS while the machine does
whatever it does; polls /v1/status/leader and the Raft term of every server each 0.5 s
and counts leader changes, leaderless observations, term changes and gossip failures.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import http.client

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("-n", type=int, default=16, help="agents per peer (16)")
ap.add_argument("--runs", type=int, default=5, help="runs per peer, interleaved (5)")
ap.add_argument("--idle", type=float, default=65.0,
                help="idle window, s (65: spans two 30 s push-pull rounds)")
ap.add_argument("--stress-secs", type=float, default=20.0, help="window with CPU hogs, s (20)")
ap.add_argument("--hogs", type=int, default=3, help="busy-loop processes in the stress window (3)")
ap.add_argument("--pause", type=float, default=2.0, help="SIGSTOP length, s (2)")
ap.add_argument("--pause-watch", type=float, default=12.0,
                help="how long after SIGCONT survivors are watched, s (12)")
ap.add_argument("--peers", default="serf,tribune", help="comma list: serf, tribune")
ap.add_argument("--encrypt", action="store_true",
                help="encrypt gossip on both peers with one 32-byte key (serf -encrypt, Tribune encrypt)")
ap.add_argument("--base", type=int, default=21000,
                help="lowest port tried (21000); each run takes a free block of 500")
ap.add_argument("--poll", type=float, default=0.02, help="member poll interval, s (0.02)")
ap.add_argument("--quiet", type=float, default=15.0,
                help="busy %% below which the machine counts as quiet (15)")
ap.add_argument("--quiet-max", type=float, default=90.0,
                help="longest wait for a quiet machine before measuring anyway, s (90)")
ap.add_argument("--dir", default=os.environ.get("TRIBUNE_BENCH_DIR", "/var/tmp"),
                help="where agents keep data and logs (never tmpfs)")
ap.add_argument("--keep", action="store_true", help="keep data and logs")
ap.add_argument("--stability", type=float, default=0.0,
                help="idle-stability mode: 3 servers + 1 client for this many seconds")
a = ap.parse_args()

TRIBUNE_BIN = os.environ.get("TRIBUNE_BIN", "")
TOOLS = os.environ.get("TRIBUNE_BENCH_TOOLS", "/work/shared/bench")
# One key for both peers (base64 of 32 random bytes, what `tribune keygen` prints).
GOSSIP_KEY = __import__("base64").b64encode(os.urandom(32)).decode() if a.encrypt else None


def die(msg):
    print("error: " + msg, file=sys.stderr, flush=True)
    sys.exit(2)


# ---------------------------------------------------------------- machine ---

def cpu_snap():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(v), v[3] + v[4]


def busy_pct(s0, s1):
    return 100.0 * (1 - (s1[1] - s0[1]) / max(1, s1[0] - s0[0]))


def wait_quiet():
    """wait_quiet.py's rule (busy % over 2 s below a threshold, checked every 5 s)."""
    tool = os.path.join(TOOLS, "wait_quiet.py")
    if os.path.exists(tool):
        out = subprocess.run([sys.executable, tool, str(a.quiet), str(a.quiet_max)],
                             capture_output=True, text=True).stdout.strip()
        m = re.search(r"busy=(\d+)%", out)
        return float(m.group(1)) if m else None
    t0 = time.time()
    while True:
        s0 = cpu_snap(); time.sleep(2); b = busy_pct(s0, cpu_snap())
        if b < a.quiet or time.time() - t0 > a.quiet_max:
            return b
        time.sleep(3)


def cpu_ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sniffer(threading.Thread):
    """serf_bench.py's sniffer: bytes (IP length) and packets on lo whose source or
    destination port is in [lo_p, hi_p]; each packet counted once (outgoing copies
    skipped)."""

    def __init__(self, lo_p, hi_p):
        super().__init__(daemon=True)
        self.lo_p, self.hi_p = lo_p, hi_p
        self.bytes = {"udp": 0, "tcp": 0}
        self.pkts = {"udp": 0, "tcp": 0}
        self.on = False
        self.stop = False
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.s.bind(("lo", 0))
        self.s.settimeout(0.2)

    def run(self):
        while not self.stop:
            try:
                d, addr = self.s.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] == socket.PACKET_OUTGOING or not self.on:
                continue
            ip = d[14:]
            if len(ip) < 24 or ip[0] >> 4 != 4:
                continue
            ihl = (ip[0] & 15) * 4
            proto = ip[9]
            tot = struct.unpack("!H", ip[2:4])[0]
            sp, dp = struct.unpack("!HH", ip[ihl:ihl + 4])
            if not (self.lo_p <= sp <= self.hi_p or self.lo_p <= dp <= self.hi_p):
                continue
            k = "udp" if proto == 17 else "tcp" if proto == 6 else None
            if k:
                self.bytes[k] += tot
                self.pkts[k] += 1


def ports_free(base, n):
    """Whether every port a run uses (base .. base+400+n) is free on 127.0.0.1, TCP and
    UDP: other programs on the machine must neither collide with the agents nor add
    traffic to the sniffed gossip ports."""
    for off in (0, 100, 200, 300, 400):
        for i in range(n):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", base + off + i))
                except OSError:
                    return False
                finally:
                    s.close()
    return True


def pick_base(slot, n):
    """A free block of ports for the next run, from --base up, never in the kernel's
    ephemeral range; successive runs use successive blocks (no TIME_WAIT reuse)."""
    lo_eph = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    blocks = max(1, (lo_eph - a.base - 500) // 500)
    for k in range(blocks):
        base = a.base + ((slot + k) % blocks) * 500
        if base + 500 <= lo_eph and ports_free(base, n):
            return base
    die("no free block of ports between %d and %d" % (a.base, lo_eph))


# ------------------------------------------------------------------ peers ---

class Serf:
    name = "serf"

    def __init__(self, run_dir, base, n):
        import msgpack  # python3-msgpack; imported here so --peers tribune needs none
        self.msgpack = msgpack
        self.dir, self.base, self.n = run_dir, base, n
        self.rpcs = {}

    def gport(self, i):
        return self.base + i

    def log(self, i):
        return os.path.join(self.dir, "n%d.log" % i)

    def start(self, i):
        lf = open(self.log(i), "w")
        args = ["serf", "agent", "-node=n%d" % i, "-bind=127.0.0.1:%d" % self.gport(i),
                "-rpc-addr=127.0.0.1:%d" % (self.base + 100 + i), "-profile=lan"]
        if i > 0:
            args.append("-join=127.0.0.1:%d" % self.gport(0))
        if GOSSIP_KEY:
            args.append("-encrypt=" + GOSSIP_KEY)
        p = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT)
        lf.close()
        return p

    def _rpc(self, i):
        c = self.rpcs.get(i)
        if c is None:
            c = self.rpcs[i] = SerfRpc(self.msgpack, self.base + 100 + i)
        return c

    def ready(self, i):
        try:
            self._rpc(i)
            return True
        except OSError:
            return False

    def members(self, i):
        try:
            return self._rpc(i).members()
        except (OSError, ValueError):
            self.rpcs.pop(i, None)
            return {}

    def close(self):
        for c in self.rpcs.values():
            c.close()

    # memberlist/serf log lines
    def failed_marks(self, i):
        """Names this agent declared or learned failed."""
        out = []
        for line in open(self.log(i), errors="replace"):
            m = re.search(r"EventMemberFailed: (\S+)", line)
            if m:
                out.append(m.group(1))
        return out

    def suspicions(self, i):
        out = []
        for line in open(self.log(i), errors="replace"):
            m = re.search(r"memberlist: Suspect (\S+) has failed", line)
            if m:
                out.append(m.group(1))
        return out

    def refutations(self, i):
        return sum(1 for line in open(self.log(i), errors="replace")
                   if "Refuting a suspect message" in line)


class SerfRpc:
    def __init__(self, msgpack, port):
        self.msgpack = msgpack
        self.s = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.u = msgpack.Unpacker(raw=False)
        self.seq = 0
        self.call("handshake", {"Version": 1})

    def close(self):
        self.s.close()

    def _read(self):
        while True:
            for o in self.u:
                return o
            d = self.s.recv(65536)
            if not d:
                raise IOError("closed")
            self.u.feed(d)

    def call(self, cmd, body=None):
        self.seq += 1
        mp = self.msgpack
        self.s.sendall(mp.packb({"Command": cmd, "Seq": self.seq})
                       + (mp.packb(body) if body is not None else b""))
        h = self._read()
        if h.get("Error"):
            raise IOError(h["Error"])
        if cmd == "handshake":
            return None
        return self._read()

    def members(self):
        return {m["Name"]: m["Status"] for m in self.call("members")["Members"]}


TRIBUNE_STATUS = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}


class Http:
    """One keep-alive HTTP/1.1 connection to an agent."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def get(self, path, timeout=2.0):
        for attempt in (0, 1):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                self.c.request("GET", path)
                r = self.c.getresponse()
                body = r.read()
                return r.status, body
            except (OSError, http.client.HTTPException):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt:
                    raise
        raise OSError("unreachable")

    def json(self, path):
        st, body = self.get(path)
        if st != 200:
            raise OSError("GET %s: %d %s" % (path, st, body[:200]))
        return json.loads(body)

    def close(self):
        if self.c is not None:
            self.c.close()


class Tribune:
    name = "tribune"

    def __init__(self, run_dir, base, n):
        self.dir, self.base, self.n = run_dir, base, n
        self.https = {}

    def gport(self, i):
        return self.base + i

    def hport(self, i):
        return self.base + 100 + i

    def log(self, i):
        return os.path.join(self.dir, "n%d.log" % i)

    def start(self, i):
        d = os.path.join(self.dir, "n%d" % i)
        os.makedirs(os.path.join(d, "config"), exist_ok=True)
        server = i == 0
        cfg = {
            "node_name": "n%d" % i,
            "datacenter": "dc1",
            "data_dir": os.path.join(d, "data"),
            "bind_addr": "127.0.0.1",
            "client_addr": "127.0.0.1",
            "server": server,
            "log_level": "info",
            "ports": {"http": self.hport(i), "dns": self.base + 200 + i,
                      "serf_lan": self.gport(i), "serf_wan": self.base + 300 + i,
                      "server": self.base + 400 + i, "grpc": -1},
        }
        if server:
            cfg["bootstrap_expect"] = 1
        else:
            cfg["retry_join"] = ["127.0.0.1:%d" % self.gport(0)]
        if GOSSIP_KEY:
            cfg["encrypt"] = GOSSIP_KEY
        with open(os.path.join(d, "config", "tribune.json"), "w") as f:
            json.dump(cfg, f)
        lf = open(self.log(i), "w")
        p = subprocess.Popen([TRIBUNE_BIN, "agent", "-config-dir=" + os.path.join(d, "config")],
                             stdout=lf, stderr=subprocess.STDOUT, cwd=d)
        lf.close()
        return p

    def _http(self, i):
        h = self.https.get(i)
        if h is None:
            h = self.https[i] = Http(self.hport(i))
        return h

    def ready(self, i):
        try:
            return self._http(i).get("/v1/agent/self")[0] == 200
        except OSError:
            return False

    def members(self, i):
        try:
            ms = self._http(i).json("/v1/agent/members")
        except (OSError, ValueError):
            return {}
        return {m["Name"]: TRIBUNE_STATUS.get(m["Status"], str(m["Status"])) for m in ms}

    def close(self):
        for h in self.https.values():
            h.close()

    def _lan_lines(self, i, pattern):
        out = []
        for line in open(self.log(i), errors="replace"):
            # the gossip engine's own lines (the agent repeats failures without pool=)
            if "pool=lan" not in line:
                continue
            m = re.search(pattern, line)
            if m:
                out.append(m.group(1))
        return out

    def failed_marks(self, i):
        return self._lan_lines(i, r"Member failed.*member=(\S+)")

    def suspicions(self, i):
        return self._lan_lines(i, r"Suspecting a member.*member=(\S+)")

    def refutations(self, i):
        return len(self._lan_lines(i, r"(Refuted a suspicion of this member)"))


# --------------------------------------------------------------- one run ---

def wait_ready(peer, i, deadline):
    while time.monotonic() < deadline:
        if peer.ready(i):
            return
        time.sleep(0.005)
    raise RuntimeError("%s n%d: API not up (log %s)" % (peer.name, i, peer.log(i)))


def one_run(kind, run, base):
    n = a.n
    run_dir = tempfile.mkdtemp(prefix="gossipbench-%s-r%d-" % (kind, run), dir=a.dir)
    peer = (Serf if kind == "serf" else Tribune)(run_dir, base, n)
    r = {"peer": kind, "run": run}
    s0 = cpu_snap()
    r["quiet_busy_pct"] = wait_quiet()
    procs = []
    hogs = []
    victim, paused = n // 2, n // 4
    try:
        t = time.monotonic()
        procs.append(peer.start(0))
        wait_ready(peer, 0, t + 60)
        r["startup_ms"] = (time.monotonic() - t) * 1e3
        if kind == "tribune":
            # the server elects itself before the clients come (they sync through it)
            while time.monotonic() - t < 60:
                try:
                    st, body = peer._http(0).get("/v1/status/leader")
                    if st == 200 and json.loads(body):
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.02)
        t0 = time.monotonic()
        for i in range(1, n):
            procs.append(peer.start(i))
        for i in range(1, n):
            wait_ready(peer, i, t0 + 60)
        done = [None] * n
        while None in done and time.monotonic() - t0 < 90:
            for i in range(n):
                if done[i] is None:
                    m = peer.members(i)
                    if sum(1 for s in m.values() if s == "alive") == n:
                        done[i] = time.monotonic() - t0
            time.sleep(a.poll)
        ok = [d for d in done if d is not None]
        r["join_median_ms"] = statistics.median(ok) * 1e3 if ok else None
        r["join_all_ms"] = max(done) * 1e3 if None not in done else None
        time.sleep(3)

        # idle window: nothing polls the agents
        sn = Sniffer(base, base + n - 1)
        sn.start()
        time.sleep(0.3)
        ticks0 = [cpu_ticks(p.pid) for p in procs]
        sn.on = True
        tw = time.monotonic()
        time.sleep(a.idle)
        sn.on = False
        dt = time.monotonic() - tw
        ticks1 = [cpu_ticks(p.pid) for p in procs]
        sn.stop = True
        hz = os.sysconf("SC_CLK_TCK")
        r["bw_bytes_per_node_s"] = (sn.bytes["udp"] + sn.bytes["tcp"]) / n / dt
        r["udp_bytes_per_node_s"] = sn.bytes["udp"] / n / dt
        r["udp_pkts_per_node_s"] = sn.pkts["udp"] / n / dt
        r["tcp_bytes_share"] = sn.bytes["tcp"] / max(1, sn.bytes["udp"] + sn.bytes["tcp"])
        cpu = [(b - c) / hz / dt * 100 for c, b in zip(ticks0, ticks1)]
        r["cpu_pct_per_node"] = statistics.mean(cpu)
        r["cpu_pct_node0"] = cpu[0]
        rss = [rss_kb(p.pid) for p in procs]
        r["rss_mb_median"] = statistics.median(rss) / 1024
        r["rss_mb_node0"] = rss[0] / 1024
        r["rss_mb_max_client"] = max(rss[1:]) / 1024

        # stress window: CPU hogs, nobody may fail
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(a.hogs)]
        time.sleep(a.stress_secs)
        for h in hogs:
            h.kill()
            h.wait()
        hogs = []
        r["failed_during_stress"] = sorted({x for i in range(n) for x in peer.failed_marks(i)})

        # SIGSTOP one agent, then it must refute
        sus0 = [x for i in range(n) for x in peer.suspicions(i)]
        ref0 = peer.refutations(paused)
        pname = "n%d" % paused
        procs[paused].send_signal(signal.SIGSTOP)
        tp = time.monotonic()
        seen_failed = set()
        while time.monotonic() - tp < a.pause:
            time.sleep(0.05)
        procs[paused].send_signal(signal.SIGCONT)
        while time.monotonic() - tp < a.pause + a.pause_watch:
            for i in range(n):
                if i != paused and peer.members(i).get(pname) == "failed":
                    seen_failed.add(i)
            time.sleep(0.1)
        r["pause_seen_failed_by"] = len(seen_failed)
        # suspicions raised (and refutations made) in the pause window, from the logs:
        # memberlist's "Suspect X has failed" / "Refuting a suspect message", Tribune's
        # "Suspecting a member" / "Refuted a suspicion of this member"
        sus = [x for i in range(n) for x in peer.suspicions(i)][len(sus0):]
        r["suspicions_before_pause"] = len(sus0)
        r["pause_suspicions"] = sum(1 for x in sus if x == pname)
        r["pause_suspicions_of_others"] = sum(1 for x in sus if x != pname)
        r["pause_refutations"] = peer.refutations(paused) - ref0

        # kill -9 → every survivor lists it failed
        vname = "n%d" % victim
        procs[victim].send_signal(signal.SIGKILL)
        tk = time.monotonic()
        seen = {}
        while len(seen) < n - 1 and time.monotonic() - tk < 120:
            for i in range(n):
                if i == victim or i in seen:
                    continue
                if peer.members(i).get(vname) == "failed":
                    seen[i] = time.monotonic() - tk
            time.sleep(a.poll)
        ds = sorted(seen.values())
        r["detect_first_ms"] = ds[0] * 1e3 if ds else None
        r["detect_median_ms"] = statistics.median(ds) * 1e3 if ds else None
        r["detect_all_ms"] = ds[-1] * 1e3 if len(ds) == n - 1 else None
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()
        peer.close()
    fails = [x for i in range(n) for x in peer.failed_marks(i)]
    r["false_failures"] = sum(1 for x in fails if x != "n%d" % victim)
    r["run_busy_pct"] = busy_pct(s0, cpu_snap())
    if a.keep:
        r["dir"] = run_dir
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return r


# ---------------------------------------------------------------- summary ---

def fmt(v, nd=1):
    if v is None:
        return "—"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def med_range(rs, k):
    v = [x[k] for x in rs if x.get(k) is not None]
    if not v:
        return None, None, None
    return statistics.median(v), min(v), max(v)


def cell(rs, k, nd=1):
    m, lo, hi = med_range(rs, k)
    if m is None:
        return "—"
    if lo == hi:
        return fmt(m, nd)
    return "%s [%s–%s]" % (fmt(m, nd), fmt(lo, nd), fmt(hi, nd))


ROWS = [
    # key, label, goal text, goal check (median), decimals
    ("detect_median_ms", "kill -9 → all survivors see failed, median ms", "≤ 3000 (serf 6300)",
     lambda v: v <= 3000, 0),
    ("detect_first_ms", "  … first survivor, ms", "(serf 6100)", None, 0),
    ("detect_all_ms", "  … last survivor, ms", "", None, 0),
    ("bw_bytes_per_node_s", "idle B/s per node, UDP+TCP (push-pull)", "≤ 300 (serf 303–310)",
     lambda v: v <= 300, 0),
    ("udp_bytes_per_node_s", "  … UDP only, B/s", "(serf 268)", None, 0),
    ("udp_pkts_per_node_s", "  … UDP packets/s per node", "", None, 1),
    ("tcp_bytes_share", "  … TCP share of bytes", "", None, 2),
    ("join_median_ms", "join convergence, median ms", "≤ 200 (serf 435)", lambda v: v <= 200, 0),
    ("join_all_ms", "  … last agent, ms", "", None, 0),
    ("false_failures", "false failures (whole run, incl. hogs and pause)", "0", lambda v: v == 0, 0),
    ("pause_seen_failed_by", "SIGSTOP 2 s: survivors that saw it failed", "0", lambda v: v == 0, 0),
    ("pause_suspicions", "SIGSTOP 2 s: suspicions of it", "", None, 0),
    ("pause_refutations", "SIGSTOP 2 s: its refutations", "≥ 1 if suspected", None, 0),
    ("pause_suspicions_of_others", "SIGSTOP 2 s: suspicions of other agents", "0",
     lambda v: v == 0, 0),
    ("suspicions_before_pause", "suspicions before the pause (idle + hogs)", "0",
     lambda v: v == 0, 0),
    ("cpu_pct_per_node", "CPU % per agent, idle", "(serf 0.2–0.3)", None, 2),
    ("rss_mb_median", "RSS per agent, MB (median)", "client ≤ 12 (serf 14.8)", None, 1),
    ("rss_mb_max_client", "  … largest client agent, MB", "≤ 12", lambda v: v <= 12, 1),
    ("rss_mb_node0", "  … agent 0 (Tribune: the server), MB", "server ≤ 40", None, 1),
    ("startup_ms", "first agent up (API answers), ms", "", None, 0),
    ("quiet_busy_pct", "machine busy % before the run", "< %g to count as quiet" % a.quiet, None, 0),
    ("run_busy_pct", "machine busy % during the run", "", None, 0),
]


def summary(results):
    by = {k: [r for r in results if r["peer"] == k] for k in ("tribune", "serf")}
    print()
    print("GOSSIP: %d agents per peer on 127.0.0.1, %s, %d run(s) each, idle window %g s, "
          "%d hogs for %g s, SIGSTOP %g s; median [min–max] of runs"
          % (a.n, "encrypted (AES-256-GCM)" if GOSSIP_KEY else "unencrypted",
             max(len(v) for v in by.values()), a.idle, a.hogs, a.stress_secs, a.pause))
    w = max(len(x[1]) for x in ROWS)
    print("%-*s  %-26s  %-26s  %-24s %s" % (w, "figure", "tribune", "serf", "goal", "met"))
    for key, label, goal, ok, nd in ROWS:
        t = cell(by["tribune"], key, nd)
        s = cell(by["serf"], key, nd)
        met = ""
        m, _, _ = med_range(by["tribune"], key)
        if ok is not None and m is not None:
            met = "yes" if ok(m) else "NO"
        ratio = ""
        ms, _, _ = med_range(by["serf"], key)
        if key in ("detect_median_ms", "bw_bytes_per_node_s", "join_median_ms",
                   "cpu_pct_per_node", "rss_mb_median") and m and ms:
            ratio = "  (tribune/serf %.2f)" % (m / ms)
        print("%-*s  %-26s  %-26s  %-24s %s%s" % (w, label, t, s, goal, met, ratio))


# -------------------------------------------------------------- stability ---

def stability(seconds):
    if not TRIBUNE_BIN:
        die("TRIBUNE_BIN is not set (scripts/bench-gossip.sh sets it)")
    key = subprocess.run([TRIBUNE_BIN, "keygen"], capture_output=True, text=True,
                         check=True).stdout.strip()
    base = pick_base(17, 4)
    run_dir = tempfile.mkdtemp(prefix="gossipbench-stability-", dir=a.dir)
    peer = Tribune(run_dir, base, 4)
    joins = ["127.0.0.1:%d" % peer.gport(i) for i in range(3)]
    procs = []

    def start(i):
        d = os.path.join(run_dir, "n%d" % i)
        os.makedirs(os.path.join(d, "config"), exist_ok=True)
        server = i < 3
        cfg = {
            "node_name": "server%d" % (i + 1) if server else "client1",
            "datacenter": "dc1",
            "data_dir": os.path.join(d, "data"),
            "bind_addr": "127.0.0.1", "client_addr": "127.0.0.1",
            "server": server, "encrypt": key, "log_level": "info",
            "retry_join": joins if server else joins[:1],
            "ports": {"http": peer.hport(i), "dns": base + 200 + i, "serf_lan": peer.gport(i),
                      "serf_wan": base + 300 + i, "server": base + 400 + i, "grpc": -1},
        }
        if server:
            cfg["bootstrap_expect"] = 3
        with open(os.path.join(d, "config", "tribune.json"), "w") as f:
            json.dump(cfg, f)
        lf = open(peer.log(i), "w")
        p = subprocess.Popen([TRIBUNE_BIN, "agent", "-config-dir=" + os.path.join(d, "config")],
                             stdout=lf, stderr=subprocess.STDOUT, cwd=d)
        lf.close()
        return p

    r = {"mode": "stability", "seconds": seconds}
    try:
        t0 = time.monotonic()
        for i in range(4):
            procs.append(start(i))
        for i in range(4):
            wait_ready(peer, i, t0 + 60)

        def leader(i):
            try:
                st, body = peer._http(i).get("/v1/status/leader")
                return json.loads(body) if st == 200 else ""
            except (OSError, ValueError):
                return ""

        def term(i):
            try:
                return int(peer._http(i).json("/v1/agent/self")["Stats"]["raft"]["term"])
            except (OSError, ValueError, KeyError):
                return None

        while time.monotonic() - t0 < 120:
            ls = {leader(i) for i in range(3)}
            if len(ls) == 1 and "" not in ls:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("no leader agreed within 120 s; logs in %s" % run_dir)
        r["first_leader_s"] = time.monotonic() - t0
        while time.monotonic() - t0 < 120:
            if all(sum(1 for s in peer.members(i).values() if s == "alive") == 4
                   for i in range(4)):
                break
            time.sleep(0.1)
        first = leader(0)
        terms0 = [term(i) for i in range(3)]
        last = [first] * 3
        changes = leaderless = 0
        polls = 0
        failed_seen = set()
        s0 = cpu_snap()
        ticks0 = [cpu_ticks(p.pid) for p in procs]
        ts = time.monotonic()
        next_report = ts + 60
        while time.monotonic() - ts < seconds:
            for i in range(3):
                cur = leader(i)
                polls += 1
                if cur == "":
                    leaderless += 1
                elif cur != last[i]:
                    changes += 1
                    print("  leader change seen by server%d: %s -> %s at %.0f s"
                          % (i + 1, last[i], cur, time.monotonic() - ts), flush=True)
                    last[i] = cur
            for i in range(4):
                for name, st in peer.members(i).items():
                    if st == "failed":
                        failed_seen.add((i, name))
            if time.monotonic() >= next_report:
                print("  %.0f s: leader %s, changes %d, leaderless polls %d, busy %.0f%%"
                      % (time.monotonic() - ts, last[0], changes, leaderless,
                         busy_pct(s0, cpu_snap())), flush=True)
                next_report += 60
            time.sleep(0.5)
        dt = time.monotonic() - ts
        ticks1 = [cpu_ticks(p.pid) for p in procs]
        hz = os.sysconf("SC_CLK_TCK")
        terms1 = [term(i) for i in range(3)]
        r["busy_pct"] = busy_pct(s0, cpu_snap())
        r["leader"] = first
        r["leader_changes"] = changes
        r["leaderless_polls"] = leaderless
        r["leader_polls"] = polls
        r["term_start"] = terms0
        r["term_end"] = terms1
        r["term_changes"] = (max(x for x in terms1 if x is not None)
                             - max(x for x in terms0 if x is not None)) if None not in terms0 + terms1 else None
        r["members_seen_failed"] = sorted("%s by n%d" % (nm, i) for i, nm in failed_seen)
        r["gossip_failed_log_lines"] = sum(len(peer.failed_marks(i)) for i in range(4))
        # near misses: heartbeats the leader could not deliver in time (no election follows
        # unless a follower misses them for a whole election timeout)
        r["raft_heartbeat_errors"] = sum(
            1 for i in range(3) for line in open(peer.log(i), errors="replace")
            if "heartbeat error" in line)
        r["cpu_pct"] = [round((b - c) / hz / dt * 100, 2) for c, b in zip(ticks0, ticks1)]
        r["rss_mb"] = [round(rss_kb(p.pid) / 1024, 1) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()
        peer.close()
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}))
    print()
    print("IDLE STABILITY: 3 servers + 1 client (encrypted gossip), %.0f s, machine busy %.0f%%"
          % (seconds, r["busy_pct"]))
    print("  leader changes           %d   (goal 0)" % r["leader_changes"])
    print("  leaderless polls         %d of %d" % (r["leaderless_polls"], r["leader_polls"]))
    print("  Raft term start → end    %s → %s" % (r["term_start"], r["term_end"]))
    print("  Raft heartbeat errors    %d   (logged by the leader; near misses, not elections)"
          % r["raft_heartbeat_errors"])
    print("  gossip failures          %d log lines, %d (observer, member) seen failed   (goal 0)"
          % (r["gossip_failed_log_lines"], len(r["members_seen_failed"])))
    print("  CPU %% (s1 s2 s3 client)  %s" % r["cpu_pct"])
    print("  RSS MB (s1 s2 s3 client) %s   (goals: server ≤ 40, client ≤ 12)" % r["rss_mb"])
    if a.keep:
        print("  logs: %s" % run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    bad = r["leader_changes"] or r["gossip_failed_log_lines"] or r["members_seen_failed"]
    return 1 if bad else 0


# ------------------------------------------------------------------- main ---

def fs_type(path):
    """The file system type of the mount holding path (from /proc/mounts)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    for line in open("/proc/mounts"):
        f = line.split()
        if len(f) >= 3 and (path == f[1] or path.startswith(f[1].rstrip("/") + "/")) \
                and len(f[1]) >= len(best):
            best, kind = f[1], f[2]
    return kind


def main():
    if os.geteuid() != 0 and a.stability <= 0:
        die("the sniffer needs root (AF_PACKET on lo)")
    os.makedirs(a.dir, exist_ok=True)
    if fs_type(a.dir) in ("tmpfs", "ramfs"):
        die("--dir / TRIBUNE_BENCH_DIR=%s is on %s: agents' data must be on the real disk"
            % (a.dir, fs_type(a.dir)))
    if a.stability > 0:
        sys.exit(stability(a.stability))
    peers = [p.strip() for p in a.peers.split(",") if p.strip()]
    for p in peers:
        if p not in ("serf", "tribune"):
            die("--peers: unknown peer %r (serf, tribune)" % p)
    if "tribune" in peers and not (TRIBUNE_BIN and os.access(TRIBUNE_BIN, os.X_OK)):
        die("TRIBUNE_BIN is not an executable (scripts/bench-gossip.sh sets it): %r" % TRIBUNE_BIN)
    if "serf" in peers and not shutil.which("serf"):
        die("serf is not installed (apt-get install serf)")
    results = []
    slot = 0
    for run in range(a.runs):
        # A B A B ..., alternating who goes first
        order = peers if run % 2 == 0 else list(reversed(peers))
        for kind in order:
            base = pick_base(slot, a.n)
            slot += 1
            try:
                r = one_run(kind, run, base)
            except Exception as e:  # one failed run is reported, the others still count
                print("run %d of %s failed: %s" % (run, kind, e), flush=True)
                continue
            print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                              for k, v in r.items()}), flush=True)
            results.append(r)
            time.sleep(2)
    summary(results)


if __name__ == "__main__":
    main()
