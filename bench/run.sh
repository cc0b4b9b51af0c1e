#!/usr/bin/env bash
# Benchmarks of wemeet-archiver against curl, sha256sum, aws/rclone and the API's limits.
#
#   bench/run.sh                 # everything (~10-15 min), writes BENCHMARKS.md
#
# Environment knobs (defaults in brackets):
#   CARGO_TARGET_DIR   where cargo builds [./target]
#   BENCH_WORK         scratch folder, best on a tmpfs [/dev/shm/wemeet-bench]
#   BENCH_DISK_DIR     scratch folder on a real disk, for the fsync rows [/var/tmp/wemeet-bench-disk]
#   BENCH_REPS         repetitions of each download figure (median reported) [5]
#   BENCH_VERIFY_REPS  repetitions of the verify figures [3]
#   BENCH_S3_REPS      repetitions of the S3 figures [2]
#   BENCH_SCALE        divide every file size by this (a quick smoke run: 16) [1]
#   BENCH_SKIP         space-separated groups to skip: sim1 ngx1 disk sim8 ngx8 rss resume
#                      listing year onefile webhook growth verify s3 reindex search []
#   BENCH_ONLY         space-separated groups to run, alone (e.g. growth); the report keeps
#                      the other groups' rows from bench/last-results.jsonl and says so []
#   BENCH_GROWTH_SIZES meetings of each growth backfill [1000 10000 100000]
#   BENCH_GROWTH_CAP   wall seconds a growth backfill may take before it is stopped [5400]
#   BENCH_GROWTH_POLL_REPS  repetitions of the growth group's live poll (median reported) [5]
#   BENCH_OUT          the report [./BENCHMARKS.md]
#   BENCH_NO_INSTALL   1: do not apt-get/pip anything, use what is there [0]
#   BENCH_NO_WAIT      1: do not wait for a quiet machine (a smoke run of the harness on a
#                      busy one; the report then says the machine was not quiet, and
#                      bench/last-results.jsonl and bench/last-machine.json are left alone) [0]
#
# Needs root (or the tools already installed) for apt-get: nginx, time, curl, rclone; awscli
# comes from pip. Every server it starts listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=${BENCH_WORK:-/dev/shm/wemeet-bench}
DISK=${BENCH_DISK_DIR:-/var/tmp/wemeet-bench-disk}
REPS=${BENCH_REPS:-5}       # downloads
VREPS=${BENCH_VERIFY_REPS:-3}
S3REPS=${BENCH_S3_REPS:-2}
SCALE=${BENCH_SCALE:-1}
SKIP=" ${BENCH_SKIP:-} "
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
SIM_START=1793491200 # 2026-11-01T00:00:00Z, the tests' fixed "now"
PY=(python3 "$ROOT/bench/wemeet_bench.py")
MIB=$((1 << 20))
ONE_MIB=$((1024 / SCALE))   # the single big file, MiB
EIGHT_MIB=$((256 / SCALE))  # each of the 8 files
RSS_BIG_MIB=$((2048 / SCALE))
RESUME_MIB=$((256 / SCALE))
S3_AK=AKIABENCHARCHIVER
S3_SK=bench-secret-key-loopback-only
BUCKET=bench

log() { printf '\n== %s\n' "$*" >&2; }
skip() {
  [[ $SKIP == *" $1 "* ]] || [[ -n ${BENCH_ONLY:-} && " $BENCH_ONLY " != *" $1 "* ]]
}

# ---------------------------------------------------------------------------------------------
# Servers we start, stopped on exit by their own pid.
PIDS=()
NGINX_PID=""
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if [[ -n $NGINX_PID ]]; then kill -QUIT "$NGINX_PID" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  # What was measured survives a failed run.
  # (A smoke run, BENCH_NO_WAIT=1, leaves the recorded results alone.)
  [[ -s ${RESULTS:-} && ${BENCH_NO_WAIT:-0} != 1 && -z ${BENCH_ONLY:-} ]] && cp "$RESULTS" "$ROOT/bench/last-results.jsonl"
  rm -rf "$WORK" "$DISK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # stop one server we started, and forget it
  local pid=$1 p keep=()
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------------------------------------
# 0. Tools
install_tools() {
  [[ ${BENCH_NO_INSTALL:-0} == 1 ]] && return
  local need=()
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
  [[ -x /usr/bin/time ]] || need+=(time)
  command -v curl >/dev/null || need+=(curl)
  command -v openssl >/dev/null || need+=(openssl)
  command -v rclone >/dev/null || need+=(rclone)
  command -v valgrind >/dev/null || need+=(valgrind) # the growth group's instruction counts
  if ((${#need[@]})); then
    log "installing ${need[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ! command -v aws >/dev/null; then
    log "installing awscli (pip)"
    python3 -m pip install -q awscli || true
  fi
}

# ---------------------------------------------------------------------------------------------
# Quiet machine: the 1-minute load must be below 0.7 before we start (waiting up to 10 min);
# before each measurement, the CPUs must be idle over one second (our own load average
# would otherwise block the next measurement for minutes).
QUIET="yes"
wait_load() {
  local i load
  if [[ ${BENCH_NO_WAIT:-0} == 1 ]]; then
    QUIET="no: BENCH_NO_WAIT=1 (a smoke run; the figures are not comparable)"
    return 0
  fi
  for ((i = 0; i < 20; i++)); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" 'BEGIN { exit !(l < 0.7) }'; then return 0; fi
    log "1-minute load is $load; waiting 30 s for a quiet machine ($i/20)"
    sleep 30
  done
  QUIET="no: the 1-minute load stayed at or above 0.7 for 10 minutes (it was $load when the run started)"
}
cpu_busy_pct() { # share of all CPUs busy (not idle, not iowait) over one second
  local a b
  a=$(head -1 /proc/stat)
  sleep 1
  b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); t = 0
    for (i = 2; i <= n; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    printf "%d", (t > 0 ? 100 * (t - idle) / t : 0) }'
}
BUSY_WAITS=0
wait_idle() {
  local i busy
  [[ ${BENCH_NO_WAIT:-0} == 1 ]] && return 0
  for ((i = 0; i < 20; i++)); do
    busy=$(cpu_busy_pct)
    ((busy < 20)) && return 0
    BUSY_WAITS=$((BUSY_WAITS + 1))
    log "CPUs ${busy}% busy (not us); waiting 30 s"
    sleep 30
  done
  QUIET="no: other processes kept the CPUs busy during the run"
}

now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.6f", (b - a) / 1e9 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s }'; }

RESULTS="$WORK/results.jsonl"
emit() { # emit key=value ... as one JSON line (numbers stay numbers), with the last measure's CPU
  local extra=()
  [[ -n $CPU ]] && extra+=(cpu="$CPU")
  [[ -n $SRV && ${#SRV_PIDS[@]} -gt 0 ]] && extra+=(srv_cpu="$SRV")
  [[ -n $OTHER ]] && extra+=(other_cores="$OTHER")
  CPU="" SRV="" OTHER=""
  python3 - "$@" "${extra[@]}" >>"$RESULTS" <<'EOF'
import json, sys
row = {}
for kv in sys.argv[1:]:
    k, v = kv.split("=", 1)
    try:
        row[k] = int(v)
    except ValueError:
        try:
            row[k] = float(v)
        except ValueError:
            row[k] = v
print(json.dumps(row))
EOF
}

# ---------------------------------------------------------------------------------------------
# The simulator, the archiver, nginx.
SIM_URL=""
SIM_PID=""
start_sim() { # start_sim NAME SIMULATE-FLAGS...
  local name=$1 i days=(--days 1) sharing=(--shared-fraction 1 --download-allowed-fraction 1)
  local limit=(--rate-limit-per-minute 10)
  shift
  [[ " $* " == *" --days "* ]] && days=()
  [[ " $* " == *" --rate-limit-per-minute "* ]] && limit=()
  # Throughput rows compare with curl, which needs the listing's addresses: sharing is on
  # everywhere unless a group says otherwise.
  [[ " $* " == *" --shared-fraction "* ]] && sharing=()
  WEMEET_LOG="info,wemeet_sim=debug" "$BIN" --log-format json simulate \
    --listen 127.0.0.1:0 --start "$SIM_START" --pending-fraction 0 "${days[@]}" "${sharing[@]}" \
    "${limit[@]}" "$@" >"$WORK/$name.sim.out" 2>"$WORK/$name.sim.log" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  for ((i = 0; i < 300; i++)); do
    SIM_URL=$(sed -n 's/^Tencent Meeting simulator listening on \(http[^ ]*\).*/\1/p' "$WORK/$name.sim.out")
    [[ -n $SIM_URL ]] && return 0
    sleep 0.1
  done
  echo "simulator $name did not start" >&2
  cat "$WORK/$name.sim.log" >&2
  exit 1
}

write_config() { # write_config DIR SIM-NAME [DOWNLOAD-LINES]
  local dir=$1 name=$2 extra=${3:-}
  mkdir -p "$dir"
  # The snippet `simulate` prints, plus the [download] table.
  sed -n '/^\[api\]/,/^Ctrl-C/p' "$WORK/$name.sim.out" | grep -v '^Ctrl-C' >"$dir/config.toml"
  printf '\n[download]\n%b\n' "$extra" >>"$dir/config.toml"
}

iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
SINCE=$(iso $((SIM_START - 2 * 86400)))
UNTIL=$(iso $((SIM_START + 86400)))

run_archiver() { # run_archiver DIR [backfill args...]: backfill under /usr/bin/time -v
  local dir=$1
  shift
  /usr/bin/time -v -o "$dir/time-v.txt" env WEMEET_LOG=info "$BIN" --log-format json \
    --config "$dir/config.toml" backfill --since "$SINCE" --until "$UNTIL" "$@" \
    >"$dir/stdout.txt" 2>"$dir/archiver.log"
}

# timed KEY BYTES CMD-TEXT COMMAND...: on an idle machine, measures COMMAND and emits its
# row as KEY: BYTES over the seconds it took, CMD-TEXT the command as the report shows it.
timed() {
  local key=$1 bytes=$2 text=$3
  shift 3
  wait_idle
  measure "$@"
  emit key="$key" rate="$(rate "$bytes" "$SECS")" seconds="$SECS" cmd="$text"
}

sim_log_mark() { wc -l <"$WORK/$1.sim.log"; }
sim_log_since() { tail -n +"$(($2 + 1))" "$WORK/$1.sim.log" >"$3"; }

# archive_from_sim SIM-NAME DIR [DOWNLOAD-LINES]: a measured backfill from simulator
# SIM-NAME into a fresh database and archive in DIR; SPAN_SECS is its download span (first
# download answered to last file archived, listing excluded), joined from the simulator's
# log and the archiver's by `wemeet_bench.py span`.
archive_from_sim() {
  local name=$1 dir=$2 extra=${3:-} mark span
  rm -rf "$dir"
  write_config "$dir" "$name" "$extra"
  mark=$(sim_log_mark "$name")
  wait_idle
  measure run_archiver "$dir"
  sim_log_since "$name" "$mark" "$dir/sim.log"
  span=$("${PY[@]}" span "$dir/sim.log" "$dir/archiver.log")
  SPAN_SECS=$(json_field "$span" seconds)
}

NGX_URL=""
start_nginx() {
  local port conf=$WORK/nginx/nginx.conf
  mkdir -p "$WORK/nginx" "$WORK/www"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  {
    [[ $EUID == 0 ]] && echo "user root;"
    cat <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path $WORK/nginx/tmp;
  server {
    listen 127.0.0.1:$port;
    root $WORK/www;
  }
}
EOF
  } >"$conf"
  nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$conf" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  NGX_URL="http://127.0.0.1:$port"
  for ((i = 0; i < 100; i++)); do
    if curl -s -o /dev/null "$NGX_URL/"; then
      # master and worker: the CPU the server spends per row
      read -r -a NGX_PIDS <<<"$NGINX_PID $(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null)"
      return 0
    fi
    sleep 0.1
  done
  echo "nginx did not start" >&2
  cat "$WORK/nginx/error.log" >&2
  exit 1
}

fetch_config() { # fetch_config DIR [STORAGE-TABLE]: an archiver config for fetch_url
  local dir=$1 storage=${2:-}
  mkdir -p "$dir"
  [[ -n $storage ]] || storage='[storage]
path = "recordings"'
  cat >"$dir/config.toml" <<EOF
# fetch_url never calls the API: it only needs a valid [api] table.
[api]
base_url = "http://127.0.0.1:9"
app_id = "1"
secret_id = "unused"
secret_key = "unused"
operator_id = "admin"

$storage

[database]
path = "state.db"
EOF
}

run_fetch() { # run_fetch DIR WORKERS URL...: prints the JSON line of fetch_url
  local dir=$1 workers=$2
  shift 2
  /usr/bin/time -v -o "$dir/time-v.txt" "$FETCH_BIN" --config "$dir/config.toml" --workers "$workers" "$@" \
    2>"$dir/fetch.log"
}
# fetch_fresh DIR WORKERS URL...: run_fetch measured, into a fresh archive in DIR on tmpfs.
fetch_fresh() {
  rm -rf "$1"
  fetch_config "$1"
  wait_idle
  measure run_fetch "$@"
}
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# measure CMD...: runs CMD in this shell (its output in $WORK/measure.out) and sets SECS (wall),
# CPU (CPU seconds of CMD and everything it started) and SRV (CPU seconds of the servers in
# SRV_PIDS meanwhile); the next `emit` records CPU and SRV with its row.
HZ=$(getconf CLK_TCK)
SRV_PIDS=()
SECS="" CPU="" SRV="" OTHER=""
srv_ticks() {
  local p t=0 x
  for p in "${SRV_PIDS[@]}"; do
    x=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || x=0
    t=$((t + ${x:-0}))
  done
  echo "$t"
}
children_cpu() { # user + system seconds of this shell's waited-for children, from `times`
  awk 'NR == 2 {
    n = split($0, f, " "); t = 0
    for (i = 1; i <= n; i++) { split(f[i], ms, "m"); sub("s", "", ms[2]); t += ms[1] * 60 + ms[2] }
    print t }' "$1"
}
# user + nice + system + steal (time the hypervisor gave our virtual CPUs to someone else)
busy_ticks() { head -1 /proc/stat | awk '{ print $2 + $3 + $4 + $9 }'; }
measure() {
  local t0 s0 b0
  s0=$(srv_ticks)
  b0=$(busy_ticks)
  times >"$WORK/times0"
  t0=$(now_ns)
  "$@" >"$WORK/measure.out" || return 1
  SECS=$(secs_since "$t0")
  times >"$WORK/times1"
  SRV=$(awk -v a="$s0" -v b="$(srv_ticks)" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  CPU=$(awk -v a="$(children_cpu "$WORK/times0")" -v b="$(children_cpu "$WORK/times1")" 'BEGIN { printf "%.2f", b - a }')
  # CPU that neither the command nor our servers used meanwhile, in cores: another build
  # or test run on the machine, or steal by the hypervisor. The report leaves such
  # repetitions out.
  OTHER=$(awk -v a="$b0" -v b="$(busy_ticks)" -v hz="$HZ" -v c="$CPU" -v s="$SRV" -v t="$SECS" \
    'BEGIN { o = ((b - a) / hz - c - s) / t; printf "%.2f", o < 0 ? 0 : o }')
}
curl_sha() { curl -s "$1" | sha256sum; }
curl_ossl() { curl -s "$1" | openssl dgst -sha256; } # the fastest common SHA-256 (SHA-NI)
curl_o_sync() { curl -s -o "$1" "$2" && sync "$1"; }
curl_par_o() { (cd "$1" && xargs -P 4 -n 1 curl -s -O <"$2"); }
curl_par_named() { (cd "$1" && awk -F'\t' '{print $1 ".bin\n" $3}' "$2" | xargs -P 4 -n 2 sh -c 'curl -s -o "$0" "$1"'); }
curl_par_sha() { xargs -P 4 -n 1 sh -c 'curl -s "$0" | sha256sum' <"$1"; }
curl_par_ossl() { xargs -P 4 -n 1 sh -c 'curl -s "$0" | openssl dgst -sha256' <"$1"; }
curl_aws() { curl -s "$1" | aws s3 cp - "$2" --endpoint-url "$3" --only-show-errors; }

# ---------------------------------------------------------------------------------------------
install_tools
mkdir -p "$WORK" "$DISK"
chmod 755 "$WORK"
rm -f "$RESULTS"

log "building (release) in $CARGO_TARGET_DIR"
cargo build --release --quiet
BIN=$CARGO_TARGET_DIR/release/wemeet-archiver
FETCH_BIN=""
S3_BIN=""
# The helper programs serve the nginx, disk and S3 groups only: not built when those are
# skipped (a run of the growth group alone needs neither).
NEED_BENCHES=0
for g in ngx1 disk ngx8 s3; do skip "$g" || NEED_BENCHES=1; done
if [[ ${BENCH_ONLY:-} == growth ]]; then NEED_BENCHES=0; fi
if ((NEED_BENCHES)) && cargo bench --no-run --quiet --bench fetch_url --bench s3_server --message-format=json \
  >"$WORK/bench-build.json" 2>"$WORK/bench-build.err"; then
  FETCH_BIN=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] and m.get("executable"):
        print(m["executable"])' "$WORK/bench-build.json" fetch_url)
  S3_BIN=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] and m.get("executable"):
        print(m["executable"])' "$WORK/bench-build.json" s3_server)
elif ((NEED_BENCHES)); then
  echo "benches did not build; the nginx and S3 rows will be missing:" >&2
  cat "$WORK/bench-build.err" >&2
fi
"${PY[@]}" self-test >/dev/null

log "waiting for a quiet machine (1-minute load < 0.7)"
wait_load
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# Machine description.
python3 - "$WORK/machine.json" <<EOF
import json, os, platform, subprocess, sys
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
flags = sh("grep -m1 '^flags' /proc/cpuinfo")
if " sha_ni" in flags:
    cpu += " (SHA-NI: yes)"
json.dump({
    "nproc": sh("nproc"),
    "cpu": cpu,
    "mem": sh("free -h | awk '/^Mem:/ {print \$2}'") + " RAM",
    "kernel": sh("uname -sr"),
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
    "commit": sh("git -C '$ROOT' rev-parse --short HEAD") + (" + uncommitted changes" if sh("git -C '$ROOT' status --porcelain -- src Cargo.toml") else ""),
    "tools": "; ".join([sh("curl --version | head -1 | cut -d' ' -f1-2"), sh("nginx -v 2>&1"), sh("sha256sum --version | head -1"),
                        sh("rclone --version 2>/dev/null | head -1"), sh("aws --version 2>&1 | cut -d' ' -f1"), sh("rustc --version")]),
    "work": "$WORK", "work_fs": sh("df -T '$WORK' | awk 'NR==2 {print \$2}'"),
    "disk_dir": "$DISK (" + sh("df -T '$DISK' | awk 'NR==2 {print \$2\" on \"\$1}'") + ")",
    "quiet": "pending",
    "notes": "$ROOT/bench/NOTES.md",
    "sizes": {"one": $ONE_MIB, "eight": $EIGHT_MIB, "rss_big": $RSS_BIG_MIB, "resume": $RESUME_MIB},
}, open(sys.argv[1], "w"))
EOF

# Sections 1 to 5d share servers and files (nginx, the bytes it serves): a run of the growth
# group alone (BENCH_ONLY=growth) needs none of them.
if [[ ${BENCH_ONLY:-} != growth ]]; then

# ---------------------------------------------------------------------------------------------
# 1. One big file: archiver vs curl -o vs curl | sha256sum, from the simulator and from nginx.
# nginx serves the groups that compare with curl, aws and rclone: not started without them.
NEED_NGINX=0
for g in sim1 ngx1 disk sim8 ngx8 verify s3; do skip "$g" || NEED_NGINX=1; done
if ((NEED_NGINX)); then start_nginx; fi
ONE=$((ONE_MIB * MIB))
if ! skip sim1; then
  log "1 x ${ONE_MIB} MiB from the simulator"
  start_sim sim1 --meetings 1 --min-files 1 --max-files 1 --min-size "${ONE_MIB}MiB" --max-size "${ONE_MIB}MiB"
  write_config "$WORK/sim1-url" sim1
  URL=$("${PY[@]}" list-urls "$WORK/sim1-url/config.toml" $((SIM_START - 2 * 86400)) $((SIM_START + 86400)) | cut -f3)
  wait_idle
  SRV_PIDS=("$SIM_PID")
  measure curl -s -o /dev/null "$URL"
  s=$SECS
  emit key=sim1.raw rate="$(rate $ONE "$s")" seconds="$s" cmd='curl -s -o /dev/null "$URL"'
  for ((r = 1; r <= REPS; r++)); do
    # archiver (fresh database and archive each time)
    archive_from_sim sim1 "$WORK/sim1-a"
    s=$SPAN_SECS
    emit key=sim1.archiver rate="$(rate $ONE "$s")" seconds="$s" rss_kib="$("${PY[@]}" rss "$WORK/sim1-a/time-v.txt")" \
      cmd='wemeet-archiver --config C backfill --since 2026-10-30T00:00:00Z --until 2026-11-02T00:00:00Z'
    # curl -o (the file it writes is what nginx serves next)
    rm -f "$WORK/www/one.bin"
    timed sim1.curl $ONE 'curl -s -o FILE "$URL"' curl -s -o "$WORK/www/one.bin" "$URL"
    timed sim1.curlsha $ONE 'curl -s "$URL" | sha256sum' curl_sha "$URL"
    sum=$(cut -d' ' -f1 "$WORK/measure.out")
  done
  ONE_SHA=$sum
  SRV_PIDS=()
  stop_pid "$SIM_PID"
  archived_sha=$(grep -o '"sha256":"[0-9a-f]*"' "$WORK/sim1-a/archiver.log" | head -1 | cut -d'"' -f4)
  [[ $archived_sha == "$ONE_SHA" ]] || { echo "archiver and curl disagree on the SHA-256: $archived_sha vs $ONE_SHA" >&2; exit 1; }
elif ((NEED_NGINX)); then
  # nginx still needs the bytes: any file of the same size does.
  head -c "$ONE" /dev/urandom >"$WORK/www/one.bin"
  ONE_SHA=$(sha256sum "$WORK/www/one.bin" | cut -d' ' -f1)
fi

if ! skip ngx1 && [[ -n $FETCH_BIN ]]; then
  log "1 x ${ONE_MIB} MiB from nginx"
  SRV_PIDS=("${NGX_PIDS[@]}")
  for ((r = 1; r <= REPS; r++)); do
    fetch_fresh "$WORK/ngx1-a" 1 "$NGX_URL/one.bin"
    out=$(cat "$WORK/measure.out")
    [[ $out == *"$ONE_SHA"* ]] || { echo "fetch_url: wrong SHA-256: $out" >&2; exit 1; }
    s=$(json_field "$out" seconds)
    emit key=ngx1.archiver rate="$(rate $ONE "$s")" seconds="$s" rss_kib="$("${PY[@]}" rss "$WORK/ngx1-a/time-v.txt")" \
      cmd='cargo bench --bench fetch_url -- --config C --workers 1 "$NGX/one.bin"'
    rm -rf "$WORK/ngx1-a"
    timed ngx1.curl $ONE 'curl -s -o FILE "$NGX/one.bin"' curl -s -o "$WORK/c.bin" "$NGX_URL/one.bin"
    rm -f "$WORK/c.bin"
    wait_idle
    measure curl_sha "$NGX_URL/one.bin"
    s=$SECS
    sum=$(cut -d' ' -f1 "$WORK/measure.out")
    [[ $sum == "$ONE_SHA" ]]
    emit key=ngx1.curlsha rate="$(rate $ONE "$s")" seconds="$s" cmd='curl -s "$NGX/one.bin" | sha256sum'
    wait_idle
    measure curl_ossl "$NGX_URL/one.bin"
    s=$SECS
    grep -q "$ONE_SHA" "$WORK/measure.out"
    emit key=ngx1.curlossl rate="$(rate $ONE "$s")" seconds="$s" cmd='curl -s "$NGX/one.bin" | openssl dgst -sha256'
    # The hashing half of the limit: SHA-256 of the same file (in the page cache).
    wait_idle
    measure openssl dgst -sha256 "$WORK/www/one.bin"
    s=$SECS
    grep -q "$ONE_SHA" "$WORK/measure.out"
    emit key=ngx1.ossl rate="$(rate $ONE "$s")" seconds="$s" cmd='openssl dgst -sha256 FILE   # the file nginx serves, on tmpfs'
  done
fi

if ! skip disk && [[ -n $FETCH_BIN ]]; then
  log "1 x ${ONE_MIB} MiB from nginx onto a disk ($DISK)"
  SRV_PIDS=("${NGX_PIDS[@]}")
  for ((r = 1; r <= REPS; r++)); do
    rm -rf "$DISK/a" "$DISK/c.bin"
    fetch_config "$DISK/a"
    sync
    wait_idle
    measure run_fetch "$DISK/a" 1 "$NGX_URL/one.bin"
    out=$(cat "$WORK/measure.out")
    s=$(json_field "$out" seconds)
    emit key=disk1.archiver rate="$(rate $ONE "$s")" seconds="$s" \
      cmd='cargo bench --bench fetch_url -- --config C --workers 1 "$NGX/one.bin"   # storage.path on disk'
    rm -rf "$DISK/a"
    sync
    timed disk1.curl $ONE 'curl -s -o DISK/FILE "$NGX/one.bin" && sync DISK/FILE' \
      curl_o_sync "$DISK/c.bin" "$NGX_URL/one.bin"
    wait_idle
    measure openssl dgst -sha256 "$DISK/c.bin"
    s=$SECS
    grep -q "$ONE_SHA" "$WORK/measure.out"
    rm -f "$DISK/c.bin"
    emit key=disk1.ossl rate="$(rate $ONE "$s")" seconds="$s" cmd='openssl dgst -sha256 DISK/FILE   # the file curl just wrote'
  done
fi

# ---------------------------------------------------------------------------------------------
# 2. Eight files, four at a time.
EIGHT=$((8 * EIGHT_MIB * MIB))
if ! skip sim8; then
  log "8 x ${EIGHT_MIB} MiB from the simulator, 4 at a time"
  start_sim sim8 --meetings 8 --min-files 1 --max-files 1 --min-size "${EIGHT_MIB}MiB" --max-size "${EIGHT_MIB}MiB"
  write_config "$WORK/sim8-url" sim8
  "${PY[@]}" list-urls "$WORK/sim8-url/config.toml" $((SIM_START - 2 * 86400)) $((SIM_START + 86400)) >"$WORK/sim8.urls"
  cut -f3 "$WORK/sim8.urls" >"$WORK/sim8.list"
  wait_idle
  SRV_PIDS=("$SIM_PID")
  measure xargs -P 4 -n 1 curl -s -o /dev/null <"$WORK/sim8.list"
  s=$SECS
  emit key=sim8.raw rate="$(rate $EIGHT "$s")" seconds="$s" cmd='xargs -P 4 -n 1 curl -s -o /dev/null < urls'
  for ((r = 1; r <= REPS; r++)); do
    archive_from_sim sim8 "$WORK/sim8-a" 'workers = 4'
    s=$SPAN_SECS
    emit key=sim8.archiver rate="$(rate $EIGHT "$s")" seconds="$s" rss_kib="$("${PY[@]}" rss "$WORK/sim8-a/time-v.txt")" \
      cmd='wemeet-archiver --config C backfill ...   # [download] workers = 4'
    rm -rf "$WORK/www/eight"
    mkdir -p "$WORK/www/eight"
    timed sim8.curl $EIGHT 'xargs -P 4 -n 2 sh -c '"'"'curl -s -o "$0" "$1"'"'"' < names-and-urls' \
      curl_par_named "$WORK/www/eight" "$WORK/sim8.urls"
  done
  SRV_PIDS=()
  stop_pid "$SIM_PID"
elif ((NEED_NGINX)); then
  mkdir -p "$WORK/www/eight"
  for i in 1 2 3 4 5 6 7 8; do head -c $((EIGHT_MIB * MIB)) /dev/urandom >"$WORK/www/eight/f$i.bin"; done
fi
if ((NEED_NGINX)); then
  (cd "$WORK/www/eight" && ls) | sed "s|^|$NGX_URL/eight/|" >"$WORK/ngx8.list"
fi

if ! skip ngx8 && [[ -n $FETCH_BIN ]]; then
  log "8 x ${EIGHT_MIB} MiB from nginx, 4 at a time"
  SRV_PIDS=("${NGX_PIDS[@]}")
  for ((r = 1; r <= REPS; r++)); do
    # shellcheck disable=SC2046
    fetch_fresh "$WORK/ngx8-a" 4 $(cat "$WORK/ngx8.list")
    out=$(cat "$WORK/measure.out")
    s=$(json_field "$out" seconds)
    emit key=ngx8.archiver rate="$(rate $EIGHT "$s")" seconds="$s" rss_kib="$("${PY[@]}" rss "$WORK/ngx8-a/time-v.txt")" \
      cmd='cargo bench --bench fetch_url -- --config C --workers 4 $NGX/eight/f1.bin ... f8.bin'
    rm -rf "$WORK/ngx8-a" "$WORK/c8"
    mkdir -p "$WORK/c8"
    timed ngx8.curl $EIGHT 'xargs -P 4 -n 1 curl -s -O < urls' curl_par_o "$WORK/c8" "$WORK/ngx8.list"
    rm -rf "$WORK/c8"
    timed ngx8.curlsha $EIGHT 'xargs -P 4 -n 1 sh -c '"'"'curl -s "$0" | sha256sum'"'"' < urls' \
      curl_par_sha "$WORK/ngx8.list"
    timed ngx8.curlossl $EIGHT 'xargs -P 4 -n 1 sh -c '"'"'curl -s "$0" | openssl dgst -sha256'"'"' < urls' \
      curl_par_ossl "$WORK/ngx8.list"
    # The hashing work of the limit: SHA-256 of the 8 files (in the page cache), one core.
    timed ngx8.ossl $EIGHT 'openssl dgst -sha256 FILE1 ... FILE8   # the files nginx serves' \
      openssl dgst -sha256 "$WORK"/www/eight/*
  done
fi

# ---------------------------------------------------------------------------------------------
# 3. Peak RSS: 256 MiB vs 2 GiB (one file), and 8 transfers at once.
SRV_PIDS=()
if ! skip rss; then
  for spec in "rss.256m:1:${EIGHT_MIB}:1" "rss.2g:1:${RSS_BIG_MIB}:1" "rss.8x:8:${EIGHT_MIB}:8"; do
    IFS=: read -r key n size workers <<<"$spec"
    log "peak RSS: $n x $size MiB, $workers worker(s)"
    start_sim "$key" --meetings "$n" --min-files 1 --max-files 1 --min-size "${size}MiB" --max-size "${size}MiB"
    SRV_PIDS=("$SIM_PID")
    for ((r = 1; r <= VREPS; r++)); do
      rm -rf "$WORK/$key"
      write_config "$WORK/$key" "$key" "workers = $workers"
      wait_idle
      measure run_archiver "$WORK/$key"
      kib=$("${PY[@]}" rss "$WORK/$key/time-v.txt")
      emit key="$key" rss_kib="$kib" cmd="/usr/bin/time -v wemeet-archiver --config C backfill ...   # $n x $size MiB, workers = $workers"
    done
    rm -rf "$WORK/$key"
    SRV_PIDS=()
    stop_pid "$SIM_PID"
  done
fi

# ---------------------------------------------------------------------------------------------
# 4. Resume cost: SIGKILL halfway through a paced download, then finish.
if ! skip resume; then
  log "resume: SIGKILL at 50 % of ${RESUME_MIB} MiB"
  SIZE=$((RESUME_MIB * MIB))
  start_sim resume --meetings 1 --min-files 1 --max-files 1 --min-size "${RESUME_MIB}MiB" \
    --max-size "${RESUME_MIB}MiB" --bandwidth 64MiB
  D=$WORK/resume
  write_config "$D" resume
  WEMEET_LOG=info "$BIN" --log-format json --config "$D/config.toml" backfill --since "$SINCE" --until "$UNTIL" \
    >"$D/stdout1.txt" 2>"$D/archiver1.log" &
  apid=$!
  served=0
  for ((i = 0; i < 1200; i++)); do
    served=$(curl -s "$SIM_URL/admin/stats" | grep -o '"bytes_served":[0-9]*' | cut -d: -f2)
    ((served >= SIZE / 2)) && break
    sleep 0.05
  done
  kill -9 "$apid"
  wait "$apid" 2>/dev/null || true
  sleep 0.5
  killed_at=$(curl -s "$SIM_URL/admin/stats" | grep -o '"bytes_served":[0-9]*' | cut -d: -f2)
  checkpoint=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT bytes_done FROM files").fetchone()[0])' "$D/state.db")
  part=$(find "$D/recordings" -name '*.part' -printf '%s\n' | head -1)
  WEMEET_LOG=info "$BIN" --log-format json --config "$D/config.toml" backfill --since "$SINCE" --until "$UNTIL" \
    >"$D/stdout2.txt" 2>"$D/archiver2.log"
  total=$(curl -s "$SIM_URL/admin/stats" | grep -o '"bytes_served":[0-9]*' | cut -d: -f2)
  grep -q '"archived"' "$D/archiver2.log" || { echo "resume: the second run did not archive the file" >&2; exit 1; }
  emit key=resume size="$SIZE" killed_at="$killed_at" checkpoint="$checkpoint" part_len="${part:-0}" \
    unwritten=$((killed_at - ${part:-0})) refetched=$((total - SIZE)) total_served="$total" \
    cmd='backfill & kill -9 at 50 % (simulate --bandwidth 64MiB); backfill again; /admin/stats bytes_served - size'
  stop_pid "$SIM_PID"
fi

# ---------------------------------------------------------------------------------------------
# 5. Listing at the real limit: 31 windows of 31 days, 10 calls per minute.
if ! skip listing; then
  log "listing: 931 days at 10 calls/min (about 3 minutes)"
  start_sim listing --meetings 4 --days 930 --min-files 1 --max-files 1 --min-size 256KiB --max-size 256KiB
  D=$WORK/listing
  write_config "$D" listing
  since=$((SIM_START - 931 * 86400))
  until=$((SIM_START + 86400))
  windows=$(((until - since + 31 * 86400 - 1) / (31 * 86400)))
  wait_idle
  t0=$(now_ns)
  /usr/bin/time -v -o "$D/time-v.txt" env WEMEET_LOG=info "$BIN" --log-format json --config "$D/config.toml" \
    backfill --since "$(iso $since)" --until "$(iso $until)" >"$D/stdout.txt" 2>"$D/archiver.log"
  wall=$(secs_since "$t0")
  calls=$("${PY[@]}" calls "$D/state.db")
  api_calls=$("${PY[@]}" stat "$SIM_URL" api_calls)
  max60=$("${PY[@]}" stat "$SIM_URL" max_calls_in_60s)
  limited=$("${PY[@]}" stat "$SIM_URL" rate_limited)
  sustained=$(json_field "$calls" sustained_per_min)
  emit key=listing windows="$windows" calls="$api_calls" max_calls_in_60s="$max60" rate_limited="$limited" \
    sustained_per_min="$sustained" max_sent_in_60s="$(json_field "$calls" max_sent_in_60s)" wall="$wall" \
    ideal_burst=$(((api_calls - 1) / 10 * 60)) ideal_flat=$((api_calls * 6)) \
    cmd="wemeet-archiver --config C backfill --since $(iso $since) --until $(iso $until)   # simulate --days 930 --meetings 4"
  stop_pid "$SIM_PID"
fi

# ---------------------------------------------------------------------------------------------
# 5b. A year of a large account, scaled down 12x in time: 2,000 meetings over 365 days
# (12 windows), sharing as in a company (most files have no address in the listing),
# listing at 120 calls/min and addresses living 40 s instead of 10/min and 6 h, transfers
# throttled so that they last about five address lifetimes. What it shows: the listing is
# a census (each window and page once), addresses come from /v1/addresses about once per
# meeting, no transfer starts on an expired address, and the wall time is close to
# max(listing at its limit, transfers at the bandwidth).
if ! skip year; then
  log "year: 2,000 meetings over 365 days, scaled (about 4 minutes)"
  Y_MEETINGS=2000 Y_LIMIT=120 Y_ADDR_LIMIT=600 Y_TTL=40 Y_WORKERS=4 Y_BW=$((384 * 1024))
  start_sim year --meetings "$Y_MEETINGS" --days 365 --min-files 1 --max-files 2 --min-size 64KiB \
    --max-size 192KiB --shared-fraction 0.4 --download-allowed-fraction 0.5 \
    --rate-limit-per-minute "$Y_LIMIT" --addresses-rate-limit-per-minute "$Y_ADDR_LIMIT" \
    --address-ttl "${Y_TTL}s" --bandwidth "$Y_BW"
  D=$WORK/year
  write_config "$D" year "workers = $Y_WORKERS\naddress_ttl = \"${Y_TTL}s\""
  sed -i "s/^\[storage\]/requests_per_minute = $Y_LIMIT\naddresses_per_minute = $Y_ADDR_LIMIT\n\n[storage]/" "$D/config.toml"
  since=$((SIM_START - 366 * 86400))
  until=$((SIM_START + 86400))
  curl -s "$SIM_URL/admin/manifest" >"$D/manifest.json"
  wait_idle
  t0=$(now_ns)
  env WEMEET_LOG=info "$BIN" --log-format json --config "$D/config.toml" \
    backfill --since "$(iso $since)" --until "$(iso $until)" >"$D/stdout.txt" 2>"$D/archiver.log"
  wall=$(secs_since "$t0")
  curl -s "$SIM_URL/admin/stats" >"$D/stats.json"
  "${PY[@]}" year "$D/manifest.json" "$D/stats.json" "$since" "$until" "$Y_LIMIT" "$Y_WORKERS" "$Y_BW" "$Y_TTL" "$wall" \
    "$D/state.db" >"$D/year.json"
  emit key=year $(python3 -c 'import json,sys; print(" ".join(f"{k}={v}" for k, v in json.load(open(sys.argv[1])).items()))' "$D/year.json") \
    cmd="wemeet-archiver --config C backfill --since $(iso $since) --until $(iso $until)   # simulate --meetings $Y_MEETINGS --days 365 --rate-limit-per-minute $Y_LIMIT --address-ttl ${Y_TTL}s --bandwidth $Y_BW; workers = $Y_WORKERS"
  stop_pid "$SIM_PID"
fi

# ---------------------------------------------------------------------------------------------
# 5c. A one-file backfill, whole process (start, config, a new database and its migrations,
# one listing call, one /v1/addresses call, a 1 kB download, the last commit), against the
# three loopback requests it makes, timed with curl.
if ! skip onefile; then
  log "one-file backfill: 15 runs on a new database each"
  start_sim onefile --meetings 1 --min-files 1 --max-files 1 --min-size 1KB --max-size 1KB \
    --shared-fraction 1 --download-allowed-fraction 1 --rate-limit-per-minute 1000 \
    --addresses-rate-limit-per-minute 1000
  D=$WORK/onefile
  write_config "$D" onefile
  sed -i "s/^\[storage\]/requests_per_minute = 1000\naddresses_per_minute = 1000\n\n[storage]/" "$D/config.toml"
  URL=$("${PY[@]}" list-urls "$D/config.toml" $((SIM_START - 2 * 86400)) $((SIM_START + 86400)) | cut -f3)
  for ((r = 1; r <= 15; r++)); do
    rm -rf "$D/recordings" "$D"/state.db*
    wait_idle
    measure env WEMEET_LOG=warn "$BIN" --log-format json --config "$D/config.toml" backfill --since "$SINCE" --until "$UNTIL"
    emit key=onefile.archiver seconds="$SECS" cmd='wemeet-archiver --config C backfill ...   # 1 meeting, 1 file of 1 kB, a new database each run'
    rt=$(for i in 1 2 3; do curl -s -o /dev/null -w '%{time_total}\n' "$URL"; done | awk '{ s += $1 } END { printf "%.6f", s }')
    emit key=onefile.requests seconds="$rt" cmd='3 × curl -s -o /dev/null "$URL"   # the three loopback requests of a one-file backfill'
  done
  stop_pid "$SIM_PID"
fi

# ---------------------------------------------------------------------------------------------
# 5d. The webhook's fast path: seconds from a signed, encrypted event to its transfer's first
# byte and to its file archived, polls 10 minutes apart. The measurement is an ignored test
# (`tests/it/webhook.rs`), so this builds the release test binary first (a few minutes).
if ! skip webhook; then
  log "webhook fast path: the ignored benchmark test"
  cargo test --release --locked --quiet --test it --no-run
  wait_idle
  line=$(cargo test --release --locked --quiet --test it webhook::bench -- --ignored --nocapture 2>&1 |
    grep 'webhook fast path')
  emit key=webhook rounds="$(sed -E 's/.*path, ([0-9]+) recordings.*/\1/' <<<"$line")" \
    first_byte="$(sed -E 's/.*first byte median ([0-9.]+) s.*/\1/' <<<"$line")" \
    archived="$(sed -E 's/.*archived median ([0-9.]+) s.*/\1/' <<<"$line")" \
    detail="recordings of 8 MiB at 8 MiB/s, polls 10 min apart" \
    cmd='cargo test --release --test it webhook::bench -- --ignored --nocapture'
fi

fi # sections 1 to 5d

# ---------------------------------------------------------------------------------------------
# 5e. Growth (issue 21): the cost of one more recording must not grow with the archive.
# Backfills of 1k, 10k and 100k meetings of one tiny file each (the archiver's own cost
# shows, not the bytes'), 100 meetings a day so that every window holds as many, against
# the simulator with its limits raised; the newest day is left out of the backfill. Then,
# on each archive: `status`, `verify --sample 1`, `prune --dry-run`, and a live poll's work
# (a backfill of the newest day: its ~100 new meetings listed, upserted and archived, in a
# process of its own, as the service's poll would, start included; BENCH_GROWTH_POLL_REPS
# times, each on a fresh copy of the archive, the median reported).
# CPU time (the archiver's, and the simulator's apart), not wall time, is the figure: the
# machine may be shared. BENCH_GROWTH_SIZES picks the sizes; BENCH_GROWTH_CAP caps each
# backfill's wall seconds (a capped run reports CPU per meeting archived so far).
if ! skip growth; then
  G_SIZES=${BENCH_GROWTH_SIZES:-1000 10000 100000}
  G_CAP=${BENCH_GROWTH_CAP:-5400}
  G_WORKERS=8
  G_POLL_REPS=${BENCH_GROWTH_POLL_REPS:-5}
  for n in $G_SIZES; do
    days=$(((n + 99) / 100))
    log "growth: a backfill of $n meetings over $days days (cap ${G_CAP}s)"
    start_sim "growth$n" --meetings "$n" --days "$days" --min-files 1 --max-files 1 \
      --min-size 64 --max-size 64 --shared-fraction 1 --download-allowed-fraction 1 \
      --rate-limit-per-minute 10000000 --addresses-rate-limit-per-minute 10000000
    D=$WORK/growth$n
    write_config "$D" "growth$n" "workers = $G_WORKERS"
    sed -i "s/^\[storage\]/requests_per_minute = 10000\naddresses_per_minute = 10000\n\n[storage]/" "$D/config.toml"
    printf '\n[prune]\nafter = "1s"\n' >>"$D/config.toml"
    since=$(iso $((SIM_START - (days + 1) * 86400)))
    day=$(iso $((SIM_START - 86400)))
    until=$(iso $((SIM_START + 86400)))
    SRV_PIDS=("$SIM_PID")
    wait_idle
    rc=0
    measure timeout "$G_CAP" /usr/bin/time -v -o "$D/time-v.txt" env WEMEET_LOG=warn "$BIN" \
      --log-format json --config "$D/config.toml" backfill --since "$since" --until "$day" || rc=$?
    archived=$("${PY[@]}" archived "$D/state.db")
    capped=$([[ $rc != 0 ]] && echo "yes (exit $rc after ${SECS:-?} s)" || echo no)
    emit key="growth.backfill.$n" meetings="$n" archived="$archived" seconds="$SECS" \
      rss_kib="$("${PY[@]}" rss "$D/time-v.txt" 2>/dev/null || echo 0)" capped="$capped" \
      cmd="wemeet-archiver backfill --since $since --until $day   # simulate --meetings $n --days $days, 1 file of 64 B each; workers = $G_WORKERS"
    cd "$D"
    wait_idle
    measure env WEMEET_LOG=warn "$BIN" --log-format json --config config.toml status
    emit key="growth.status.$n" files="$archived" seconds="$SECS" cmd="wemeet-archiver status"
    wait_idle
    measure env WEMEET_LOG=warn "$BIN" --log-format json --config config.toml verify --sample 1 || true
    emit key="growth.verify.$n" files="$archived" seconds="$SECS" cmd="wemeet-archiver verify --sample 1"
    wait_idle
    measure env WEMEET_LOG=warn "$BIN" --log-format json --config config.toml prune --dry-run || true
    emit key="growth.prune.$n" files="$archived" seconds="$SECS" cmd="wemeet-archiver prune --dry-run   # after = 1s"
    # `reindex` of 10k and 100k files is measured by its own group (section 8, `reindex`).
    # The poll is a fifth of a second of CPU: it is repeated (the report takes the median),
    # each time on a fresh copy of the archive and database as the backfill left them.
    before=$archived
    cd "$ROOT"
    cp -a "$D" "$D.backfilled"
    for ((r = 1; r <= G_POLL_REPS; r++)); do
      rm -rf "$D"
      cp -a "$D.backfilled" "$D"
      cd "$D"
      wait_idle
      measure env WEMEET_LOG=warn "$BIN" --log-format json --config config.toml \
        backfill --since "$day" --until "$until" || true
      after=$("${PY[@]}" archived "$D/state.db")
      emit key="growth.poll.$n" files="$before" new="$((after - before))" seconds="$SECS" \
        cmd="wemeet-archiver backfill --since $day --until $until   # the newest day: a live poll's work"
      cd "$ROOT"
    done
    # The same poll once more under callgrind: the instructions it executes (user space, every
    # thread) are the same from run to run whatever else the machine does, where its CPU
    # seconds swing by ±30 % on a shared machine. (Not timed: callgrind is ~20× slower.)
    if command -v valgrind >/dev/null; then
      rm -rf "$D"
      cp -a "$D.backfilled" "$D"
      cd "$D"
      WEMEET_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$D/poll.callgrind" \
        "$BIN" --log-format json --config config.toml backfill --since "$day" --until "$until" \
        >/dev/null 2>"$D/poll.valgrind.log" || true
      after=$("${PY[@]}" archived "$D/state.db")
      emit key="growth.poll_ir.$n" files="$before" new="$((after - before))" \
        instructions="$(sed -n 's/^totals: *//p' "$D/poll.callgrind" | awk '{print $1}')" \
        cmd="valgrind --tool=callgrind wemeet-archiver backfill --since $day --until $until"
      cd "$ROOT"
    fi
    SRV_PIDS=()
    stop_pid "$SIM_PID"
    rm -rf "$D/recordings" "$D.backfilled"
  done
fi

# ---------------------------------------------------------------------------------------------
# 5e. Search: latency on 100,000 recordings with 30,000 transcripts (a database built through
# the library's state functions, not by a backfill), the index's size per MB of transcript,
# and what indexing costs an archived transcript. An ignored test (`tests/it/search.rs`),
# with its temporary database on the scratch tmpfs.
if ! skip search; then
  log "search: the ignored benchmark test"
  cargo test --release --locked --quiet --test it --no-run
  wait_idle
  line=$(TMPDIR=$WORK cargo test --release --locked --quiet --test it search::bench -- --ignored --nocapture 2>&1 |
    grep '^search bench:')
  field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$line"; }
  emit key=search recordings="$(field recordings)" transcripts="$(field transcripts)" \
    text_mb="$(field text_mb)" selector_ms="$(field selector_ms)" selector_found="$(field selector_found)" \
    selector_limit20_ms="$(field selector_limit20_ms)" text3_ms="$(field text3_ms)" \
    text3_found="$(field text3_found)" text3_limit20_ms="$(field text3_limit20_ms)" \
    text2_ms="$(field text2_ms)" text2_found="$(field text2_found)" text2_limit20_ms="$(field text2_limit20_ms)" \
    index_bytes_per_text_mb="$(field index_bytes_per_text_mb)" \
    index_transcript_ms="$(field index_transcript_ms)" mark_archived_ms="$(field mark_archived_ms)" \
    cmd='TMPDIR=/dev/shm cargo test --release --test it search::bench -- --ignored --nocapture'
fi

# ---------------------------------------------------------------------------------------------
# 6. verify vs sha256sum, on the archives of sections 1 and 2.
verify_rows() { # verify_rows KEY DIR BYTES
  local key=$1 dir=$2 bytes=$3
  find "$dir/recordings" -name '*.mp4' -print0 | sort -z >"$dir/files0"
  for ((r = 1; r <= VREPS; r++)); do
    timed "$key.jobs1" "$bytes" 'wemeet-archiver --config C verify --jobs 1' \
      env WEMEET_LOG=warn "$BIN" --log-format json --config "$dir/config.toml" verify --jobs 1
    timed "$key.jobsN" "$bytes" "wemeet-archiver --config C verify   # --jobs $(nproc)" \
      env WEMEET_LOG=warn "$BIN" --log-format json --config "$dir/config.toml" verify
    timed "$key.sha" "$bytes" 'sha256sum FILES' xargs -0 sha256sum <"$dir/files0"
    timed "$key.shaP" "$bytes" 'xargs -0 -P $(nproc) -n 1 sha256sum < files' \
      xargs -0 -P "$(nproc)" -n 1 sha256sum <"$dir/files0"
  done
}
if ! skip verify; then
  log "verify vs sha256sum"
  [[ -d $WORK/sim1-a/recordings ]] && verify_rows verify1 "$WORK/sim1-a" "$ONE"
  [[ -d $WORK/sim8-a/recordings ]] && verify_rows verify8 "$WORK/sim8-a" "$EIGHT"
fi
rm -rf "$WORK/sim1-a" "$WORK/sim8-a"

# ---------------------------------------------------------------------------------------------
# 7. S3: the archiver streaming into a multipart upload vs rclone copyurl and aws s3 cp.
if ! skip s3; then
  if [[ -z $S3_BIN || -z $FETCH_BIN ]]; then
    emit key=s3.skipped why="the bench programs did not build"
  elif ! command -v aws >/dev/null || ! command -v rclone >/dev/null; then
    emit key=s3.skipped why="aws or rclone is not installed"
  else
    log "S3 uploads of 1 x ${ONE_MIB} MiB into s3s-fs"
    mkdir -p "$WORK/s3root"
    "$S3_BIN" --listen 127.0.0.1:0 --root "$WORK/s3root" --access-key "$S3_AK" --secret-key "$S3_SK" \
      --bucket "$BUCKET" >"$WORK/s3.out" 2>"$WORK/s3.log" &
    S3_PID=$!
    PIDS+=("$S3_PID")
    EP=""
    for ((i = 0; i < 100; i++)); do
      EP=$(sed -n 's/^s3 server listening on \(http[^ ]*\).*/\1/p' "$WORK/s3.out")
      [[ -n $EP ]] && break
      sleep 0.1
    done
    SRV_PIDS=("$S3_PID")
    export AWS_ACCESS_KEY_ID=$S3_AK AWS_SECRET_ACCESS_KEY=$S3_SK AWS_DEFAULT_REGION=us-east-1
    export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
    export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
      RCLONE_CONFIG_BENCH_ENDPOINT=$EP RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$S3_AK \
      RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$S3_SK RCLONE_CONFIG_BENCH_REGION=us-east-1
    for ((r = 1; r <= S3REPS; r++)); do
      rm -rf "$WORK/s3-a" "$WORK/s3root/$BUCKET"/*
      fetch_config "$WORK/s3-a" "[storage]
backend = \"s3\"

[storage.s3]
bucket = \"$BUCKET\"
endpoint = \"$EP\"
allow_http = true
prefix = \"archiver\""
      wait_idle
      if measure run_fetch "$WORK/s3-a" 1 "$NGX_URL/one.bin"; then
        out=$(cat "$WORK/measure.out")
        s=$(json_field "$out" seconds)
        emit key=s3.archiver rate="$(rate $ONE "$s")" seconds="$s" rss_kib="$("${PY[@]}" rss "$WORK/s3-a/time-v.txt")" \
          cmd='cargo bench --bench fetch_url -- --config C "$NGX/one.bin"   # [storage.s3] defaults: 64 MiB parts, 2 in flight'
      else
        echo "archiver S3 upload failed:" >&2
        tail -5 "$WORK/s3-a/fetch.log" >&2
      fi
      wait_idle
      if measure env -u AWS_CA_BUNDLE rclone copyurl "$NGX_URL/one.bin" "bench:$BUCKET/rclone/one.bin"; then
        s=$SECS
        emit key=s3.rclone rate="$(rate $ONE "$s")" seconds="$s" cmd='rclone copyurl "$NGX/one.bin" bench:bucket/key'
      fi
      wait_idle
      if measure curl_aws "$NGX_URL/one.bin" "s3://$BUCKET/aws/one.bin" "$EP"; then
        s=$SECS
        emit key=s3.aws rate="$(rate $ONE "$s")" seconds="$s" cmd='curl -s "$NGX/one.bin" | aws s3 cp - s3://bucket/key --endpoint-url $EP'
      fi
    done
    stop_pid "$S3_PID"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 8. The archive outlives its database. `reindex` of archives of 10k and 100k small files
# (1 KiB: the cost is the catalog, not the bytes), into a new database, no API reachable;
# then a second backfill over an archive whose database was deleted (every copy adopted:
# nothing downloaded, no address call).
if ! skip reindex; then
  for spec in "10k:10000" "100k:100000"; do
    IFS=: read -r n files <<<"$spec"
    D=$WORK/reindex-$n
    rm -rf "$D"
    mkdir -p "$D"
    log "reindex: an archive of $files files"
    "${PY[@]}" gen-archive "$D/recordings" "$files" 200000001
    cat >"$D/config.toml" <<'TOML'
[api]
base_url = "http://127.0.0.1:9"
app_id = "200000001"
secret_id = "AKIDbench"
secret_key = "reindex-calls-no-api"
operator_id = "admin"

[storage]
path = "recordings"

[database]
path = "state.db"
TOML
    wait_idle
    measure /usr/bin/time -v -o "$D/time-v.txt" "$BIN" --log-format json --config "$D/config.toml" \
      reindex --no-progress
    recorded=$("$BIN" --config "$D/config.toml" status --json |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["files_reindexed"])')
    emit key="reindex.$n" files="$files" folders=$((files / 2)) seconds="$SECS" \
      rss_kib="$("${PY[@]}" rss "$D/time-v.txt")" files_recorded="$recorded" \
      note="${BENCH_REINDEX_NOTE:-}" \
      cmd="wemeet-archiver --config C reindex --no-progress   # bench/wemeet_bench.py gen-archive ROOT $files"
    rm -rf "$D"
  done

  log "second backfill over an archive whose database was deleted"
  start_sim backfill2 --meetings 25 --min-files 1 --max-files 3 --min-size 1MiB --max-size 4MiB \
    --shared-fraction 0
  D=$WORK/backfill2
  rm -rf "$D"
  write_config "$D" backfill2
  t0=$(now_ns)
  run_archiver "$D"
  first=$(secs_since "$t0")
  served0=$("${PY[@]}" stat "$SIM_URL" bytes_served)
  addr0=$("${PY[@]}" stat "$SIM_URL" address_calls)
  files=$(find "$D/recordings" -name '*.mp4' | wc -l)
  bytes=$(find "$D/recordings" -name '*.mp4' -printf '%s\n' | awk '{ s += $1 } END { print s }')
  rm -f "$D/state.db" "$D/state.db-wal" "$D/state.db-shm"
  wait_idle
  measure run_archiver "$D"
  emit key=reindex.backfill2 files="$files" bytes="$bytes" seconds="$SECS" first_seconds="$first" \
    refetched=$(($("${PY[@]}" stat "$SIM_URL" bytes_served) - served0)) \
    address_calls=$(($("${PY[@]}" stat "$SIM_URL" address_calls) - addr0)) \
    note="${BENCH_REINDEX_NOTE:-}" \
    cmd="backfill; rm state.db; backfill again   # simulate --meetings 25 --max-files 3 --max-size 4MiB --shared-fraction 0"
  rm -rf "$D"
  stop_pid "$SIM_PID"
fi

# ---------------------------------------------------------------------------------------------
# Report.
if ((BUSY_WAITS > 0)) && [[ $QUIET == yes ]]; then
  QUIET="yes, after waiting $BUSY_WAITS time(s) 30 s for other processes"
fi
python3 - "$WORK/machine.json" "$QUIET" "$LOAD_AT_START" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["quiet"] = f"{sys.argv[2]} (load average at the start of the measurements: {sys.argv[3]})"
json.dump(m, open(sys.argv[1], "w"))
EOF
if [[ -n ${BENCH_ONLY:-} ]]; then
  # The groups not run keep their recorded rows (and the report says which run they are from).
  "${PY[@]}" merge "$ROOT/bench/last-results.jsonl" "$ROOT/bench/last-machine.json" "$RESULTS" \
    "$WORK/machine.json" "$BENCH_ONLY"
fi
"${PY[@]}" render "$RESULTS" "$WORK/machine.json" "$OUT"
# Kept so that the report can be re-rendered (after editing bench/NOTES.md) without a re-run:
#   python3 bench/wemeet_bench.py render bench/last-results.jsonl bench/last-machine.json BENCHMARKS.md
if [[ ${BENCH_NO_WAIT:-0} != 1 || -n ${BENCH_ONLY:-} ]]; then
  cp "$RESULTS" "$ROOT/bench/last-results.jsonl"
  cp "$WORK/machine.json" "$ROOT/bench/last-machine.json"
fi
log "wrote $OUT"
