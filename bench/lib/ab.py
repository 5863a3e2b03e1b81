#!/usr/bin/env python3
"""Two stirgate binaries side by side on the load kit's path (bench/lib/kit.py): the same SIPp
caller and callee, fresh Identity values, each rate step run for OLD then NEW, twice, so a
slower machine or a noisy minute moves both. Prints CPU us per call, SIPp's p99 setup (ms) and
peak RSS (KiB) per step. Loopback only.

    python3 bench/lib/ab.py OLD_BINARY NEW_BINARY 1000,2000,3000

OLD_REALTIME / NEW_REALTIME set each side's `sip.realtime_priority` (default: the kit's REALTIME),
so one binary can be compared with itself at two scheduling settings.
"""
import os, shutil, subprocess, sys, tempfile, time

OLD, NEW = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
os.environ.setdefault("STIRGATE_BIN", NEW)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kit  # noqa: E402
work = tempfile.mkdtemp(prefix="ab-")
www = os.path.join(work, "www"); os.makedirs(www)
shutil.copy(os.path.join(kit.CERTS, "test-sp-chain.pem"), www)
http = kit.free_tcp_port()
httpd = subprocess.Popen([sys.executable, "-m", "http.server", str(http), "--bind", "127.0.0.1", "--directory", www],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.7)
signer = kit.Signer(os.path.join(kit.CERTS, "test-sp-leaf.key"), f"http://127.0.0.1:{http}/test-sp-chain.pem")
uas = kit.Uas(work, "stirgate")
rates = [int(r) for r in sys.argv[3].split(",")]
res = []
for rnd in range(2):
    for name, binp in (("old", OLD), ("new", NEW)):
        kit.BIN = binp
        rt = int(os.environ.get(f"{name.upper()}_REALTIME", kit.REALTIME))
        sg = kit.Stirgate(work, uas.port, f"{name}{rnd}", realtime=rt)
        row = kit.Row(name, sg.port, "uac.xml", sg.procs, signer, work, metrics_port=sg.metrics, unique=True)
        row.step(10, seconds=1, label="warm-up", sampler_only=True)
        for r in rates:
            s = row.step(r)
            res.append((name, rnd, r, s["ok"], round(s["cpu_us_per_call"]), s["rtt_p99_ms"], s["rss_peak"]))
        sg.stop()
uas.stop(); httpd.terminate()
shutil.rmtree(work, ignore_errors=True)
print(f"{'binary':6} {'round':5} {'calls/s':>7} {'ok':3} {'CPU us/call':>11} {'p99 ms':>7} {'peak RSS KiB':>12}")
for name, rnd, rate, ok, cpu, p99, rss in res:
    print(f"{name:6} {rnd:5} {rate:7} {'yes' if ok else 'no':3} {cpu:11} {p99:7} {rss:12}")
