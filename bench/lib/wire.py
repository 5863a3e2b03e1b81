"""What stirgate adds to call setup, read from the wire: loopback packet timestamps (tcpdump).

SIPp's own setup times include SIPp's scheduling on a machine whose two cores it shares with the
proxy, so the difference of two SIPp p99s says as much about the harness as about the proxy. The
kernel stamps every packet when it passes the loopback tap, so for each call:

    added = (forwarded INVITE leaves stirgate - caller's INVITE reaches it)
          + (200 to the caller leaves stirgate - callee's 200 reaches it)

is the time the call's setup spent inside stirgate (socket queue, parse, verify, routing, the
outbound leg, scheduling), with neither SIPp's time nor the callee's in it. A-leg and B-leg are
paired by the Identity header, which stirgate carries unchanged and the kit makes unique per
call; the B-leg's Call-ID then pairs the two 200s. Only first transmissions count (a
retransmission of an INVITE or 200 is not a new setup).
"""

import shutil
import struct
import subprocess
import time

# The capture keeps only INVITE requests and 200 responses (BPF on the UDP payload's first
# bytes): "INVI" and "SIP/" + "200" at offset 8.
BPF = ("udp port {port} and (udp[8:4] = 0x494e5649 or "
       "(udp[8:4] = 0x5349502f and udp[16:2] = 0x3230 and udp[18:1] = 0x30))")


def available():
    return shutil.which("tcpdump") is not None


class Capture:
    """tcpdump on lo for one UDP port, nanosecond timestamps, into `path`."""

    def __init__(self, port, path):
        self.path = path
        self.err = open(path + ".log", "w+")
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-s", "2048", "-B", "65536", "--time-stamp-precision=nano",
             "-U", "-w", path, BPF.format(port=port)],
            stdout=subprocess.DEVNULL, stderr=self.err,
        )
        deadline = time.time() + 10
        while time.time() < deadline:  # ready once it says it is listening
            self.err.seek(0)
            if "listening on" in self.err.read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tcpdump did not start: {open(path + '.log').read().strip()}")

    def stop(self):
        """Ends the capture; returns the packets the kernel dropped (None if not reported)."""
        if self.proc.poll() is None:
            time.sleep(0.3)  # the last packets of the step
            self.proc.terminate()
            self.proc.wait(10)
        self.err.seek(0)
        text = self.err.read()
        self.err.close()
        for line in text.splitlines():
            if "dropped by kernel" in line:
                return int(line.split()[0])
        return None


def packets(path):
    """(timestamp ns, src port, dst port, payload) of each UDP/IPv4 packet of a pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError(f"{path}: not a little-endian pcap file")
    link = struct.unpack("<I", data[20:24])[0]
    l2 = {1: 14, 0: 4, 113: 16}.get(link)  # Ethernet (lo), BSD loopback, Linux cooked
    if l2 is None:
        raise ValueError(f"{path}: link type {link}")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[l2:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        sport, dport = struct.unpack(">HH", udp[:4])
        yield sec * 1_000_000_000 + (frac if nano else frac * 1000), sport, dport, bytes(udp[8:])


COMPACT = {b"i": b"call-id", b"t": b"to"}  # RFC 3261 §7.3.3 compact forms the pairing reads


def header(payload, name):
    """The value of the first header `name` (lower case, full form) in a SIP message, or None."""
    head = payload.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        n, _, v = line.partition(b":")
        n = n.strip().lower()
        if COMPACT.get(n, n) == name:
            return v.strip()
    return None


def added_latency(path, sg_port):
    """Per-call time inside stirgate during setup, from a capture of its SIP port (see module doc):
    (initial INVITEs seen, [(invite us, answer us, added us, callee us) per paired call]).
    *callee* is the callee's own hop in the same step (stirgate's INVITE out -> the callee's 200
    in): what a UA that does nothing but answer takes on this machine under the same load."""
    a_in, b_out = {}, {}  # Identity -> (t, Call-ID)
    b_200, a_200 = {}, {}  # Call-ID -> t
    for t, sport, dport, p in packets(path):
        inbound, outbound = dport == sg_port, sport == sg_port
        if p.startswith(b"INVITE "):
            ident = header(p, b"identity")
            if ident is None or header(p, b"to") is None or b"tag=" in header(p, b"to"):
                continue  # not an initial INVITE
            side = a_in if inbound else b_out if outbound else None
            if side is not None and ident not in side:
                side[ident] = (t, header(p, b"call-id"))
        elif p.startswith(b"SIP/2.0 200"):
            cseq = header(p, b"cseq") or b""
            if not cseq.upper().endswith(b"INVITE"):
                continue
            side = b_200 if inbound else a_200 if outbound else None
            cid = header(p, b"call-id")
            if side is not None and cid not in side:
                side[cid] = t
    # Per paired call, microseconds: INVITE in -> INVITE out, 200 in -> 200 out, their sum, and
    # the callee's hop between them.
    calls = []
    for ident, (t_in, a_cid) in a_in.items():
        out = b_out.get(ident)
        if not out:
            continue
        t_out, b_cid = out
        if b_cid in b_200 and a_cid in a_200:
            inv, ans = (t_out - t_in) / 1000, (a_200[a_cid] - b_200[b_cid]) / 1000
            calls.append((inv, ans, inv + ans, (b_200[b_cid] - t_out) / 1000))
    return len(a_in), calls


def turnaround(path, port):
    """For scale: per call, INVITE reaching `port` -> its 200 leaving it (ms), for a UAS that does
    nothing but answer (SIPp's), from a capture of that port: what one hop costs on this machine."""
    invite, out = {}, []
    for t, sport, dport, p in packets(path):
        cid = header(p, b"call-id")
        if dport == port and p.startswith(b"INVITE ") and cid not in invite:
            invite[cid] = t
        elif sport == port and p.startswith(b"SIP/2.0 200") and cid in invite:
            if (header(p, b"cseq") or b"").upper().endswith(b"INVITE"):
                out.append((t - invite.pop(cid)) / 1e6)
    return out
