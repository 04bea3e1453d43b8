#!/usr/bin/env bash
# Sourced, not run: the one way the CI test scripts run local servers: a free loopback port, a
# readiness wait that gives up when the server dies or takes too long, and a stop of every server
# (then the removal of the scratch directory) when the script exits, whatever the way.
#
#   servers_init TMP                   traps EXIT (stop the servers, remove TMP, keep the status),
#                                      INT (exit 130) and TERM (exit 143)
#   port=$(free_port)                  a loopback port free right now
#   cmd & server_track WHAT $! LOG     stopped at exit, in the order tracked; WHAT names it in messages
#   server_wait WHAT PID URL TIMEOUT LOG CHECK...
#                                      runs CHECK... (0 = ready) every 0.5 s; exits 1, with LOG's
#                                      end, when PID dies or TIMEOUT seconds pass. Sets server_ready_secs.
#   log_tail FILE                      the last 30 lines of a log, on stderr
#   servers_report_dead                for each tracked server no longer running: a line and its log's end

server_pids=()
server_names=()
server_logs=()
servers_tmp=""

servers_init() {
  servers_tmp="$1"
  trap servers_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

servers_cleanup() {
  local status=$?
  local pid
  for pid in "${server_pids[@]}"; do
    stop_pid "$pid"
  done
  [[ -z "$servers_tmp" ]] || rm -rf "$servers_tmp"
  exit "$status"
}

# stop_pid PID: TERM, up to 5 s to go, then KILL; reaped.
stop_pid() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_track() {
  server_names+=("$1")
  server_pids+=("$2")
  server_logs+=("$3")
}

server_wait() {
  local what="$1" pid="$2" url="$3" timeout="$4" log_file="$5"
  shift 5
  local started=$SECONDS
  until "$@" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "error: the $what exited before it answered /${url#http://*/}"
      log_tail "$log_file"
      exit 1
    fi
    if ((SECONDS - started > timeout)); then
      log "error: the $what did not answer $url within ${timeout}s"
      log_tail "$log_file"
      exit 1
    fi
    sleep 0.5
  done
  # shellcheck disable=SC2034 # for the sourcing script
  server_ready_secs=$((SECONDS - started))
}

log_tail() {
  echo "--- last lines of $1:" >&2
  tail -n 30 "$1" >&2 || true
}

servers_report_dead() {
  local i
  for i in "${!server_pids[@]}"; do
    if ! kill -0 "${server_pids[$i]}" 2>/dev/null; then
      log "the ${server_names[$i]} is no longer running"
      log_tail "${server_logs[$i]}"
    fi
  done
}
