"""The markdown table: pgwarden and Patroni side by side, median (range) over the runs, the
ratio, and each target with met / MISSED."""
import statistics

PRIMARY_TOL = 0.1  # = scenarios.PRIMARY_TOLERANCE_S
SLOW_IDLE = 5      # = scenarios.SLOW_IDLE_S


def _vals(results, daemon, profile, scen, key):
    out = []
    for r in results.get(daemon, {}).get(profile, {}).get("runs", []):
        v = r.get(scen, {}).get(key)
        if v is not None:
            out.append(v)
    return out


def _fmt(vals, unit="s", digits=2):
    if not vals:
        return "not run"
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:.{digits}f} {unit}".strip()
    return f"{med:.{digits}f} {unit} ({min(vals):.{digits}f}–{max(vals):.{digits}f})".replace("  ", " ")


def _ratio(a, b):
    if not a or not b:
        return "–"
    ma, mb = statistics.median(a), statistics.median(b)
    if mb == 0:
        return "–"
    return f"{ma / mb:.2f}×"


def _count_runs(results, daemon, profile):
    return len(results.get(daemon, {}).get(profile, {}).get("runs", []))


def _verdict(ok):
    return "–" if ok is None else ("met" if ok else "**MISSED**")


def _med_text(vals, digits=2):
    return "–" if not vals else f"{statistics.median(vals):.{digits}f}"


def build(results, env, command, profiles, method=None):
    method = method or {}
    lines = []
    lines.append(f"Command: `{command}`  ")
    lines.append("Environment: " + "; ".join(f"{k} {v}" for k, v in env.items()) + "  ")
    lines.append("Figures: median over the runs, (min–max) when there is more than one run. "
                 "Ratio = pgwarden / Patroni.  ")
    wrk_cmd = method.get("wrk", "wrk -t1 -c16")
    why = (f" (one wrk thread, so that on this {env.get('CPU', '?').split('×')[-1].strip()}-CPU "
           f"machine wrk does not take every core from the daemon)" if "-t1 " in wrk_cmd else "")
    lines.append(f"Method (details in tests/bench/README.md): REST with `{wrk_cmd}`, the same "
                 f"for both daemons, one daemon at a time{why}. "
                 f"/primary against writable: a probe per node every 50 ms, a tiny INSERT on its "
                 f"own connection to that node then its /primary; tolerance {PRIMARY_TOL:.1f} s "
                 f"(one /primary monitor interval, two probe intervals). Slow action: POST "
                 f"/reinitialize of a replica (pg_basebackup of a {method.get('slow_mb', 256)} MB "
                 f"database), latencies from a sequential poller in its own process, a new "
                 f"connection per request, one request every 5 ms round-robin over the targets.")
    lines.append("")
    rows = []
    missed = []

    def text_row(metric, profile, pg_text, pa_text, target="", ok=None):
        v = _verdict(ok)
        if ok is False:
            missed.append(f"{metric} [{profile}]: pgwarden {pg_text}, Patroni {pa_text} "
                          f"(target: {target})")
        rows.append(f"| {metric} | {profile} | {pg_text} | {pa_text} | – | {target} | {v} |")

    def row(metric, profile, pg, pa, unit="s", digits=2, target="", ok=None, ratio=True):
        v = _verdict(ok)
        if ok is False:
            missed.append(f"{metric} [{profile}]: pgwarden {_fmt(pg, unit, digits)}, "
                          f"Patroni {_fmt(pa, unit, digits)} (target: {target})")
        rows.append(f"| {metric} | {profile} | {_fmt(pg, unit, digits)} | {_fmt(pa, unit, digits)} | "
                    f"{_ratio(pg, pa) if ratio else '–'} | {target} | {v} |")

    med = lambda v: statistics.median(v) if v else None  # noqa: E731

    for prof in profiles:
        ttl = {"default": 30, "fast": 20}[prof]
        n_pg, n_pa = _count_runs(results, "pgwarden", prof), _count_runs(results, "patroni", prof)
        pf = f"{prof} ({n_pg}/{n_pa} runs)"
        g = lambda d, s, k: _vals(results, d, prof, s, k)  # noqa: E731

        a, b = g("pgwarden", "switchover", "window_s"), g("patroni", "switchover", "window_s")
        row("Switchover: request → first write on new primary", pf, a, b,
            target="≤ 1/3 of Patroni", ok=(med(a) <= med(b) / 3) if a and b else None)
        a, b = g("pgwarden", "switchover", "stream_s"), g("patroni", "switchover", "stream_s")
        row("Switchover: request → every replica streams from new primary", pf, a, b,
            target="≤ 2 s", ok=(max(a) <= 2.0) if a else None)
        a, b = g("pgwarden", "postmaster_crash", "window_s"), g("patroni", "postmaster_crash", "window_s")
        row("Postmaster crash (kill -9): no writes", pf, a, b, target="≤ 2 s",
            ok=(max(a) <= 2.0) if a else None)
        a, b = g("pgwarden", "node_crash", "total_s"), g("patroni", "node_crash", "total_s")
        row("Node crash (kill -9 daemon + postmaster): no writes, total", pf, a, b,
            target=f"≤ ttl + 1 s = {ttl + 1} s", ok=(max(a) <= ttl + 1) if a else None)
        a, b = g("pgwarden", "node_crash", "lease_wait_s"), g("patroni", "node_crash", "lease_wait_s")
        row("Node crash: … waiting for the lease to expire", pf, a, b, target="(lease)", ok=None)
        a, b = g("pgwarden", "node_crash", "after_expiry_s"), g("patroni", "node_crash", "after_expiry_s")
        row("Node crash: … lease expiry → writable", pf, a, b, target="≤ 0.5 s",
            ok=(max(a) <= 0.5) if a else None)
        a, b = g("pgwarden", "graceful_stop", "window_s"), g("patroni", "graceful_stop", "window_s")
        row("Graceful stop (SIGTERM daemon): no writes", pf, a, b, target="≤ 1/3 of Patroni",
            ok=(med(a) <= med(b) / 3) if a and b else None)
        a, b = g("pgwarden", "node_crash", "rejoin_s"), g("patroni", "node_crash", "rejoin_s")
        row("Rejoin after node crash: restart → streams from new primary", pf, a, b, target="", ok=None)
        a, b = g("pgwarden", "graceful_stop", "rejoin_s"), g("patroni", "graceful_stop", "rejoin_s")
        row("Rejoin after graceful stop: restart → streams from new primary", pf, a, b, target="", ok=None)
        for scen, label in (("switchover", "switchover"), ("postmaster_crash", "postmaster crash"),
                            ("node_crash", "node crash"), ("graceful_stop", "graceful stop")):
            a, b = g("pgwarden", scen, "lost_writes"), g("patroni", scen, "lost_writes")
            row(f"Lost acknowledged writes, {label} (sum over runs)", pf,
                [sum(a)] if a else [], [sum(b)] if b else [], unit="", digits=0,
                target="≤ Patroni (per run)",
                ok=(sum(a) / len(a) <= sum(b) / len(b)) if a and b else None, ratio=False)
        # /primary against "PostgreSQL accepts writes", per node (NodeProbe)
        tol = PRIMARY_TOL
        for scen, label, old in (("switchover", "Switchover", "target"),
                                 ("graceful_stop", "Graceful stop", "target"),
                                 ("node_crash", "Node crash", None),
                                 ("postmaster_crash", "Postmaster crash", "info")):
            a = g("pgwarden", scen, "new_200_before_writable_s")
            b = g("patroni", scen, "new_200_before_writable_s")
            row(f"{label}, new primary: /primary 200 before writable (> 0: 200 too early)", pf,
                a, b, target=f"≤ {tol:.1f} s", ok=(max(a) <= tol) if a else None, ratio=False)
            if old is None:
                continue
            a = g("pgwarden", scen, "old_200_after_refused_s")
            b = g("patroni", scen, "old_200_after_refused_s")
            if old == "target":
                row(f"{label}, old primary: /primary still 200 after a refused write "
                    f"(> 0: 200 too late)", pf, a, b, target=f"≤ {tol:.1f} s",
                    ok=(max(a) <= tol) if a else None, ratio=False)
            else:
                row(f"{label}, old primary: /primary still 200 after the crash refused a write "
                    f"(detection)", pf, a, b, target="(a crash is not foreseeable)", ok=None,
                    ratio=False)

        # REST answers while one node's HA loop runs a slow action (POST /reinitialize)
        a, b = g("pgwarden", "slow_action", "action_s"), g("patroni", "slow_action", "action_s")
        row("Slow action: POST /reinitialize of a replica → it streams again", pf, a, b,
            target="(duration)", ok=None)
        for label, expect_200 in (("replica /health", False), ("replica /patroni", True),
                                  ("leader /primary", True)):
            def st(d, phase, key, label=label):
                return [x[key] for x in g(d, "slow_action", f"{phase} {label}")
                        if isinstance(x, dict) and x.get(key) is not None]
            a, b = st("pgwarden", "slow", "p99_ms"), st("patroni", "slow", "p99_ms")
            row(f"Slow action: {label} p99 latency during the action", pf, a, b, unit="ms",
                target="< 5 ms", ok=(max(a) < 5) if a else None)
            trip = lambda d, phase: (  # noqa: E731
                "not run" if not st(d, phase, "n") else
                f"{_med_text(st(d, phase, 'p50_ms'))} / {_med_text(st(d, phase, 'p99_ms'))} / "
                f"{_med_text(st(d, phase, 'max_ms'))} ms")
            text_row(f"Slow action: {label} p50 / p99 / max during the action (medians)", pf,
                     trip("pgwarden", "slow"), trip("patroni", "slow"))
            text_row(f"Slow action: {label} p50 / p99 / max idle, {SLOW_IDLE} s before (medians)",
                     pf, trip("pgwarden", "idle"), trip("patroni", "idle"))
            errs = lambda d: (  # noqa: E731
                "not run" if not st(d, "slow", "n") else
                f"{sum(st(d, 'slow', 'errors'))} of {sum(st(d, 'slow', 'n'))}")
            ea = st("pgwarden", "slow", "errors")
            text_row(f"Slow action: {label} errors during the action (no answer"
                     f"{', or not 200' if expect_200 else ''})", pf, errs("pgwarden"),
                     errs("patroni"), target="0", ok=(sum(ea) == 0) if ea else None)

        scens = ("switchover", "postmaster_crash", "node_crash", "graceful_stop", "slow_action")
        a = [sum(g("pgwarden", s, "split_brain")) for s in scens]
        b = [sum(g("patroni", s, "split_brain")) for s in scens]
        row("Split brain: monitor rounds with two nodes 200 on /primary (all scenarios)", pf,
            [sum(a)] if n_pg else [], [sum(b)] if n_pa else [], unit="", digits=0, target="0",
            ok=(sum(a) == 0) if n_pg else None, ratio=False)

        # idle footprint / DCS (one 60 s window per cluster; per node: mean of the 3 nodes)
        def idle(d, key):
            f = results.get(d, {}).get(prof, {}).get("idle")
            if not f:
                return []
            return [statistics.mean(n[key] for n in f["nodes"].values())]
        a, b = idle("pgwarden", "rss_mb"), idle("patroni", "rss_mb")
        row("RSS per node, daemon + helpers (mean of 3 nodes)", prof, a, b, unit="MB", digits=1,
            target="≤ 1/5 of Patroni", ok=(a[0] <= b[0] / 5) if a and b else None)
        a, b = idle("pgwarden", "cpu_s_per_min"), idle("patroni", "cpu_s_per_min")
        row("Idle CPU per node (CPU s per 60 s)", prof, a, b, unit="s", digits=3,
            target="≤ Patroni", ok=(a[0] <= b[0]) if a and b else None)
        a, b = idle("pgwarden", "dcs_req_per_min"), idle("patroni", "dcs_req_per_min")
        row("Idle DCS requests per node per minute", prof, a, b, unit="", digits=1,
            target="≤ Patroni", ok=(a[0] <= b[0]) if a and b else None)

    # REST API (measured on the first profile's cluster)
    for prof in profiles:
        ra = results.get("pgwarden", {}).get(prof, {}).get("rest")
        rb = results.get("patroni", {}).get(prof, {}).get("rest")
        if not ra and not rb:
            continue
        for key in (ra or rb):
            x, y = (ra or {}).get(key, {}), (rb or {}).get(key, {})
            close = "new connection" in key
            xr = [x["rps"]] if x.get("rps") else []
            yr = [y["rps"]] if y.get("rps") else []
            row(f"REST {key}: requests/s", prof, xr, yr, unit="", digits=0,
                target="≥ 20× Patroni" if close else "",
                ok=(xr[0] >= 20 * yr[0]) if (close and xr and yr) else None)
            x99 = [x["p99_ms"]] if x.get("p99_ms") is not None else []
            y99 = [y["p99_ms"]] if y.get("p99_ms") is not None else []
            x50 = [x["p50_ms"]] if x.get("p50_ms") is not None else []
            y50 = [y["p50_ms"]] if y.get("p50_ms") is not None else []
            row(f"REST {key}: p50 latency", prof, x50, y50, unit="ms", digits=2, target="", ok=None)
            xc = [x["daemon_cores"]] if x.get("daemon_cores") is not None else []
            yc = [y["daemon_cores"]] if y.get("daemon_cores") is not None else []
            if xc or yc:
                row(f"REST {key}: daemon CPU during the run (1.00 = one core busy)", prof, xc, yc,
                    unit="cores", digits=2, target="", ok=None)
            row(f"REST {key}: p99 latency", prof, x99, y99, unit="ms", digits=2,
                target="< 5 ms" if close else "", ok=(x99[0] < 5) if (close and x99) else None)
            errs = [f"pgwarden: {x.get('non2xx', 0)} non-2xx {x.get('socket_errors', '')}".strip(),
                    f"Patroni: {y.get('non2xx', 0)} non-2xx {y.get('socket_errors', '')}".strip()]
            if x.get("non2xx") or y.get("non2xx") or x.get("socket_errors") or y.get("socket_errors"):
                rows.append(f"| REST {key}: errors | {prof} | {errs[0]} | {errs[1]} | – | | |")
        break

    lines.append("| Metric | Profile | pgwarden | Patroni | Ratio | Target | pgwarden |")
    lines.append("|---|---|---|---|---|---|---|")
    lines += rows
    lines.append("")
    if missed:
        lines.append("Missed targets:")
        lines += [f"- {m}" for m in missed]
    else:
        lines.append("Missed targets: none among those measured.")
    return "\n".join(lines) + "\n", missed
