#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

  list-urls CONFIG SINCE UNTIL   list [SINCE, UNTIL] (UNIX s) through the signed API and print
                                 `record_file_id<TAB>record_size<TAB>download_address` lines
  self-test                      check the signature against the documented test vector
  stat URL FIELD                 one field of the simulator's /admin/stats
  span SIM_LOG ARCHIVER_LOG      download timing from the JSON logs: first download request
                                 answered by the simulator -> last "archived" event
  calls DB                       the API call log of an archiver database, as JSON
  rss TIME_V_FILE                "Maximum resident set size" (KiB) from /usr/bin/time -v
  year MANIFEST_FILE STATS_FILE SINCE UNTIL LIMIT WORKERS BW TTL WALL DB
                                 the figures of the scaled year (JSON): listing calls vs the
                                 minimum, address calls vs meetings, wall vs the ideal
  gen-archive ROOT FILES APP_ID  write an archive of FILES small files (1 KiB, 2 per meeting,
                                 one meeting per folder) with their meeting.json (schema 2)
                                 and its marker, as the archiver writes them, for `reindex`
  archived DB                    files archived in a state database (growth group)
  merge OLD_RESULTS OLD_MACHINE RESULTS MACHINE GROUPS
                                 a BENCH_ONLY run: keep the other groups' recorded rows
  render RESULTS MACHINE OUT     write BENCHMARKS.md from the results (JSON lines) and print
                                 the table
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import random
import sqlite3
import statistics
import sys
import time
import tomllib
import urllib.parse
import urllib.request

WINDOW_S = 31 * 86_400
OTHER_MAX = 0.33


def signature(secret_key, secret_id, nonce, timestamp, request_uri, method="GET", body=""):
    """base64(lowercase_hex(HMAC-SHA256(SecretKey, string_to_sign))): see the API doc, section 2."""
    string_to_sign = (
        f"{method}\nX-TC-Key={secret_id}&X-TC-Nonce={nonce}&X-TC-Timestamp={timestamp}\n"
        f"{request_uri}\n{body}"
    )
    digest = hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def self_test():
    got = signature(
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        "12345",
        "1700000000",
        "/v1/corp/records?start_time=1698000000&end_time=1700000000&page_size=20&page=1"
        "&operator_id=admin&operator_id_type=1&query_record_type=0",
    )
    want = "ODM0ODk5ZDFhZGY4ZmMzZGViOGQ3NTMyMTkwZGU0MGU4MTdmMzE0N2FhODUzOGQxNzFhZGM2ZGI0NjE4NzE1ZQ=="
    if got != want:
        sys.exit(f"signature self-test failed: {got}")
    print("signature self-test ok")


def list_urls(config_path, since, until):
    with open(config_path, "rb") as f:
        api = tomllib.load(f)["api"]
    base = api["base_url"].rstrip("/")
    start = since
    while start < until:
        end = min(start + WINDOW_S, until)
        page, total_page = 1, 1
        while page <= total_page:
            query = urllib.parse.urlencode(
                {
                    "start_time": start,
                    "end_time": end,
                    "page_size": 20,
                    "page": page,
                    "operator_id": api["operator_id"],
                    "operator_id_type": 1,
                    "query_record_type": api.get("record_type", 1),
                }
            )
            uri = f"/v1/corp/records?{query}"
            nonce = str(random.randint(1, 2**31 - 1))
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-TC-Key": api["secret_id"],
                "X-TC-Timestamp": ts,
                "X-TC-Nonce": nonce,
                "AppId": str(api["app_id"]),
                "X-TC-Registered": "1",
                "X-TC-Signature": signature(api["secret_key"], api["secret_id"], nonce, ts, uri),
            }
            if api.get("sdk_id"):
                headers["SdkId"] = api["sdk_id"]
            with urllib.request.urlopen(urllib.request.Request(base + uri, headers=headers)) as r:
                reply = json.load(r)
            total_page = reply.get("total_page") or 1
            for m in reply.get("record_meetings") or []:
                for f in m.get("record_files") or []:
                    if f.get("download_address"):
                        print(f"{f['record_file_id']}\t{f['record_size']}\t{f['download_address']}")
            page += 1
        start = end


def stat(url, field):
    with urllib.request.urlopen(url.rstrip("/") + "/admin/stats") as r:
        value = json.load(r)[field]
    print(json.dumps(value) if isinstance(value, (dict, list)) else value)


def log_events(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def ts(event):
    return dt.datetime.fromisoformat(event["timestamp"]).timestamp()


def span(sim_log, archiver_log):
    """From the first download request the simulator answered with a body (200/206) to the
    last file the archiver logged as archived: the download part of a backfill, listing
    excluded (addresses are never logged, so the two logs are joined by time only)."""
    starts = [
        ts(e)
        for e in log_events(sim_log)
        if e.get("fields", {}).get("message") == "download request answered"
        and e["fields"].get("status") in (200, 206)
    ]
    archived = [
        (ts(e), e["fields"].get("bytes", 0))
        for e in log_events(archiver_log)
        if e.get("fields", {}).get("message") == "archived"
    ]
    listed = [ts(e) for e in log_events(archiver_log) if e.get("fields", {}).get("message") == "window listed"]
    if not starts or not archived:
        sys.exit(f"span: no download start ({len(starts)}) or archived event ({len(archived)})")
    first, last = min(starts), max(t for t, _ in archived)
    print(
        json.dumps(
            {
                "seconds": last - first,
                "bytes": sum(b for _, b in archived),
                "files": len(archived),
                "first_listed_to_first_request": (min(starts) - min(listed)) if listed else None,
            }
        )
    )


def calls(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = [r[0] for r in con.execute("SELECT at_ms FROM api_calls ORDER BY at_ms")]
    con.close()
    t = [x / 1000 for x in rows]
    most = 0
    for i, start in enumerate(t):
        # calls sent in [start, start + 60 s)
        n = sum(1 for x in t[i:] if x < start + 60)
        most = max(most, n)
    out = {"calls": len(t), "first": t[0] if t else None, "last": t[-1] if t else None,
           "max_sent_in_60s": most}
    if len(t) > 10:
        # Steady state: the first 10 calls go at once (a full budget); every later call waits
        # for the one 10 places before it to leave the window, so 10 calls per such gap.
        gaps = [t[k] - t[k - 10] for k in range(10, len(t))]
        out["gap_median_s"] = statistics.median(gaps)
        out["sustained_per_min"] = 10 / statistics.median(gaps) * 60
    print(json.dumps(out))


def minimum_listing_calls(manifest, since, until, page_size=20):
    """Calls that list every window of [since, until] and each of its pages once (windows
    share their boundary second, as the archiver's do; bounds are inclusive)."""
    starts = {e["meeting_record_id"]: e["media_start_time"] // 1000 for e in manifest}
    calls, start = 0, since
    while start < until:
        end = min(start + WINDOW_S, until)
        n = sum(1 for t in starts.values() if start <= t <= end)
        calls += max(1, -(-n // page_size))
        start = end
    return calls


def year(manifest, stats, since, until, limit, workers, bw, ttl, wall, db):
    manifest, stats = json.load(open(manifest)), json.load(open(stats))
    since, until, limit, workers, bw = int(since), int(until), int(limit), int(workers), int(bw)
    ttl, wall = float(ttl), float(wall)
    minimum = minimum_listing_calls(manifest, since, until)
    meetings = {e["meeting_record_id"] for e in manifest}
    hidden = {e["meeting_record_id"] for e in manifest if not e["listing_address"]}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    archived = con.execute("SELECT COUNT(*) FROM files WHERE status = 'archived'").fetchone()[0]
    con.close()
    size = sum(e["record_size"] for e in manifest)
    # The first `limit` calls go at once (a full budget), then `limit` per 61 s.
    listing_ideal = max(0, stats["api_calls"] - limit) / limit * 61
    transfer_ideal = size / (workers * bw)
    print(json.dumps({
        "meetings": len(meetings), "files": len(manifest), "archived": archived, "bytes": size,
        "listing_calls": stats["api_calls"], "listing_minimum": minimum,
        "address_calls": stats["address_calls"], "meetings_without_listing_address": len(hidden),
        "expired_starts": stats["expired_token_rejections"], "rate_limited": stats["rate_limited"],
        "address_rate_limited": stats["address_rate_limited"],
        "wall": wall, "listing_ideal": listing_ideal, "transfer_ideal": transfer_ideal,
        "ttl": ttl, "limit": limit,
    }))


def gen_archive(root, files, app_id):
    """An archive as the archiver leaves it, without a download: what `reindex` reads."""
    import os
    rng = random.Random(20)
    start = 1_767_225_600_000  # 2026-01-01, ms
    layout = "{start:%Y}/{start:%m}/{start:%d}/{meeting_code}-{subject}/{record_file_id}"
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "wemeet-archive.json"), "w") as f:
        json.dump({"schema": "wemeet-archiver.archive/1", "app_id": app_id, "layout": layout}, f)
    for m in range(files // 2):
        t = start + m * 600_000
        day = dt.datetime.fromtimestamp(t / 1000, dt.timezone(dt.timedelta(hours=8)))
        code = f"{800000000 + m}"
        folder = f"{day:%Y/%m/%d}/{code}-bench"
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        entries = []
        for i in range(2):
            fid = f"{1_900_000_000_000_000_000 + m * 2 + i}"
            body = rng.randbytes(1024)
            with open(os.path.join(root, folder, f"{fid}.mp4"), "wb") as f:
                f.write(body)
            entries.append({"record_file_id": fid, "key": fid, "kind": "video", "file": f"{fid}.mp4",
                            "record_size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                            "status": "archived", "archived_at": t + 3_600_000,
                            "deleted_in_cloud_at": t + 7_200_000 if m % 5 == 0 else None,
                            "record_start_time": t, "record_end_time": t + 1_800_000})
        doc = {"schema": "wemeet-archiver.meeting/2", "meetings": [{
            "meeting_record_id": f"mr-{m}", "meeting_id": f"{900000000 + m}", "meeting_code": code,
            "userid": "bench", "subject": "bench", "media_start_time": t, "state": 3, "record_type": 1,
            "dir": folder, "artifacts_checked_at": None, "transcript_wait_ended_at": None,
            "files": entries}]}
        with open(os.path.join(root, folder, "meeting.json"), "w") as f:
            json.dump(doc, f, indent=2)


def rss(path):
    with open(path) as f:
        for line in f:
            if "Maximum resident set size" in line:
                print(int(line.rsplit(":", 1)[1]))
                return
    sys.exit(f"no RSS in {path}")


def archived(db):
    """Files archived in the state database `db` (the growth group's count)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    print(con.execute("SELECT COUNT(*) FROM files WHERE status = 'archived'").fetchone()[0])


def merge(old_results, old_machine, results, machine, only):
    """A run of some groups alone (BENCH_ONLY): the other groups' rows come from the
    recorded run, and the machine description says which rows are from which run."""
    groups = only.split()

    def rerun(key):
        return any(key == g or key.startswith(g + ".") for g in groups)

    new_rows = [line for line in open(results) if line.strip()]
    kept = []
    try:
        kept = [line for line in open(old_results) if line.strip() and not rerun(json.loads(line)["key"])]
    except OSError:
        pass
    with open(results, "w") as f:
        f.writelines(kept + new_rows)
    new = json.load(open(machine))
    try:
        m = json.load(open(old_machine))
    except OSError:
        return
    # The machine as the recorded run described it, and one line per partial run whose rows
    # are still in the report (a run of the same groups replaces the earlier one's line).
    partials = m.pop("partials", {})
    # An earlier line keeps only the groups this run did not measure again.
    kept = {}
    for g, line in partials.items():
        left = [x for x in g.split(", ") if x not in groups]
        if left:
            kept[", ".join(left)] = line.replace(g + " re-measured", ", ".join(left) + " re-measured", 1)
    partials = kept
    partials[", ".join(groups)] = (
        f"{', '.join(groups)} re-measured on {new['date']} (commit {new.get('commit', '?')}, "
        f"kernel {new.get('kernel', '?')}, files in {new.get('work', '?')}; quiet: "
        f"{new.get('quiet', '?')}); the other rows are from the run of {m['date']}")
    m["partials"] = partials
    json.dump(m, open(machine, "w"))


def growth_section(by):
    """The growth group (issue 21): the three sizes side by side, with the ratios to the
    smallest and the targets."""
    sizes = sorted({int(r["meetings"]) for rs in by.values() for r in rs if r["key"].startswith("growth.backfill.")})
    if not sizes:
        return []
    first, last = sizes[0], sizes[-1]

    def row(kind, n):
        rs = by.get(f"growth.{kind}.{n}")
        return rs[0] if rs else None

    def per_meeting(n, field):
        r = row("backfill", n)
        if not r or not r.get("archived"):
            return None
        return 1000 * r[field] / r["archived"]

    def cells(fmt, value):
        vals = [value(n) for n in sizes]
        out = [fmt(v) if v is not None else "–" for v in vals]
        numbers = all(isinstance(v, (int, float)) for v in (vals[0], vals[-1]))
        ratio = vals[-1] / vals[0] if numbers and vals[0] else None
        return out, ratio

    def verdict(ratio, target):
        if ratio is None or target is None:
            return ""
        return f"{'met' if ratio <= target else 'MISSED'} (≤ {target}×)"

    lines = [
        "## Growth (issue 21)",
        "",
        "One more recording must cost the same at 100k as at 1k. Backfills of one 64-byte file per",
        "meeting, 100 meetings a day, 8 workers, the simulator's limits raised; then on each archive",
        "`status`, `verify --sample 1`, `prune --dry-run` and a live poll's work (a backfill of the",
        "newest day, left out of the first: ~100 new meetings, in a process of its own, repeated on",
        "fresh copies of the archive, the median shown). CPU is the archiver's user + system time",
        "(`times`), the simulator's apart.",
        "",
        "| figure | " + " | ".join(f"{n:,} meetings" for n in sizes) + f" | {last:,} / {first:,} | target |",
        "| --- | " + " | ".join("---" for _ in sizes) + " | --- | --- |",
    ]

    def add(what, fmt, value, target=None):
        out, ratio = cells(fmt, value)
        r = f"{ratio:.2f}×" if ratio is not None else "–"
        lines.append(f"| {what} | " + " | ".join(out) + f" | {r} | {verdict(ratio, target)} |")

    add("backfill: CPU per meeting", lambda v: f"{v:.2f} ms", lambda n: per_meeting(n, "cpu"), 1.3)
    add("backfill: wall per meeting", lambda v: f"{v:.2f} ms", lambda n: per_meeting(n, "seconds"))
    add("backfill: peak RSS", lambda v: f"{v / 1024:.1f} MiB",
        lambda n: (row("backfill", n) or {}).get("rss_kib") or None, 1.2)
    add("backfill: simulator CPU per meeting", lambda v: f"{v:.2f} ms", lambda n: per_meeting(n, "srv_cpu"))
    add("files archived (capped run?)", lambda v: v,
        lambda n: (lambda r: f"{r['archived']:,} ({r.get('capped', 'no')})" if r else None)(row("backfill", n)))
    for kind, what in (("status", "`status`"), ("verify", "`verify --sample 1`"), ("prune", "`prune --dry-run`")):
        add(f"{what}: wall", lambda v: f"{v:.3f} s", lambda n, k=kind: (row(k, n) or {}).get("seconds"))
        add(f"{what}: CPU", lambda v: f"{v:.2f} s", lambda n, k=kind: (row(k, n) or {}).get("cpu"))
    def poll(n, field):  # the median of the repetitions
        return med([r[field] for r in by.get(f"growth.poll.{n}", []) if r.get(field) is not None])

    reps = len(by.get(f"growth.poll.{last}", []))
    add(f"live poll's work: CPU (median of {reps})", lambda v: f"{v:.3f} s", lambda n: poll(n, "cpu"), 1.2)
    add(f"live poll's work: wall (median of {reps})", lambda v: f"{v:.2f} s", lambda n: poll(n, "seconds"))
    add("live poll's work: new files archived", lambda v: f"{v}", lambda n: (row("poll", n) or {}).get("new"))
    add("live poll's work: instructions (callgrind) ²", lambda v: f"{v / 1e6:.1f} M",
        lambda n: (row("poll_ir", n) or {}).get("instructions") or None, 1.2)
    add("live poll's work: instructions per new file ²", lambda v: f"{v / 1e6:.2f} M",
        lambda n: (lambda r: r["instructions"] / r["new"] if r and r.get("instructions") and r.get("new") else None)(
            row("poll_ir", n)))
    st = row("status", last)
    if st:
        ok = st["seconds"] < 0.5
        lines += ["", f"`status` on {st['files']:,} files: {st['seconds']:.3f} s — target < 0.5 s: "
                      f"{'met' if ok else 'MISSED'}."]
    if any(row("poll_ir", n) for n in sizes):
        lines += ["",
                  "² One more run of the poll under `valgrind --tool=callgrind`: the instructions it executes",
                  "in user space, in every thread, start included. Unlike CPU seconds they do not depend on",
                  "what else the machine is doing, so the ratio holds on a shared machine; the kernel's share",
                  "(fsync, futex, thread start) is not in them."]
    lines += ["", "`reindex` of 10k and 100k files is measured by its own group (`reindex`, "
                  "rows above).", ""]
    return lines


# ---------------------------------------------------------------------------------------------
# Report


def fmt_rate(bps):
    return f"{bps / 2**20:,.0f} MiB/s"


def med(values):
    return statistics.median(values) if values else None


def render(results_path, machine_path, out_path):
    rows = [json.loads(line) for line in open(results_path) if line.strip()]
    machine = json.load(open(machine_path))
    # Repetitions during which other processes used more than a third of a core are left
    # out, as long as a clean one remains.
    polluted = {}
    by = {}
    for r in rows:
        by.setdefault(r["key"], []).append(r)
    for key, rs in by.items():
        clean = [r for r in rs if r.get("other_cores", 0) <= OTHER_MAX]
        if clean and len(clean) < len(rs):
            polluted[key] = len(rs) - len(clean)
            by[key] = clean

    def m(key, field="rate"):
        vals = [r[field] for r in by.get(key, []) if r.get(field) is not None]
        return med(vals)

    def cmd(key):
        rs = by.get(key)
        return rs[0].get("cmd", "") if rs else ""

    def spread(key):
        vals = [r["rate"] for r in by.get(key, []) if r.get("rate")]
        out = ""
        if len(vals) >= 2:
            out = f" ({fmt_rate(min(vals))}–{fmt_rate(max(vals))}, n={len(vals)})"
        if polluted.get(key):
            out += f" [{polluted[key]} busy-machine run(s) left out]"
        cpu, srv = m(key, "cpu"), m(key, "srv_cpu")
        if cpu is not None:
            out += f"; CPU {cpu:.2f} s"
        if srv is not None:
            out += f", server CPU {srv:.2f} s"
        return out

    table = []  # (group, what, figure, vs/target, verdict, command)

    def ratio_row(group, what, key, ref_key, target, ref_name):
        a, b = m(key), m(ref_key)
        if a is None or b is None:
            table.append((group, what, "not measured", "", "", cmd(key)))
            return
        r = a / b
        if target is None:
            verdict = ""
        else:
            verdict = "met" if r >= target else f"MISSED by {(target - r) * 100:.0f} pts"
        tgt = f"≥ {target:.2f}× {ref_name}" if target is not None else f"vs {ref_name}"
        table.append((group, what, f"{fmt_rate(a)}{spread(key)}", f"{r:.2f}× {ref_name} ({tgt})", verdict, cmd(key)))

    def limit_row(group, what, key, parts, slack):
        """Wall time of `key` against the limit max(parts' median seconds): met within `slack`."""
        a = m(key, "seconds")
        limits = [(name, m(k, "seconds")) for name, k in parts]
        if a is None or any(v is None for _, v in limits):
            table.append((group, what, "not measured", "", "", cmd(key)))
            return
        name, limit = max(limits, key=lambda nv: nv[1])
        r = a / limit
        shown = ", ".join(f"{n} {v:.3f} s" for n, v in limits)
        verdict = "met" if r <= 1 + slack else f"MISSED by {(r - 1 - slack) * 100:.0f} pts"
        table.append((group, what, f"{a:.3f} s{spread(key)}",
                      f"{r:.2f}× the limit (max of {shown}: {name}); target ≤ {1 + slack:.2f}×", verdict, cmd(key)))

    def cpu_row(group, what, key, parts, gib, slack):
        """CPU seconds per GiB of `key` against the sum of `parts`' CPU, plus `slack`."""
        a = m(key, "cpu")
        costs = [(name, m(k, "cpu")) for name, k in parts]
        if a is None or any(v is None for _, v in costs) or not gib:
            table.append((group, what, "not measured", "", "", cmd(key)))
            return
        budget = sum(v for _, v in costs) / gib
        mine = a / gib
        shown = " + ".join(f"{n} {v / gib:.2f}" for n, v in costs)
        verdict = "met" if mine <= budget * (1 + slack) else f"MISSED by {(mine / budget - 1 - slack) * 100:.0f} pts"
        table.append((group, what, f"{mine:.2f} CPU-s/GiB", f"≤ ({shown}) × {1 + slack:.2f} = {budget * (1 + slack):.2f}",
                      verdict, cmd(key)))

    def plain_row(group, what, key, note=""):
        a = m(key)
        fig = "not measured" if a is None else f"{fmt_rate(a)}{spread(key)}"
        table.append((group, what, fig, note, "", cmd(key)))

    sizes = machine.get("sizes", {})

    def size(mib):
        return f"{mib // 1024} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"

    one, eight = size(sizes.get("one", 1024)), size(sizes.get("eight", 256))
    big = size(sizes.get("rss_big", 2048))
    # 1. single big file
    g = f"{one}, 1 file"
    plain_row(g, "simulator raw ceiling: `curl -o /dev/null`", "sim1.raw", "what the simulator can generate")
    ratio_row(g, "archiver `backfill` ← simulator (hash + fsync + rename)", "sim1.archiver", "sim1.curl", 0.95, "curl -o")
    ratio_row(g, "  same, vs `curl | sha256sum`", "sim1.archiver", "sim1.curlsha", 1.0, "curl|sha256sum")
    plain_row(g, "`curl -s -o` ← simulator", "sim1.curl")
    plain_row(g, "`curl -s | sha256sum` ← simulator", "sim1.curlsha")
    ratio_row(g, "archiver download pool ← nginx", "ngx1.archiver", "ngx1.curl", 0.95, "curl -o")
    ratio_row(g, "  same, vs `curl | sha256sum`", "ngx1.archiver", "ngx1.curlsha", 1.0, "curl|sha256sum")
    plain_row(g, "`curl -s -o` ← nginx", "ngx1.curl")
    plain_row(g, "`curl -s | sha256sum` ← nginx", "ngx1.curlsha")
    ratio_row(g, "archiver ← nginx vs `curl | openssl dgst -sha256` (fastest hash)", "ngx1.archiver", "ngx1.curlossl", None,
              "curl|openssl")
    plain_row(g, "`curl -s | openssl dgst -sha256` ← nginx", "ngx1.curlossl")
    ratio_row(g, "archiver ← nginx, archive on disk (fsync every 16 MiB)", "disk1.archiver", "disk1.curl", 0.95,
              "curl -o + sync")
    plain_row(g, "`curl -s -o` + `sync FILE` ← nginx, on disk", "disk1.curl")
    # The limit of a hashing downloader: the slower of receiving and hashing, overlapped.
    one_gib = sizes.get("one", 1024) / 1024
    plain_row(g, "`openssl dgst -sha256 FILE` (tmpfs, page cache)", "ngx1.ossl")
    limit_row(g, "archiver ← nginx, tmpfs, vs max(`curl -o`, `openssl dgst`)", "ngx1.archiver",
              [("curl -o", "ngx1.curl"), ("openssl dgst", "ngx1.ossl")], 0.05)
    limit_row(g, "archiver ← nginx, disk, vs max(`curl -o && sync`, `openssl dgst`)", "disk1.archiver",
              [("curl -o && sync", "disk1.curl"), ("openssl dgst", "disk1.ossl")], 0.05)
    cpu_row(g, "archiver CPU per GiB, tmpfs", "ngx1.archiver", [("curl -o", "ngx1.curl"), ("openssl", "ngx1.ossl")],
            one_gib, 0.10)
    cpu_row(g, "archiver CPU per GiB, disk", "disk1.archiver",
            [("curl -o && sync", "disk1.curl"), ("openssl", "disk1.ossl")], one_gib, 0.10)

    g = f"8 × {eight}"
    plain_row(g, "simulator raw ceiling: 4 × `curl -o /dev/null`", "sim8.raw")
    ratio_row(g, "archiver `backfill`, 4 workers ← simulator", "sim8.archiver", "sim8.curl", 0.95, "4 curls")
    plain_row(g, "4 parallel `curl -s -o` ← simulator", "sim8.curl")
    ratio_row(g, "archiver download pool, 4 workers ← nginx", "ngx8.archiver", "ngx8.curl", 0.95, "4 curls")
    plain_row(g, "4 parallel `curl -s -o` ← nginx", "ngx8.curl")
    plain_row(g, "4 parallel `curl -s | sha256sum` ← nginx", "ngx8.curlsha")
    ratio_row(g, "archiver, 4 workers ← nginx vs 4 × `curl | openssl dgst`", "ngx8.archiver", "ngx8.curlossl", None,
              "4 curl|openssl")
    plain_row(g, "4 parallel `curl -s | openssl dgst -sha256` ← nginx", "ngx8.curlossl")
    plain_row(g, "`openssl dgst -sha256` of the 8 files, one core", "ngx8.ossl")
    # On a machine of N cores the limit is the slower of the network (4 curls) and the CPU
    # work spread over every core: curl's, nginx's and SHA-256's.
    s_arch, s_curl = m("ngx8.archiver", "seconds"), m("ngx8.curl", "seconds")
    work = [m("ngx8.curl", "cpu"), m("ngx8.curl", "srv_cpu"), m("ngx8.ossl", "cpu")]
    if s_arch is None or s_curl is None or any(w is None for w in work):
        table.append((g, "archiver, 4 workers, vs the CPU-bound limit", "not measured", "", "", cmd("ngx8.archiver")))
    else:
        cores = int(machine.get("nproc", 1) or 1)
        cpu_limit = sum(work) / cores
        limit = max(s_curl, cpu_limit)
        r = s_arch / limit
        table.append((g, f"archiver, 4 workers, vs the limit of this {cores}-core machine", f"{s_arch:.3f} s",
                      f"{r:.2f}× the limit {limit:.3f} s = max(4 curls {s_curl:.3f} s, (curl {work[0]:.2f} + nginx "
                      f"{work[1]:.2f} + SHA-256 {work[2]:.2f}) CPU-s / {cores} cores = {cpu_limit:.3f} s); target ≤ 1.10×",
                      "met" if r <= 1.10 else f"MISSED by {(r - 1.10) * 100:.0f} pts", cmd("ngx8.archiver")))
    eight_gib = 8 * sizes.get("eight", 256) / 1024
    cpu_row(g, "archiver CPU per GiB, 4 workers", "ngx8.archiver", [("4 curls", "ngx8.curl"), ("openssl", "ngx8.ossl")],
            eight_gib, 0.10)

    g = "peak RSS"
    rss_rows = [(f"1 × {eight}", "rss.256m"), (f"1 × {big}", "rss.2g"), (f"8 × {eight}, 8 workers", "rss.8x")]
    for what, key in rss_rows:
        v = m(key, "rss_kib")
        vals = [r["rss_kib"] for r in by.get(key, [])]
        verdict = "" if v is None else ("met" if max(vals) <= 64 * 1024 else f"MISSED by {max(vals) / 1024 - 64:.1f} MiB")
        fig = "not measured" if v is None else f"{v / 1024:.1f} MiB"
        if len(vals) > 1:
            fig += f" (median; {min(vals) / 1024:.1f}–{max(vals) / 1024:.1f}, n={len(vals)})"
        table.append((g, f"archiver `backfill` {what}", fig,
                      "≤ 64 MiB", verdict, cmd(key)))
    a, b = m("rss.256m", "rss_kib"), m("rss.2g", "rss_kib")
    if a and b:
        growth = b / a - 1
        table.append((g, f"{big} vs {eight} (medians)", f"{growth * 100:+.1f} %", "≤ +10 %",
                      "met" if growth <= 0.10 else f"MISSED by {(growth - 0.10) * 100:.1f} pts", ""))

    g = "resume"
    for r in by.get("resume", []):
        refetch = r["refetched"]
        table.append((g, f"SIGKILL at {r['killed_at'] / 2**20:.0f} MiB of {r['size'] / 2**20:.0f} MiB",
                      f"{refetch / 2**20:.1f} MiB re-fetched (checkpoint at {r['checkpoint'] / 2**20:.0f} MiB, "
                      f"{r['unwritten'] / 2**20:.1f} MiB served but never received)",
                      "≤ 16 MiB (one checkpoint)",
                      "met" if refetch <= 16 * 2**20 else f"MISSED by {(refetch - 16 * 2**20) / 2**20:.1f} MiB",
                      r.get("cmd", "")))

    g = "listing"
    for r in by.get("listing", []):
        ok = r["sustained_per_min"] >= 9.5 and r["max_calls_in_60s"] <= 10 and r["rate_limited"] == 0
        table.append((g, f"backfill of {r['windows']} windows at 10 calls/min",
                      f"{r['calls']} calls, sustained {r['sustained_per_min']:.2f}/min, max {r['max_calls_in_60s']} "
                      f"in any 60 s, {r['rate_limited']} rate-limited; wall {r['wall']:.0f} s (ideal {r['ideal_burst']:.0f} s "
                      f"with a full first minute, {r['ideal_flat']:.0f} s at a flat 10/min)",
                      "≥ 9.5/min, never > 10 in 60 s", "met" if ok else "MISSED", r.get("cmd", "")))

    g = "scaled year"
    for r in by.get("year", []):
        ideal = max(r["listing_ideal"], r["transfer_ideal"])
        ok = (r["listing_calls"] <= 1.2 * r["listing_minimum"] and r["expired_starts"] == 0
              and r["archived"] == r["files"] and r["rate_limited"] == 0 and r["address_rate_limited"] == 0)
        per_meeting = r["address_calls"] / max(1, r["meetings_without_listing_address"])
        table.append((g, f"{r['meetings']:,} meetings, {r['files']:,} files over 365 days; addresses live {r['ttl']:.0f} s, "
                      f"listing at {r['limit']}/min, transfers ≈ {r['transfer_ideal'] / r['ttl']:.1f} lifetimes",
                      f"{r['archived']:,}/{r['files']:,} archived; {r['listing_calls']} listing calls "
                      f"({r['listing_calls'] / r['listing_minimum']:.2f}× the {r['listing_minimum']} that list each window and page once); "
                      f"{r['address_calls']:,} address calls for {r['meetings_without_listing_address']:,} meetings without a listing "
                      f"address ({per_meeting:.2f} per meeting); {r['expired_starts']} transfers started on an expired address; "
                      f"wall {r['wall']:.0f} s vs ideal {ideal:.0f} s (listing {r['listing_ideal']:.0f} s, transfers {r['transfer_ideal']:.0f} s)",
                      "listing ≤ 1.2× minimum, 0 expired starts, all archived", "met" if ok else "MISSED", r.get("cmd", "")))
        # The real case, projected from these ratios: 100k recordings a year, 10 listing
        # calls/min, 50 address calls/min, addresses living 6 h.
        real = 100_000
        pages = real / 20 * r["listing_calls"] / r["listing_minimum"]
        listing_h = pages / 10 / 60
        hidden_share = r["meetings_without_listing_address"] / r["meetings"]
        address_h = real * hidden_share * per_meeting / 50 / 60
        table.append((g, "  projected: 100,000 recordings, 10 listing calls/min, 50 address calls/min, 6 h addresses",
                      f"listing {pages:,.0f} calls = {listing_h:.1f} h; {real * hidden_share * per_meeting:,.0f} address calls = "
                      f"{address_h:.1f} h, spread over the transfers (tens of TB take days); wall ≈ max(listing, addresses, "
                      f"bytes / bandwidth)", "", "", ""))

    g = "one-file backfill"
    if by.get("onefile.archiver"):
        whole = m("onefile.archiver", "seconds") * 1000
        trips = m("onefile.requests", "seconds") * 1000
        runs = [r["seconds"] * 1000 for r in by["onefile.archiver"]]
        beyond = whole - trips
        table.append((g, "backfill of 1 file of 1 kB, whole process, new database each run",
                      f"{whole:.0f} ms median ({min(runs):.0f}–{max(runs):.0f} ms, n={len(runs)}); its three "
                      f"loopback requests {trips:.1f} ms; {beyond:.0f} ms beyond them (start, config, "
                      f"migrations, budgets, listing, commits)",
                      "< 100 ms beyond the round trips", "met" if beyond < 100 else "MISSED",
                      cmd("onefile.archiver")))

    g = "webhook"
    for r in by.get("webhook", []):
        table.append((g, f"an event → its transfer's first byte; → its file archived ({r['detail']})",
                      f"{r['first_byte']:.2f} s; {r['archived']:.2f} s (medians of {r['rounds']})",
                      "archived ≤ 10 s after the event", "met" if r["archived"] <= 10 else "MISSED",
                      r.get("cmd", "")))

    g = "search"
    for r in by.get("search", []):
        scale = f"{r['recordings']:,} recordings, {r['transcripts']:,} transcripts ({r['text_mb']:.0f} MB of text)"
        for what, ms, found, limited in [
            ("a selector query (`--user U --since --until`, a quarter)", "selector_ms", "selector_found", "selector_limit20_ms"),
            ("a three-character `--text` (trigram MATCH)", "text3_ms", "text3_found", "text3_limit20_ms"),
            ("a two-character `--text` (LIKE over the stored text)", "text2_ms", "text2_found", "text2_limit20_ms"),
        ]:
            table.append((g, f"{what}, {scale}",
                          f"{r[ms]:.1f} ms to select {r[found]:,} recording(s); {r[limited]:.1f} ms with their files "
                          f"and lines, `--limit 20` (medians of 7)", "", "", r.get("cmd", "")))
        table.append((g, "full-text index (FTS5 trigram, text stored once) per MB of transcript",
                      f"{r['index_bytes_per_text_mb'] / 1e6:.2f} MB", "", "", r.get("cmd", "")))
        table.append((g, "extra time an archived transcript costs (re-read, hash, index), vs marking it archived",
                      f"{r['index_transcript_ms']:.2f} ms vs {r['mark_archived_ms']:.2f} ms (medians of 300)",
                      "", "", r.get("cmd", "")))
        if r.get("note"):
            table.append((g, "how these were measured", r["note"], "", "", ""))

    g = "verify"
    ratio_row(g, f"`verify --jobs 1`, one {one} file", "verify1.jobs1", "verify1.sha", 1.0, "sha256sum")
    ratio_row(g, f"`verify` (default jobs), one {one} file", "verify1.jobsN", "verify1.sha", 1.0, "sha256sum")
    plain_row(g, f"`sha256sum`, one {one} file", "verify1.sha")
    ratio_row(g, f"`verify --jobs 1`, 8 × {eight}", "verify8.jobs1", "verify8.sha", None, "sha256sum")
    ratio_row(g, f"`verify` (default jobs), 8 × {eight}", "verify8.jobsN", "verify8.sha", 1.0, "sha256sum")
    ratio_row(g, "  same, vs parallel sha256sum", "verify8.jobsN", "verify8.shaP", None, "xargs -P sha256sum")
    plain_row(g, "`sha256sum` 8 files", "verify8.sha")
    plain_row(g, "`xargs -P$(nproc) sha256sum` 8 files", "verify8.shaP")

    g = "S3"
    if by.get("s3.skipped"):
        table.append((g, "upload into a local S3 server", "not measured", "", "", by["s3.skipped"][0]["why"]))
    else:
        plain_row(g, f"archiver download pool ← nginx → S3 (s3s-fs), {one}", "s3.archiver")
        ratio_row(g, "  vs `rclone copyurl` (streams too)", "s3.archiver", "s3.rclone", None, "rclone copyurl")
        ratio_row(g, "  vs `curl | aws s3 cp -`", "s3.archiver", "s3.aws", None, "curl|aws s3 cp")
        plain_row(g, "`rclone copyurl` ← nginx → S3", "s3.rclone")
        plain_row(g, "`curl -s URL | aws s3 cp - s3://…`", "s3.aws")

    g = "reindex"
    for n in ("10k", "100k"):
        rs = by.get(f"reindex.{n}", [])
        if rs:
            r = rs[0]
            table.append((g, f"`reindex` of {r['files']:,} files of 1 KiB ({r['folders']:,} meeting.json), new database",
                          f"{r['seconds']:.1f} s, peak RSS {r['rss_kib'] / 1024:.0f} MiB ({r['files_recorded']:,} files recorded"
                          f"{'; ' + r['note'] if r.get('note') else ''})", "", "", r.get("cmd", "")))
        else:
            table.append((g, f"`reindex` of {n} files", "not measured", "", "", ""))
    for r in by.get("reindex.backfill2", []):
        table.append((g, f"second backfill over the archive, database deleted ({r['files']} files, "
                         f"{r['bytes'] / 1e6:.0f} MB)",
                      f"{r['seconds']:.1f} s (first backfill {r['first_seconds']:.1f} s); {r['refetched']} bytes "
                      f"downloaded again, {r['address_calls']} address calls"
                      f"{' (' + r['note'] + ')' if r.get('note') else ''}",
                      "0 bytes, 0 address calls", "met" if r["refetched"] == 0 and r["address_calls"] == 0 else "MISSED",
                      r.get("cmd", "")))

    # Text table for the terminal.
    widths = [14, 58, 40, 34, 22]
    line = "  ".join(h.ljust(w) for h, w in zip(["group", "what", "figure", "vs / target", "verdict"], widths))
    print(line)
    print("-" * len(line))
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths)))

    md = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.sh` (do not edit by hand: re-run it). Every figure below was measured in",
        "the same run, on the same machine, on the same bytes; ratios compare tools within that run.",
        "",
        "## Machine",
        "",
        f"- CPUs (`nproc`): {machine['nproc']}; CPU: {machine['cpu']}",
        f"- memory: {machine['mem']}; kernel: {machine['kernel']}",
        f"- date: {machine['date']}; commit: {machine.get('commit', '?')}",
        f"- tools: {machine.get('tools', '')}",
        f"- files written to: {machine['work']} ({machine['work_fs']}); disk rows to {machine.get('disk_dir', '')}",
        f"- quiet machine: {machine['quiet']}",
    ] + [f"- partial run: {line}" for line in machine.get("partials", {}).values()] + [
        "",
        "## Results",
        "",
        "Throughputs are medians of the repetitions (range and count in parentheses); MiB = 2^20 bytes.",
        "",
        "| group | what | figure | vs / target | verdict | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in table:
        cells = [str(c).replace("|", "\\|") for c in row]
        cells[5] = f"`{cells[5]}`" if cells[5] else ""
        md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md += growth_section(by)
    notes_path = machine.get("notes")
    if notes_path:
        try:
            md.append(open(notes_path).read())
        except OSError:
            pass
    with open(out_path, "w") as f:
        f.write("\n".join(md) + "\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "list-urls":
        list_urls(args[0], int(args[1]), int(args[2]))
    elif cmd == "self-test":
        self_test()
    elif cmd == "stat":
        stat(args[0], args[1])
    elif cmd == "span":
        span(args[0], args[1])
    elif cmd == "calls":
        calls(args[0])
    elif cmd == "rss":
        rss(args[0])
    elif cmd == "year":
        year(*args)
    elif cmd == "gen-archive":
        gen_archive(args[0], int(args[1]), args[2])
    elif cmd == "archived":
        archived(args[0])
    elif cmd == "merge":
        merge(*args)
    elif cmd == "render":
        render(args[0], args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
