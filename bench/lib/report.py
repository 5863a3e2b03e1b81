"""Renders the results of bench/lib/kit.py: the table printed on stdout and bench/RESULTS.md."""

# Targets of issue 16 (issue 7's, tightened), checked in RESULTS.md.
TARGET_RATIO = 0.6  # stirgate's maximum / the direct SIPp ceiling, same run, ceiling pushed to failure
TARGET_KAMAILIO = 3.0  # stirgate's maximum / Kamailio+secsipid's
TARGET_CPU_US = 100  # CPU per verified + forwarded call
TARGET_ADDED_P99_MS = 1.0  # added setup latency p99 at half of stirgate's maximum
TARGET_IDLE_PCT = 0.5  # idle stirgate, % of one core
TARGET_KIB_PER_CALL = 2  # resident memory per finished call while its transactions linger
TARGET_PEAK_MIB = 400  # peak RSS at 5,000 calls/s
PEAK_RATE = 5000


def f(v, fmt="{:.0f}", none="-"):
    return none if v is None else fmt.format(v)


def ms(v):
    return f(v, "{:.2f}")


def row_line(name, row, direct_max, half, procs_note):
    s = row.get("max_step")
    ratio = f"{row['max'] / direct_max:.2f}" if direct_max and row["max"] is not None else "-"
    cpu = f(s["cpu_s"] * 1000 / s["calls"], "{:.3f}") if s and "cpu_s" in s else "-"
    return [
        name, str(row["max"]), ratio,
        ms(half["p50"]) if half else "-", ms(half["p99"]) if half else "-", str(half["rate"]) if half else "-",
        ms(s["rtt_p99_ms"]) if s else "-",
        cpu, procs_note,
    ]


def table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def render(res):
    rows = res["rows"]
    d, sg, k = rows["direct"], rows["stirgate"], rows["kamailio"]
    for r in (d, sg, k):
        r["max_step"] = max((s for s in r["steps"] if s["ok"] and s["rate"] == r["max"]), key=lambda s: s["calls"],
                            default=None)
    half = res["half"]
    hs, hd, hk = half["sg"], half["direct"], half["kamailio"]
    sg_peak = f"{res['sg_hwm'] / 1024:.1f} MiB VmHWM"
    k_peak_pss = max((s.get("pss_peak", 0) for s in k["steps"]), default=0)
    k_peak = f"{k_peak_pss / 1024:.1f} MiB PSS ({res['kam_procs']} procs; VmHWM sum {res['kam_hwm'] / 1024:.0f} MiB)"
    headers = ["path", "max calls/s (0 failed)", "ratio to direct", "setup p50 ms", "setup p99 ms", "at calls/s",
               "p99 ms at max (1 ms res.)", "CPU s / 1,000 calls", "peak memory"]
    body = [
        row_line("SIPp -> SIPp (direct)", d, d["max"], hd, "(SIPp only)"),
        row_line("SIPp -> stirgate -> SIPp", sg, d["max"], hs, sg_peak),
        row_line("SIPp -> Kamailio+secsipid -> SIPp", k, d["max"], hk, k_peak),
    ]
    main_table = table(headers, body)

    # Targets.
    ratio = sg["max"] / d["max"] if d["max"] else 0
    pushed = d.get("first_fail") is not None
    sgs = sg["max_step"]
    cpu_us = sgs["cpu_us_per_call"] if sgs else None
    sipp_added = (hs["p99"] - hd["p99"]) if hs["p99"] is not None and hd["p99"] is not None else None
    # Read on the wire when the kit captured it (bench/lib/wire.py): SIPp's own times carry the
    # harness's scheduling, the loopback timestamps only what happened inside stirgate.
    w = half.get("wire")
    on_wire = bool(w and w["paired"] and w["paired"] >= 0.99 * hs["calls"])
    added = w["p99"] if on_wire else sipp_added
    after = half.get("after_kib")
    burst_per_call = max(0, after - half["idle_warm_kib"]) / hs["calls"] if after and hs["calls"] else None
    linger = res.get("linger")
    # The target is read on the steady-load slope (kit.linger_slope) when the kit measured it;
    # the 5 s-step figure also counts the calls in progress and what the allocator kept of them.
    per_call = linger["kib_per_call"] if linger and linger.get("kib_per_call") is not None else burst_per_call
    kam_ratio = sg["max"] / k["max"] if k["max"] else None
    peak_step = next((s for s in sg["steps"] if s["rate"] == PEAK_RATE and s.get("hwm")), None)
    offered = res.get("peak_offered") if not peak_step else None
    peak_mib = (peak_step or offered)["hwm"] / 1024 if (peak_step or offered) else None
    # Steady state at PEAK_RATE, scaled from the steady-load step: what it held above the warm
    # baseline after 31 s (calls in progress + every finished call still lingering), times
    # PEAK_RATE / its rate, plus the 64*T1 - t2 seconds of finished calls still to come.
    projected = None
    if linger and linger.get("kib_per_call") is not None:
        base = half["idle_warm_kib"]
        scale = PEAK_RATE / linger["rate"]
        projected = (base + (linger["rss2"] - base) * scale
                     + PEAK_RATE * max(0.0, 32 - linger["t2"]) * linger["kib_per_call"]) / 1024
    idle_pct = half["idle_cpu"] * 100 if half.get("idle_cpu") is not None else None
    verdict = lambda ok: "PASS" if ok else "FAIL"
    targets = [
        ["stirgate max / direct ceiling", f">= {TARGET_RATIO}", f"{ratio:.2f}",
         verdict(ratio >= TARGET_RATIO) if pushed else
         f"NO VERDICT (the direct ceiling passed every step up to {d['max']} calls/s: not pushed to its limit)"],
        ["stirgate max / Kamailio+secsipid max", f">= {TARGET_KAMAILIO:g}", f(kam_ratio, "{:.2f}"),
         verdict(kam_ratio is not None and kam_ratio >= TARGET_KAMAILIO)],
        ["CPU per verified + forwarded call (at max)", f"<= {TARGET_CPU_US} us", f(cpu_us, "{:.0f} us"),
         verdict(cpu_us is not None and cpu_us <= TARGET_CPU_US)],
        [f"added setup p99 at {half['rate']} calls/s (half of max)", f"< {TARGET_ADDED_P99_MS} ms",
         f(added, "{:.3f} ms"),
         # A direct path slower than the target itself means the machine stalled SIPp during the
         # step: the difference then says nothing about stirgate.
         verdict(added < TARGET_ADDED_P99_MS) + " (loopback timestamps"
         + (f"; sip.realtime_priority {half['realtime']}" if half.get("realtime") else "")
         + (f"; the callee's own hop in the same step: p99 {ms(w['callee_p99'])} ms" if w.get("callee_p99") is not None
            else "") + ")" if on_wire
         else "NO VERDICT (direct p99 itself over target: machine noise)"
         if hd["p99"] is not None and hd["p99"] >= TARGET_ADDED_P99_MS
         else verdict(added is not None and added < TARGET_ADDED_P99_MS)],
    ]
    # The same step at the other scheduling (kit: LATENCY_REALTIME), as its own row: what the
    # added time is when stirgate's threads do not wait for the harness's time slices.
    other = half.get("other")
    ow = other and other.get("wire")
    if ow and ow.get("paired") and ow["paired"] >= 0.99 * other["sg"]["calls"]:
        rt = other.get("realtime")
        targets.append([f"same, with sip.realtime_priority = {rt}" if rt else "same, at normal scheduling",
                        f"< {TARGET_ADDED_P99_MS} ms", f(ow["p99"], "{:.3f} ms"),
                        verdict(ow["p99"] < TARGET_ADDED_P99_MS)
                        + f" (loopback timestamps; {f(other['sg'].get('cpu_us_per_call'), '{:.0f}')} us CPU per call)"])
    targets += [
        ["idle CPU (no calls)", f"< {TARGET_IDLE_PCT} % of a core", f(idle_pct, "{:.3f} %"),
         verdict(idle_pct is not None and idle_pct < TARGET_IDLE_PCT)],
        ["memory per finished call (transactions lingering)", f"<= {TARGET_KIB_PER_CALL} KiB",
         f(per_call, "{:.2f} KiB"),
         verdict(per_call is not None and per_call <= TARGET_KIB_PER_CALL and (not linger or linger["ok"]))],
        [f"peak RSS by the {PEAK_RATE} calls/s step", f"< {TARGET_PEAK_MIB} MiB", f(peak_mib, "{:.1f} MiB"),
         verdict(peak_mib is not None and peak_mib < TARGET_PEAK_MIB) if peak_step else
         verdict(peak_mib < TARGET_PEAK_MIB and projected is not None and projected < TARGET_PEAK_MIB)
         + f" (offered; {offered['successful']}/{offered['calls']} calls ok; steady state projected "
         f"{f(projected, '{:.0f}')} MiB)" if offered and peak_mib is not None else
         f"NO VERDICT (the ladder did not reach {PEAK_RATE} calls/s)"],
    ]
    targets_table = table(["target", "wanted", "measured", "result"], targets)

    cold_s, cold_k = res["cold_stirgate"], res["cold_kamailio"]
    cold_rows = []
    for name, key in (("stirgate", "stirgate"), ("Kamailio+secsipid", "kamailio")):
        for how, c in (("all at once", res["cold_" + key]), ("within 1 s", res["cold1s_" + key])):
            cold_rows.append([name, how, f"{c['successful']}/{c['calls']}", str(c.get("passed", "(callee checks stamp)")),
                              str(c["fetches"]), ms(c["p50"]), ms(c["p99"]), ms(c["max"]), str(c["retrans"]),
                              str(c["udp_drops"])])
    cold_table = table(["proxy", "launched", "calls ok", "TN-Validation-Passed", "x5u fetches", "setup p50 ms",
                        "p99 ms", "max ms", "SIPp retrans", "UDP drops"], cold_rows)

    stdout = "\n".join([
        "", main_table, "", targets_table, "",
        f"1,000 simultaneous calls, cold x5u: stirgate {cold_s['successful']}/1000 ok with {cold_s['fetches']} fetch(es), "
        f"max setup {ms(cold_s['max'])} ms; Kamailio {cold_k['successful']}/1000 ok with {cold_k['fetches']} fetch(es), "
        f"max setup {ms(cold_k['max'])} ms",
        "",
    ])

    m = res["machine"]
    md = []
    md.append("# stirgate load kit results\n")
    md.append("Generated by `bench/run.sh` (bench/lib/kit.py + report.py). Do not edit by hand: run the kit again.\n")
    md.append(f"- date: {m['date']}; mode: {'QUICK=1' if res['quick'] else 'full'}; whole run {res['wall_s']:.0f} s")
    md.append(f"- machine: {m['cpu']}; nproc {m['nproc']}; {m['uname']}; load average at start: {m['load']}")
    md.append(f"- tools: {m['sipp']}; {m['kamailio']}; {m['secsipid']}; {m['rustc']}; {m['stirgate']}")
    md.append(f"- source: {m['git']}")
    md.append("- memory (`free -m` at start):\n")
    md.append("```\n" + m["free"] + "\n```\n")
    md.append("The machine is shared (other builds run beside the kit), so absolute numbers are noisy: compare "
              "the ratios, which are measured against the direct ceiling of the same run.\n")
    md.append("## Summary\n")
    md.append(main_table + "\n")
    md.append(
        "- **max calls/s**: highest rate of the ladder "
        f"({', '.join(map(str, res['ladder']))} calls/s, then {'a bisection' if True else ''} between the last good "
        f"and first failed rate) where every call of a {res['step_s']:g} s step succeeded: INVITE -> 200 -> ACK, "
        f"{res['hold_ms']} ms hold, BYE -> 200, no SIPp failure, SIPp's p99 setup time under 500 ms (T1: past it "
        "calls only succeed through retransmissions), and for stirgate every call counted in "
        "`stirgate_verifications_total{verstat=\"TN-Validation-Passed\"}` and stamped `verstat=TN-Validation-Passed` "
        "(the callee scenario fails unstamped calls). For Kamailio the callee requires the header the config adds "
        "only after `secsipid_check_identity` succeeded. A step that fails is run once more, and the rate fails "
        "only when both runs do (every row alike): one stall of this shared machine does not set a maximum, nor the "
        "direct ceiling the ratios are read against. Every SIPp runs with 4 MiB socket buffers (`-buff_size`, as "
        "stirgate's own UDP default): with SIPp's 64 KiB default a middle that forwards a burst made SIPp's own "
        "sockets drop datagrams while the middle's had dropped none.")
    md.append(
        f"- **setup p50/p99**: INVITE sent -> 200 received, per call, from SIPp's `-trace_shortmsg` timestamps "
        f"(microseconds) in a separate {half['seconds']:g} s step at the rate in *at calls/s* (half of stirgate's "
        "maximum, the same for all rows unless Kamailio's maximum is lower). *p99 at max* is SIPp's response time "
        "`setup` (`-trace_rtt`, whole milliseconds) in the highest passing ladder step.")
    md.append("- **CPU s / 1,000 calls**: utime + stime from `/proc/PID/stat` of the process under test (all Kamailio "
              "processes: main, UDP worker, timers) over the highest passing step, divided by its calls.")
    md.append("- **peak memory**: stirgate `VmHWM` (`/proc/PID/status`) at the end of its ladder; Kamailio: peak of "
              "the summed PSS (`/proc/PID/smaps_rollup`, shared memory counted once) sampled during its ladder, and "
              "the sum of the processes' `VmHWM` (which counts the shared memory once per process).\n")
    md.append("## Targets\n")
    md.append(targets_table + "\n")
    bound = ratio_bound(res, cpu_us)
    if bound:
        md.append(bound)
    if on_wire:
        md.append(
            f"- added setup p99 = per call, (stirgate's forwarded INVITE - the caller's INVITE reaching it) + (the 200 "
            f"to the caller - the callee's 200 reaching it), from the kernel's loopback timestamps (tcpdump on lo, "
            f"INVITEs and 200s of stirgate's port, legs paired by the Identity header it carries) during the "
            f"{half['rate']} calls/s step of the fresh stirgate: {w['paired']} of {w['seen']} calls paired, "
            f"{w['drops']} packets dropped by the capture. Added p50 {ms(w['p50'])} ms, p99 {ms(w['p99'])} ms, max "
            f"{ms(w['max'])} ms; INVITE in -> out p50 {ms(w['invite_p50'])} / p99 {ms(w['invite_p99'])} ms (the "
            f"PASSporT verify is in it); 200 in -> out p50 {ms(w['answer_p50'])} / p99 {ms(w['answer_p99'])} ms."
            + (f" The floor under the same load, from the same capture: the callee's own hop (stirgate's INVITE "
               f"out -> the callee's 200 in; SIPp's UAS, which does nothing but answer) took p50 "
               f"{ms(w['callee_p50'])} / p99 {ms(w['callee_p99'])} ms, so on this machine one do-nothing hop "
               f"already has a p99 of {ms(w['callee_p99'])} ms and stirgate's setup is two hops."
               if w.get("callee_p99") is not None else "")
            + realtime_note(half) +
            f" SIPp's own figures, which include SIPp's scheduling on the shared cores: stirgate p99 "
            f"{ms(hs['p99'])} ms - direct p99 {ms(hd['p99'])} ms = {f(sipp_added, '{:.3f}')} ms."
            + (f" For scale, one hop through a callee that does nothing but answer (SIPp's UAS in the direct "
               f"step, INVITE in -> 200 out on the wire): p50 {ms(hd['uas_hop']['p50'])} / p99 "
               f"{ms(hd['uas_hop']['p99'])} ms; stirgate's setup is two hops (the INVITE and the 200)."
               if hd.get("uas_hop") else ""))
    else:
        md.append(
            f"- added setup p99 = stirgate p99 ({ms(hs['p99'])} ms) - direct p99 ({ms(hd['p99'])} ms), both at "
            f"{half['rate']} calls/s in the same run (no packet capture: tcpdump not installed).")
    if linger:
        md.append(
            f"- memory per finished call = the growth of VmRSS of a freshly started stirgate under a steady "
            f"{linger['rate']} calls/s load ({linger['seconds']:g} s step{'' if linger['ok'] else ', which FAILED'}) "
            f"from {linger['t1']:.1f} s ({linger['rss1']} KiB) to {linger['t2']:.1f} s ({linger['rss2']} KiB), divided "
            f"by the {linger['rate'] * (linger['t2'] - linger['t1']):.0f} calls that ended in between. By then the calls "
            "in progress are as many as they get; every call that ends stays in its transactions 64*T1 = 32 s on UDP "
            "(RFC 3261 Timer J / RFC 6026 Timer L/M), and none of them has gone yet, so the slope is what one finished "
            "call keeps (its PASSporT in the replay cache included).")
    md.append(
        f"- {'after a burst: ' if linger else 'memory per finished call = '}"
        f"{f'{burst_per_call:.2f} KiB per call = ' if linger and burst_per_call is not None else ''}"
        f"(VmRSS 1 s after a {half['seconds']:g} s step at {half['rate']} calls/s on a "
        f"freshly started stirgate ended, {after} KiB) - (its VmRSS after start-up and one warm-up call that fetched "
        f"the certificate, {half['idle_warm_kib']} KiB), divided by the {hs['calls']} calls of the step. Every call "
        "has ended by then, and every one still lingers in its transactions, which stirgate keeps 64*T1 = 32 s on "
        "UDP (RFC 3261 Timer J / RFC 6026 Timer L/M). Memory the allocator kept from the calls in progress counts "
        f"too. (Peak VmRSS during the step: {hs['rss_peak']} KiB; idle right after start-up: {half['idle_kib']} KiB; "
        f"VmHWM of that process: {half['fresh_hwm']} KiB.)")
    md.append(
        f"- idle CPU = utime + stime of that fresh process over {half.get('idle_s', 0):g} s with no calls, before "
        "its warm-up call.")
    md.append(
        f"- peak RSS = VmHWM of the ladder's stirgate at the end of its {PEAK_RATE} calls/s step (one process through "
        "every lower step of the ladder before it)"
        + (f". The ladder stopped below {PEAK_RATE} calls/s, so that step was offered after it to the same process "
           f"anyway: {offered['successful']} of {offered['calls']} calls completed, {offered['failed']} failed, "
           f"{offered['retrans']} SIPp retransmissions." if offered else ".")
        + (f" Steady state projected at {PEAK_RATE} calls/s with every finished call lingering its full 32 s: "
           f"{projected:.0f} MiB = warm baseline {half['idle_warm_kib']} KiB + (steady-load RSS at "
           f"{linger['t2']:.1f} s, {linger['rss2']} KiB, minus that baseline) x {PEAK_RATE}/{linger['rate']} + "
           f"{PEAK_RATE} calls/s x {max(0.0, 32 - linger['t2']):.1f} s still to linger x {linger['kib_per_call']:.2f} "
           "KiB." if projected is not None else ""))
    md.append(
        f"- the direct latency step was run {half.get('direct_tries', 1)} time(s) (again while its p99 was 1 ms or "
        "more, lowest p99 kept: a stalled harness step would hide what stirgate adds).\n")

    md.append("## 1,000 simultaneous calls on a cold x5u\n")
    md.append(
        "1,000 calls launched at once (`-r 100000 -m 1000 -l 1000`), each with a fresh Identity whose x5u is a URL "
        "no one had fetched before; fetches counted in the certificate server's request log. stirgate's "
        "`stir.verify_budget_ms` is 2000 ms: past it a call would go on as No-TN-Validation and be refused by this "
        "config, so *TN-Validation-Passed* = 1000 means every call was verified within the budget. "
        "Kamailio's secsipid cache is a file per URL, emptied before this test. Each burst is also run as "
        "1,000 calls spread over one second (`-r 1000`). *UDP drops* is the growth of `RcvbufErrors` in "
        "/proc/net/snmp during the test (datagrams dropped because a socket's receive buffer was full; "
        "system-wide, so other loopback traffic on the machine counts too); a dropped INVITE is retransmitted "
        "by SIPp after 0.5, 1, 2 s..., and a call with no answer for 5 s counts as failed.\n")
    md.append(cold_table + "\n")

    md.append("## Sanity: the verifiers really verify\n")
    for name, key in (("stirgate", "sanity_stirgate"), ("Kamailio+secsipid", "sanity_kamailio")):
        md.append(f"- {name}: " + "; ".join(f"{k}: {'yes' if v else '**NO**'}" for k, v in res[key].items()))
    md.append(
        "\n(*another key*: signed with the test intermediate's key, x5u = the real chain; *untrusted*: signed with "
        "the leaf key, x5u = a self-signed certificate of that key, so only the chain check can refuse it. "
        "Kamailio runs libsecsipid with `CertVerify=5`: validity period + chain to `certs/test-sti-ca.pem`. "
        "secsipid does not compare orig/dest with From/To; stirgate does.)")
    md.append("- stirgate runs on its default `[limits]`: SIPp sends from one loopback address, which the defaults "
              "trust (`limits.trust_loopback`), so a load test on defaults gets no 503.\n")

    # Scaling with shards.
    sh = res.get("shards")
    if sh:
        one = sh["one"]
        one_step = max((s for s in one["steps"] if s["ok"] and s["rate"] == one["max"]), key=lambda s: s["calls"],
                       default=None)
        md.append("## Scaling with cores\n")
        md.append(table(
            ["sip.shards", "max calls/s (0 failed)", "first failed rate", "CPU us/call at max", "ratio to direct"],
            [[f"{sh['per_core']} (0 = one per core, the default)", str(sg["max"]), str(sg.get("first_fail") or "-"),
              f(cpu_us, "{:.0f}"), f"{ratio:.2f}"],
             ["1", str(one["max"]), str(one.get("first_fail") or "-"),
              f(one_step.get("cpu_us_per_call") if one_step else None, "{:.0f}"),
              f"{one['max'] / d['max']:.2f}" if d["max"] else "-"]]) + "\n")
        md.append("The same ladder, the same SIPp pair, one stirgate process each. On this machine SIPp's caller "
                  "and callee share the two cores with stirgate, so the per-core figure is bounded by the harness "
                  "too: compare CPU per call, which does not depend on who else runs.\n")

    rd = res.get("redirect")
    if rd:
        rd_step = max((s for s in rd["steps"] if s["ok"] and s["rate"] == rd["max"]), key=lambda s: s["calls"],
                      default=None)
        md.append("## Redirect mode against the B2BUA's forward route\n")
        md.append(table(
            ["mode", "max calls/s (0 failed)", "first failed rate", "CPU us/call at max", "ratio to direct"],
            [["B2BUA: verify + forward (INVITE, 200, ACK, BYE on both legs)", str(sg["max"]),
              str(sg.get("first_fail") or "-"), f(cpu_us, "{:.0f}"), f"{ratio:.2f}"],
             ["redirect: verify + 302 (INVITE, 302, ACK)", str(rd["max"]), str(rd.get("first_fail") or "-"),
              f(rd_step.get("cpu_us_per_call") if rd_step else None, "{:.0f}"),
              f"{rd['max'] / d['max']:.2f}" if d["max"] else "-"]]) + "\n")
        md.append("Redirect mode (docs/redirect-mode.md) with SIPp as the asking proxy: every INVITE carries a "
                  "fresh Identity and succeeds only when the 302's Contact says `verstat=TN-Validation-Passed` "
                  "and stirgate counted it as passed. It keeps no call and has no second leg, so it is the "
                  "verification's own throughput through SIP.\n")

    # Ladder steps.
    md.append("## stirgate ladder steps\n")
    sc = []
    for s in sorted(sg["steps"], key=lambda s: s["rate"]):
        sc.append([str(s["rate"]), s["label"], "yes" if s["ok"] else "no", f"{s['successful']}/{s['calls']}",
                   f(s.get("cpu_us_per_call"), "{:.1f}"), f(s.get("rss_peak", 0) / 1024, "{:.1f}"),
                   ms(s["p50"]), ms(s["p99"]), str(s["retrans"])])
    md.append(table(["calls/s", "step", "0 failed", "calls ok", "CPU us/call", "peak RSS MiB in step",
                     "setup p50 ms (1 ms res.)", "p99 ms", "SIPp retrans"], sc) + "\n")
    md.append("RSS here is one long-lived process through the whole ladder (the allocator keeps freed memory), so "
              "it shows the high-water mark growing with the rate, not memory per call; see Targets for that.\n")

    md.append("## Raw steps\n")
    raw = []
    for name, r in (("direct", d), ("stirgate", sg), ("kamailio", k)):
        for s in r["steps"]:
            raw.append([name, s["label"], str(s["rate"]), str(s["calls"]), str(s["successful"]), str(s["failed"]),
                        str(s["exit"]), str(s.get("passed", "-")), str(s["retrans"]), f"{s['wall']:.1f}",
                        f(s.get("cpu_s"), "{:.2f}"), f(s.get("rss_peak"), "{:.0f}"), ms(s["p50"]), ms(s["p99"]),
                        str(s["udp_drops"])])
    for name, s in (("stirgate", hs), ("direct", hd), ("kamailio", hk)):
        raw.append([name, "latency (us)", str(s["rate"]), str(s["calls"]), str(s["successful"]), str(s["failed"]),
                    str(s["exit"]), str(s.get("passed", "-")), str(s["retrans"]), f"{s['wall']:.1f}",
                    f(s.get("cpu_s"), "{:.2f}"), f(s.get("rss_peak"), "{:.0f}"), ms(s["p50"]), ms(s["p99"]),
                        str(s["udp_drops"])])
    md.append(table(["row", "step", "calls/s", "calls", "ok", "failed", "sipp exit", "verified", "retrans", "wall s",
                     "CPU s", "peak RSS KiB", "p50 ms", "p99 ms", "UDP drops"], raw) + "\n")
    md.append(f"Identity values made with `stirgate sign`: {res['sign']['count']} in {res['sign']['seconds']:.0f} s "
              "(each step's values are signed just before the step; stirgate gets a distinct value for every call, "
              "the other rows cycle through a pool signed just before their row).\n")

    if res.get("profile"):
        p = res["profile"]
        md.append(f"## CPU profile of stirgate at {p['rate']} calls/s (about 70 % of its maximum)\n")
        md.append(f"`perf record -e cpu-clock -F 249 --call-graph dwarf,8192` on the stirgate process during a "
                  f"{p['seconds']:g} s step ({p['samples']} samples; software clock: this VM exposes no hardware "
                  "counters)." + ("\n" if p.get("groups") else " Self time per symbol:\n"))
        if p.get("groups"):
            cpu = p["step"].get("cpu_us_per_call")
            md.append("Self time by where it goes" + (f" (of {cpu:.0f} us CPU per call in that step)" if cpu else "")
                      + ":\n")
            md.append(table(["where", "share of samples", "us per call"],
                            [[name, f"{pct:.1f} %", f"{cpu * pct / 100:.0f}" if cpu else "-"]
                             for name, pct in p["groups"]]) + "\n")
            if cpu:
                # The CPU target's escape clause reads here: what is left once the kernel's share and
                # the signature check are taken out is the cost of stirgate's own code.
                fixed = sum(pct for name, pct in p["groups"] if name.startswith(("kernel", "ECDSA")))
                md.append(f"Outside the kernel and the ECDSA verify: {cpu * (100 - fixed) / 100:.0f} us per call "
                          f"({100 - fixed:.1f} % of the samples), against the {TARGET_CPU_US} us target for the "
                          "whole call.\n")
            md.append("Per symbol:\n")
        md.append("```\n" + "\n".join(p["self"][:25]) + "\n```\n")
        md.append("Including callees (thread-start and tokio scheduler frames left out):\n")
        md.append("```\n" + "\n".join(p["children"][:30]) + "\n```\n")

    media = res.get("media")
    if media:
        md.append("## Media benchmark (bench/media/run.sh " + media["args"] + ")\n")
        if media["exit"] == 0:
            md.append("```\n" + media["stdout"] + "\n```\n")
        else:
            md.append(f"Failed (exit {media['exit']}):\n\n```\n{media['stdout'][-2000:]}\n{media['stderr_tail']}\n```\n")
    return stdout, "\n".join(md) + "\n"


def ratio_bound(res, cpu_us):
    """What the CPU shares allow the ratio to reach: SIPp's caller and callee run on the same cores
    as the middle, so at the direct ceiling they cost at most cores / ceiling per call, and a
    middle that adds X us per call can reach at most S / (S + X) of that ceiling."""
    d = res["rows"]["direct"]
    cores = (res.get("shards") or {}).get("per_core")
    if not cores or not d.get("max") or not cpu_us or d.get("first_fail") is None:
        return None
    s_us = cores * 1e6 / d["max"]
    need = s_us * (1 / TARGET_RATIO - 1)
    text = (f"- **what bounds the ratio**: SIPp's caller and callee share the {cores} cores with the middle. At the "
            f"direct ceiling they spend at most {cores} cores / {d['max']} calls/s = {s_us:.0f} us of CPU per call "
            f"together, so a middle that spends X us per call on the same cores reaches at most S / (S + X) of that "
            f"ceiling: {s_us / (s_us + cpu_us):.2f} at stirgate's {cpu_us:.0f} us. A ratio of {TARGET_RATIO} needs "
            f"X <= {need:.0f} us per call")
    p = res.get("profile")
    if p and p.get("groups") and p["step"].get("cpu_us_per_call"):
        fixed = sum(pct for name, pct in p["groups"] if name.startswith(("kernel", "ECDSA")))
        text += (f"; the kernel's share (the UDP datagrams of both legs) and the one ECDSA P-256 verify alone take "
                 f"{p['step']['cpu_us_per_call'] * fixed / 100:.0f} us per call in the profile below")
    return text + ".\n"


def realtime_note(half):
    """How the latency step's stirgate was scheduled, and the same step at the other setting."""
    def sched(rt, threads):
        if not rt:
            return "`sip.realtime_priority` = 0 (normal scheduling, the default)"
        rr, total = threads or (0, 0)
        return f"`sip.realtime_priority` = {rt} ({rr} of its {total} threads under SCHED_RR)"

    note = f" stirgate ran with {sched(half.get('realtime'), half.get('rr_threads'))}."
    o = half.get("other")
    w = o and o.get("wire")
    if w:
        cpu, cpu_o = half["sg"].get("cpu_us_per_call"), o["sg"].get("cpu_us_per_call")
        note += (f" The same step with a stirgate at {sched(o['realtime'], o.get('rr_threads'))}: added p50 "
                 f"{ms(w['p50'])} / p99 {ms(w['p99'])} ms (INVITE in -> out p99 {ms(w['invite_p99'])}, 200 in -> out "
                 f"p99 {ms(w['answer_p99'])} ms; the callee's own hop p99 {ms(w.get('callee_p99'))} ms), "
                 f"{f(cpu_o, '{:.0f}')} us CPU per call against {f(cpu, '{:.0f}')} "
                 f"above. A SIP thread under SCHED_RR runs the moment its datagram arrives instead of waiting for "
                 f"the SIPps' time slices, and preempts them at every message.")
    return note
