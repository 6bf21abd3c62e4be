# Sourced by ./dev: a three-node MariaDB Galera cluster and a second web node on one machine
# (./dev up --galera, ./dev test --galera). Uses the stack variables of ./dev (STACK, STATE, RUN,
# LOG, PORT, CONF, BUILD) and its helpers (say, die, pid_alive, read_pid, stop_pids, show_log).
#
# Database node N (1..3) listens on 127.0.0.1:GALERA_BASE+N (SQL), +10+N (group communication),
# +20+N (incremental state transfer) and +30+N (full state transfer, rsync); its files live in
# galera_dir N. Web node 1 is the stack's usual web server on PORT, using DB nodes 1, 2, 3 in that
# order; web node 2 is a second lighttpd on PORT+1 with its own state directory ($STATE/node2),
# spool and node name, using DB nodes 2, 3, 1.

GALERA_PACKAGES=(galera-4 rsync iproute2)
GALERA_NODES=3

galera_base() { if [ "$STACK" = dev ]; then echo "${ZENN_GALERA_PORT:-24300}"; else echo "${ZENN_TEST_GALERA_PORT:-24400}"; fi; }
galera_port() { echo $(($(galera_base) + $1)); }

# The nodes' files. mariadbd runs as mysql when ./dev runs as root (the rsync state transfer
# refuses to run as root), so they live where mysql can reach them whatever the work tree's
# permissions: under /var/tmp, named after the stack's state directory.
galera_root() {
  if [ "$(id -u)" = 0 ]; then
    echo "/var/tmp/zenn-galera-$(printf '%s' "$STATE" | md5sum | cut -c1-12)"
  else
    echo "$STATE/galera"
  fi
}
galera_dir() { echo "$(galera_root)/node$1"; }
galera_sock() { echo "$(galera_dir "$1")/mysqld.sock"; }
galera_user() { if [ "$(id -u)" = 0 ]; then echo mysql; else id -un; fi; }

galera_query() { # N SQL
  mariadb --no-defaults --socket="$(galera_sock "$1")" -uroot -N -B -e "$2"
}

galera_status() { galera_query "$1" "SHOW STATUS LIKE '$2'" 2>/dev/null | cut -f2; }

galera_running() {
  pid_alive "$(read_pid "$(galera_dir "$1")/mariadbd.pid")"
}

# The cluster is usable when some node is in the primary component and synced.
galera_any_synced() {
  local n
  for ((n = 1; n <= GALERA_NODES; n++)); do
    galera_running $n && [ "$(galera_status $n wsrep_local_state_comment)" = Synced ] && return 0
  done
  return 1
}

# [database] hosts for web node W (1 or 2): its own DB node first, the others after.
galera_hosts() {
  local w=$1 n list=() first
  first=$w
  for ((n = 0; n < GALERA_NODES; n++)); do
    list+=("127.0.0.1:$(galera_port $((((first - 1 + n) % GALERA_NODES) + 1)))")
  done
  local IFS=,
  echo "${list[*]}" | sed 's/,/, /g'
}

galera_address() {
  local n list=()
  for ((n = 1; n <= GALERA_NODES; n++)); do list+=("127.0.0.1:$(galera_port $((n + 10)))"); done
  local IFS=,
  echo "gcomm://${list[*]}"
}

# galera_node_start N [--wsrep-new-cluster]: start DB node N and wait until it is synced.
galera_node_start() {
  local n=$1 boot=${2:-} dir u g i state
  dir=$(galera_dir "$n")
  u=$(galera_user)
  galera_running "$n" && return 0
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
    [ "$(id -u)" = 0 ] && chown -R "$u:" "$dir"
    if ! mariadb-install-db --no-defaults --user="$u" --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1; then
      show_log "$dir/install.log"
      die "mariadb-install-db failed for Galera node $n"
    fi
  fi
  [ "$(id -u)" = 0 ] && chown -R "$u:" "$dir"
  g=$(galera_port $((n + 10)))
  say "Starting Galera node $n (127.0.0.1:$(galera_port "$n"))${boot:+, bootstrapping the cluster}"
  setsid mariadbd --no-defaults --user="$u" --datadir="$dir/data" --socket="$(galera_sock "$n")" \
    --port="$(galera_port "$n")" --bind-address=127.0.0.1 --pid-file="$dir/mariadbd.pid" \
    --log-error="$dir/mariadbd.err" --innodb-buffer-pool-size=64M --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2 \
    --log-bin-trust-function-creators=1 --innodb-flush-log-at-trx-commit=2 \
    --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
    --wsrep-cluster-name="zenn-$STACK" --wsrep-cluster-address="$(galera_address)" \
    --wsrep-node-name="db$n" --wsrep-node-address="127.0.0.1:$g" \
    --wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:$g;ist.recv_addr=127.0.0.1:$(galera_port $((n + 20)));gcache.size=128M" \
    --wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:$(galera_port $((n + 30)))" \
    $boot </dev/null >>"$dir/mariadbd.out" 2>&1 8>&- 9>&- &
  local pid=$!
  for ((i = 0; i < 1200; i++)); do
    state=$(galera_status "$n" wsrep_local_state_comment || true)
    [ "$state" = Synced ] && break
    if ! pid_alive "$pid"; then
      show_log "$dir/mariadbd.err" 30
      die "Galera node $n exited during startup"
    fi
    sleep 0.1
  done
  [ $i -lt 1200 ] || { show_log "$dir/mariadbd.err" 30; die "Galera node $n was not synced within 120 s"; }
}

# The node to bootstrap a stopped cluster from: the one Galera marked safe to bootstrap (the last
# to stop cleanly), else node 1.
galera_boot_node() {
  local n
  for ((n = 1; n <= GALERA_NODES; n++)); do
    grep -qs '^safe_to_bootstrap: *1' "$(galera_dir $n)/data/grastate.dat" && { echo $n; return 0; }
  done
  # none (a crash): node 1, marked safe by hand
  sed -i 's/^safe_to_bootstrap: *0/safe_to_bootstrap: 1/' "$(galera_dir 1)/data/grastate.dat" 2>/dev/null || true
  echo 1
}

# galera_start: the whole cluster, database "zenn" and the gateway's user; sets what galera_env does.
# The caller has installed GALERA_PACKAGES (ensure_packages).
galera_start() {
  local n boot pwf
  if ! galera_any_synced; then
    for ((n = 1; n <= GALERA_NODES; n++)); do galera_node_stop "$n" >/dev/null; done
    boot=$(galera_boot_node)
    galera_node_start "$boot" --wsrep-new-cluster
  fi
  for ((n = 1; n <= GALERA_NODES; n++)); do galera_node_start "$n"; done
  # the gateway connects over TCP, as a user of its own (root may only use the socket)
  pwf=$(galera_root)/zenn.password
  if [ ! -s "$pwf" ]; then
    (umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$pwf")
  fi
  galera_env
  db_query "CREATE DATABASE IF NOT EXISTS zenn CHARACTER SET utf8mb4;
    CREATE USER IF NOT EXISTS 'zenn'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
    ALTER USER 'zenn'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL ON zenn.* TO 'zenn'@'127.0.0.1';" >/dev/null
}

galera_node_stop() { # N [kill]
  local n=$1 how=${2:-} dir pid
  dir=$(galera_dir "$n")
  pid=$(read_pid "$dir/mariadbd.pid")
  pid_alive "$pid" || { rm -f "$dir/mariadbd.pid"; return 0; }
  if [ "$how" = kill ]; then
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
  else
    timeout 60 mariadb-admin --no-defaults --socket="$(galera_sock "$n")" -uroot shutdown >/dev/null 2>&1 || true
    stop_pids 60 "$pid"
  fi
  rm -f "$dir/mariadbd.pid"
  say "Stopped Galera node $n ($STACK stack, pid $pid${how:+, SIGKILL})"
}

# Stop the nodes in reverse order, so that node 1 stops last and is the one to bootstrap from.
galera_stop() {
  local n
  [ -d "$(galera_root)" ] || return 0
  for ((n = GALERA_NODES; n >= 1; n--)); do galera_node_stop "$n"; done
}

galera_wipe() { galera_stop; rm -rf "$(galera_root)"; }

# ---- web node 2

# node2_vars: switch the stack variables to web node 2 (call in a subshell or restore after).
node2_vars() {
  STATE=$STATE/node2
  RUN=$RUN/node2
  LOG=$STATE/log
  DB=$STATE/db
  CONF=$STATE/zenn.conf
  LCONF=$STATE/lighttpd.conf
  ACONF=$STATE/apache.conf
  PORT=$((PORT + 1))
  NODE_NAME=web-2
  DB_HOSTS=$(galera_hosts 2)
  mkdir -p "$STATE" "$RUN" "$LOG" "$RUN/upload"
}

# node2_start MODE [EXTRA_ENV]: write web node 2's config and start its lighttpd.
node2_start() {
  local mode=$1 extra_env=${2:-}
  (
    node2_vars
    write_config "$mode" lighttpd
    lighttpd_start "$extra_env"
  )
}

node2_stop() {
  [ -d "$STATE/node2" ] || return 0
  (
    node2_vars
    lighttpd_stop
  )
}

# ---- commands

# The stack runs on the cluster: written by `up --galera` / `test --galera`.
galera_stack() { [ -f "$STATE/galera" ]; }

# galera_env: DB_USER, DB_PASSWORD, DB_HOSTS (web node 1), DB_SOCK (a running node's socket) of the
# stack's cluster, for write_config and the commands that talk to it.
galera_env() {
  local n
  DB_USER=zenn
  DB_PASSWORD=$(cat "$(galera_root)/zenn.password" 2>/dev/null || true)
  DB_HOSTS=$(galera_hosts 1)
  DB_SOCK=$(galera_sock 1)
  for ((n = 1; n <= GALERA_NODES; n++)); do
    if galera_running $n; then DB_SOCK=$(galera_sock $n); break; fi
  done
}

# ./dev test-galera kill|stop|start N: one database node of the test stack's cluster (fault tests).
cmd_test_galera() {
  set_stack test "${ZENN_BUILD_DIR:-$ROOT/build}"
  local action=${1:-} n=${2:-}
  [[ $n =~ ^[1-3]$ ]] || die "test-galera: expected kill|stop|start and a node number 1-3"
  case $action in
    kill) galera_node_stop "$n" kill ;;
    stop) galera_node_stop "$n" ;;
    start) galera_node_start "$n" ;;
    *) die "test-galera: expected kill, stop or start" ;;
  esac
}

# ./dev test-node2 kill|start: web node 2 of the test stack's cluster: SIGKILL its lighttpd and
# programs (a lost machine), or start it again with its existing config.
cmd_test_node2() {
  set_stack test "${ZENN_BUILD_DIR:-$ROOT/build}"
  galera_stack || die "test-node2: the test stack does not run on a cluster"
  (
    node2_vars
    case ${1:-} in
      kill)
        local pid kids=()
        pid=$(read_pid "$RUN/lighttpd.pid")
        while read -r p; do [ -n "$p" ] && kids+=("$p"); done < <(stack_programs "$CONF")
        pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
        [ ${#kids[@]} -gt 0 ] && kill -KILL "${kids[@]}" 2>/dev/null
        sleep 0.2
        rm -f "$RUN/lighttpd.pid" "$RUN"/*.sock-*
        say "Killed web node 2 (lighttpd $pid and ${#kids[@]} programs)" ;;
      start) lighttpd_start "" ;;
      *) die "test-node2: expected kill or start" ;;
    esac
  )
}

# ./dev test --galera [-k PAT]: the cluster suite (tests/cluster/) on a fresh three-node cluster
# with two web nodes behind lighttpd; one line "N passed, N failed" at the end.
galera_stack_up() {
  local rc
  stack_down >/dev/null 2>&1 || true
  galera_wipe >/dev/null 2>&1 || true
  rm -rf "$STATE/db" "$RUN" "$STATE/settle.spool" "$STATE/spool" "$LOG" "$STATE/node2"
  mkdir -p "$RUN" "$LOG"
  echo on >"$STATE/galera"
  if port_in_use "$PORT" || port_in_use $((PORT + 1)); then
    warn "port $PORT or $((PORT + 1)) (the web nodes) is in use"
    return 1
  fi
  say "Starting the cluster test stack under $STATE"
  set +e
  (
    set -e
    stack_dirs
    galera_start
    fake_start
    stripe_start
    GALERA_TEST=1 NODE_NAME=web-1 write_config fake lighttpd
    say "Migrating the cluster's database"
    admin db migrate
    lighttpd_start ""
    GALERA_TEST=1 node2_start fake
  )
  rc=$?
  set -e
  return $rc
}

run_galera_tests() {
  local pattern=$1 logf args=() pats=() p rc
  TEST_STACK_ACTIVE=1
  if ! galera_stack_up; then
    t_broken "[galera] the cluster test stack could not start"
    return 0
  fi
  galera_env
  FAKE_URL=$(cat "$RUN/fake.url")
  stripe_env
  [ -n "$pattern" ] && IFS=, read -ra pats <<<"$pattern"
  for p in "${pats[@]}"; do args+=(-k "$p"); done
  logf=$STATE/integration-galera.log
  local conf2=$STATE/node2/zenn.conf
  say "Cluster tests: /usr/bin/python3 tests/run_integration.py ${args[*]} tests/cluster/test_*.py"
  set +e
  ZG_BASE=http://127.0.0.1:$PORT ZG_BASE2=http://127.0.0.1:$((PORT + 1)) ZG_FAKE=$FAKE_URL ZG_STATE=$STATE \
    ZG_SERVER=lighttpd ZG_STRIPE=$STRIPE_URL ZG_STRIPE_SK=$STRIPE_SK ZG_STRIPE_WHSEC=$STRIPE_WHSEC \
    ZG_ADMIN="env ZENN_CONFIG=$(printf '%q' "$CONF") $(printf '%q' "$ADMIN")" \
    ZG_ADMIN2="env ZENN_CONFIG=$(printf '%q' "$conf2") $(printf '%q' "$ADMIN")" \
    ZG_CONFIG=$CONF ZG_CONFIG2=$conf2 ZENN_CONFIG=$CONF ZG_DEV="$ROOT/dev" ZG_DB_SOCK=$(galera_sock 2) \
    ZG_GALERA_SOCKS="$(galera_sock 1),$(galera_sock 2),$(galera_sock 3)" PYTHONDONTWRITEBYTECODE=1 \
    /usr/bin/python3 "$ROOT/tests/run_integration.py" "${args[@]}" "$ROOT"/tests/cluster/test_*.py 2>&1 </dev/null |
    sed -u -e "s/^\(PASS\|FAIL\|SKIP\) /\1 [galera] /" -e "s/^\([0-9]* passed, [0-9]* failed\)\$/[galera] \1/" |
    tee "$logf"
  rc=${PIPESTATUS[0]}
  set -e
  add_runner_result galera "$logf" "$rc" "$pattern" || true
}
