#!/usr/bin/env python3
"""Print the benchmark figures and targets from tests/bench/run's results.jsonl."""
import json
import sys


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rec = json.loads(line)
                res[rec["step"]] = rec
    return res


def ms(us):
    return "-" if us is None or us < 0 else "%.2f" % (us / 1000.0)


def main():
    r = load(sys.argv[1])
    m = r.get("machine", {})
    smoke = m.get("smoke") == 1
    print()
    print("zenn-gateway benchmark%s  %s" % (" (SMOKE: tiny runs, figures not representative)" if smoke else "", m.get("date", "")))
    print("machine: %s cores (%s), kernel %s, load average at start %s" % (m.get("cores"), m.get("cpu"), m.get("kernel"), m.get("load")))
    print("stack: lighttpd + FastCGI, %s threads x %s processes per program, MariaDB durable "
          "(innodb_flush_log_at_trx_commit=1), %s customers; wrk 1 thread at nice -10, %s s per run, %s connections for throughput"
          % (m.get("threads"), m.get("procs"), m.get("users"), m.get("duration_s"), m.get("conns")))
    print("billing mode: %s" % m.get("mode", "strict"))
    if "sql_patch" in r:
        print("NOTE: what-if run, the schema was modified by %s" % r["sql_patch"]["file"])
    print()

    def wrk(step):
        return r.get(step, {}).get("wrk")

    rows = [
        ("direct to fake upstream, 1 conn", "direct_lat"),
        ("direct to fake upstream, N conns", "direct_tput"),
        ("POST /messages metered, 1 conn", "messages_lat"),
        ("POST /messages metered, N conns", "messages_tput"),
        ("POST /messages metered, N conns, 1 key", "messages_tput_1key"),
        ("metered, 1 channel (run 1 of 4)", "channels1_a"),
        ("metered, 3 channels (run 2 of 4)", "channels3_a"),
        ("metered, 3 channels (run 3 of 4)", "channels3_b"),
        ("metered, 1 channel (run 4 of 4)", "channels1_b"),
        ("streaming direct, N conns", "stream_direct_tput"),
        ("POST /messages stream=true, N conns", "stream_tput"),
        ("GET /models, 1 conn", "models_lat"),
        ("GET /models, N conns", "models_tput"),
        ("Portkey POST /v1/messages, 1 conn", "portkey_lat"),
        ("Portkey POST /v1/messages, N conns", "portkey_tput"),
        ("Apache mod_proxy_fcgi /messages, 1 conn", "apache_lat"),
        ("Apache mod_proxy_fcgi /messages, N conns", "apache_tput"),
    ]
    print("%-42s %6s %10s %9s %9s %9s %8s" % ("run", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors"))
    for label, step in rows:
        w = wrk(step)
        if not w:
            continue
        errs = w["non2xx"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
        print("%-42s %6d %10.0f %9s %9s %9s %8d" % (label, r[step]["conns"], w["rps"], ms(w["p50"]), ms(w["p90"]),
                                                  ms(w["p99"]), errs))
    print()

    added50 = added99 = load99 = None
    if wrk("direct_lat") and wrk("messages_lat"):
        d, g = wrk("direct_lat"), wrk("messages_lat")
        added50, added99 = g["p50"] - d["p50"], g["p99"] - d["p99"]
        print("added by the metered path (1 conn): p50 +%s ms, p99 +%s ms" % (ms(added50), ms(added99)))
    if wrk("direct_tput") and wrk("messages_tput"):
        d, g = wrk("direct_tput"), wrk("messages_tput")
        load99 = g["p99"] - d["p99"]
        print("added under load (N conns): p50 +%s ms, p99 +%s ms" % (ms(g["p50"] - d["p50"]), ms(g["p99"] - d["p99"])))

    for step, label in (("db_messages_tput", "metered request (non-stream)"), ("db_stream_tput", "metered request (stream)"),
                        ("db_models_tput", "GET /models")):
        rec = r.get(step)
        if not rec:
            continue
        n = rec["usage_rows"]
        if step == "db_models_tput" and wrk("models_tput"):
            n = wrk("models_tput")["requests"]
        if not n:
            continue
        b, a = rec["before"], rec["after"]
        per = {k: (a.get(k, 0) - b.get(k, 0)) / n for k in a}
        fb, fa = rec.get("fake_before", {}), rec.get("fake_after", {})
        up = ""
        if "connections" in fa and "connections" in fb:
            up = "; upstream connections opened %.3f" % ((fa["connections"] - fb["connections"]) / n)
        print("DB per %s: CALLs %.2f, Com_commit %.2f, Handler_commit %.2f, Questions %.2f, statements executed %.2f, "
              "InnoDB data fsyncs %.2f%s (over %d requests)"
              % (label, per.get("Com_call_procedure", 0), per.get("Com_commit", 0), per.get("Handler_commit", 0),
                 per.get("Questions", 0), per.get("Com_stmt_execute", 0), per.get("Innodb_data_fsyncs", 0), up, n))
    print()

    sse_added = None
    sd, sg = r.get("stream_direct", {}).get("ttfb"), r.get("stream_gw", {}).get("ttfb")
    if sd and sg:
        fb = sg["first_byte"]["p50"] - sd["first_byte"]["p50"]
        sse_added = sg["first_delta"]["p50"] - sd["first_delta"]["p50"]
        print("streaming, sequential requests: first byte p50 %s ms direct, %s ms gateway (+%s); first event p50 %s -> %s ms "
              "(+%s), p99 %s -> %s ms; %d of %d streams buffered"
              % (ms(sd["first_byte"]["p50"]), ms(sg["first_byte"]["p50"]), ms(fb), ms(sd["first_delta"]["p50"]),
                 ms(sg["first_delta"]["p50"]), ms(sse_added), ms(sd["first_delta"]["p99"]), ms(sg["first_delta"]["p99"]),
                 sg["buffered"], sg["ok"]))

    for step, label in (("mem_idle", "idle after start"), ("mem_warm", "after warm-up"),
                        ("mem_portkey", "Portkey (node) after its runs"), ("mem_apache", "Apache + 2 programs after its runs")):
        rec = r.get(step)
        if rec:
            db = ""
            if "mariadb_rss_kib" in rec:
                db = "; MariaDB RSS %.0f MiB, %d connections" % (rec["mariadb_rss_kib"] / 1024, rec["mariadb_conns"])
            print("memory %s: RSS %.0f MiB (PSS %.0f MiB) in %d processes, %d threads%s"
                  % (label, rec["rss_kib"] / 1024, rec["pss_kib"] / 1024, rec["procs"], rec["threads"], db))
    streams = sorted((v for k, v in r.items() if k.startswith("streams") and "hold_ms" in v), key=lambda v: v["streams"])
    for st in streams:
        print("%d concurrent streams (%.0f s each): %d completed, %d non-200, %d timed out; all open: %s; first bytes "
              "within %s ms of each other, the last after %s ms; RSS with all open %.0f MiB (PSS %.0f MiB), peak %.0f MiB, "
              "%d processes, %d threads; MariaDB %.0f -> %.0f MiB, %d connections, at most %d per process (%d program processes)"
              % (st["streams"], st["hold_ms"] / 1000.0, st["completed"], st["non200"], st["timed_out"],
                 "yes" if st["all_open"] else "NO", ms(st["first_byte_spread_us"]), ms(st["first_byte_wait_max_us"]),
                 st["rss_kib_open"] / 1024, st["pss_kib_open"] / 1024, st["rss_kib_peak"] / 1024, st["procs"],
                 st["threads"], st["mariadb_rss_kib_before"] / 1024, st["mariadb_rss_kib_peak"] / 1024,
                 st["db_conns_peak"], st["db_conns_max_per_process"], st["program_processes"]))
    ratio = None
    if wrk("portkey_tput") and wrk("messages_tput"):
        ratio = wrk("messages_tput")["rps"] / max(wrk("portkey_tput")["rps"], 1e-9)
        print("throughput vs Portkey: %.2fx (%.0f vs %.0f req/s)" % (ratio, wrk("messages_tput")["rps"], wrk("portkey_tput")["rps"]))
    elif "portkey_skipped" in r:
        print("Portkey: skipped (could not be installed or started)")
    if "apache_pending" in r:
        print("Apache mod_proxy_fcgi: PENDING (%s)" % r["apache_pending"]["why"])
    b = r.get("billing")
    if b:
        print("billing: %d usage rows (%d settled, %d pending), 2xx in the access log %d, client-counted 2xx %d (+ up to %d cut off "
              "when wrk stops); credits billed %d = balance delta %d: %s; held left %d; complete rows at another price %d"
              % (b["usage_rows"], b["settled"], b["pending"], b["access_2xx"], b["client_2xx"], b["client_conns"], b["credits"],
                 b["balance_delta"], "exact" if b["credits"] == b["balance_delta"] else "MISMATCH", b["held"], b["wrong_price"]))
    print()

    def target(name, measured, goal, met):
        if measured is None:
            print("target %s: measured n/a, goal %s, MISSED" % (name, goal))
        else:
            print("target %s: measured %s, goal %s, %s" % (name, measured, goal, "MET" if met else "MISSED"))

    target("p50_added_latency", None if added50 is None else "%s ms" % ms(added50), "<= 0.5 ms",
           added50 is not None and added50 <= 500)
    target("p99_added_latency", None if added99 is None else "%s ms" % ms(added99), "<= 2 ms",
           added99 is not None and added99 <= 2000)
    target("p99_added_under_load", None if load99 is None else "%s ms" % ms(load99), "<= 10 ms at %s connections"
           % r.get("messages_tput", {}).get("conns", "N"), load99 is not None and load99 <= 10000)
    rps = wrk("messages_tput")["rps"] if wrk("messages_tput") else None
    target("metered_throughput_lighttpd", None if rps is None else "%.0f req/s" % rps, ">= 5000 req/s",
           rps is not None and rps >= 5000)
    target("throughput_vs_portkey", None if ratio is None else "%.2fx" % ratio, ">= 3x", ratio is not None and ratio >= 3)
    target("sse_first_byte_added", None if sse_added is None else "%s ms" % ms(sse_added), "<= 1 ms",
           sse_added is not None and sse_added <= 1000)
    def streams_of(n):
        return next((v for v in streams if v["streams"] == n), None)

    st = streams_of(64)
    target("streams_64_start_together", None if st is None else "first bytes within %s ms, %d/%d completed"
           % (ms(st["first_byte_spread_us"]), st["completed"], st["streams"]), "64 streams start within 50 ms",
           st is not None and st["completed"] == 64 and 0 <= st["first_byte_spread_us"] <= 50000)
    st = streams_of(1000)
    target("streams_1000_default_config", None if st is None else "%d/%d completed, the last first byte after %s ms"
           % (st["completed"], st["streams"], ms(st["first_byte_wait_max_us"])),
           "1000 streams served at once (5 s each, all first bytes within 1 s)",
           st is not None and st["completed"] == 1000 and 0 <= st["first_byte_wait_max_us"] <= 1000000)
    st = next((v for v in streams if v.get("wanted") == 10000), None)
    if st and st["streams"] < 10000:
        print("(10000 streams wanted; the hard open-files limit here, %d with no CAP_SYS_RESOURCE to raise it, lets one "
              "lighttpd hold %d: two descriptors per stream)" % (st["fd_limit"], st["streams"]))
    if st:
        grown = max(st["mariadb_rss_kib_peak"] - st["mariadb_rss_kib_before"], 0)
        gib = (st["rss_kib_peak"] + grown) / 1048576
        target("streams_10000_memory", "%d/%d completed, peak %.2f GiB (gateway %.0f MiB + MariaDB grew %.0f MiB)"
               % (st["completed"], st["streams"], gib, st["rss_kib_peak"] / 1024, grown / 1024),
               "10000 streams complete in <= 1 GiB", st["streams"] >= 10000 and st["completed"] == st["streams"]
               and gib <= 1.0)
    else:
        target("streams_10000_memory", None, "10000 streams complete in <= 1 GiB", False)
    one = [wrk("channels1_a"), wrk("channels1_b")]
    three = [wrk("channels3_a"), wrk("channels3_b")]
    if all(one) and all(three):
        r1 = sum(w["rps"] for w in one) / 2
        r3 = sum(w["rps"] for w in three) / 2
        target("routing_3_channels_cost", "%.0f req/s over 3 channels vs %.0f over 1 (%.1f%%)"
               % (r3, r1, (r3 / r1 - 1) * 100), "within 5% of 1 channel", r3 >= 0.95 * r1)
    else:
        target("routing_3_channels_cost", None, "within 5% of 1 channel", False)
    worst = max((v["db_conns_max_per_process"] for v in streams), default=None)
    target("db_connections_per_process", None if worst is None else "at most %d" % worst, "<= 8 per program process",
           worst is not None and worst <= 8)


if __name__ == "__main__":
    main()
