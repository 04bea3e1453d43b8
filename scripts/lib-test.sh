#!/usr/bin/env bash
# Checks scripts/lib/ (the CI scripts' shared cached installs, servers and case runner) on its own,
# in seconds, with throwaway directories and no network: each check is a case run by run_cases, the
# last line is `lib: N passed, M failed`, and the exit status is non-zero when any case failed.
#
#   bash scripts/lib-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=scripts/lib/cases.sh
source scripts/lib/cases.sh # and scripts/lib/server.sh

log() { echo "lib: $*" >&2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/qwen-lib-test.XXXXXX")"
servers_init "$tmp"

# child NAME <<'SH' ... SH: runs the bash on stdin as a script that has sourced scripts/lib/ and
# defined `log`; its stdout, stderr and exit status go to $tmp/NAME.{out,err,status}.
child() {
  local status=0
  { printf 'set -euo pipefail\nsource %q/scripts/lib/cached-install.sh\nsource %q/scripts/lib/cases.sh\n' "$root" "$root"
    printf 'log() { echo "child: $*" >&2; }\nT=%q\n' "$tmp"
    cat; } >"$tmp/$1.sh"
  bash "$tmp/$1.sh" >"$tmp/$1.out" 2>"$tmp/$1.err" || status=$?
  echo "$status" >"$tmp/$1.status"
}

# expect NAME STATUS [TEXT...]: NAME exited STATUS, and its stdout+stderr hold each TEXT.
expect() {
  local name="$1" want="$2" got text
  shift 2
  got="$(cat "$tmp/$name.status")"
  [[ "$got" == "$want" ]] || { log "  $name: exit $got, expected $want"; sed 's/^/    /' "$tmp/$name.err" >&2; return 1; }
  for text in "$@"; do
    grep -qF -- "$text" "$tmp/$name.out" "$tmp/$name.err" || { log "  $name: no \`$text\`"; return 1; }
  done
}

# An install script as the CI scripts write one: KEY, FAIL and HOLD from the environment; each run
# of the install appends a line to $T/runs and touches $T/holding.
install_script() {
  cat <<'SH'
d="$T/cache/thing"
inst() {
  mkdir -p "$d"; echo run >>"$T/runs"; touch "$T/holding"
  # HOLD: keep the lock until the second caller says it waits (10 s at most).
  if [[ -n "${HOLD:-}" ]]; then
    for _ in $(seq 100); do grep -qs "waiting for it" "$T/waiter.err" && break; sleep 0.1; done
  fi
  [[ -z "${FAIL:-}" ]] || exit 3
  touch "$d/ok"
}
ok() { [[ -f "$d/ok" ]]; }
cached_install "$d" "$KEY" inst ok
echo installed
SH
}
runs() { if [[ -f "$tmp/runs" ]]; then wc -l <"$tmp/runs"; else echo 0; fi; }

case_install_once_per_key() {
  install_script >"$tmp/install.body"
  KEY=k1 child first <"$tmp/install.body"
  KEY=k1 child again <"$tmp/install.body"
  expect first 0 installed "installing into" && expect again 0 "already installed" || return 1
  [[ "$(cat "$tmp/cache/thing/.qwen-ci-installed")" == k1 ]] || { log "  the marker is not the key"; return 1; }
  KEY=k2 child other-key <"$tmp/install.body"
  expect other-key 0 "installing into" && [[ "$(runs)" == 2 ]] || { log "  $(runs) installs, expected 2"; return 1; }
}

# A failed install leaves no marker (the next run rebuilds), and a removed file fails the check.
case_failed_install_is_not_installed() {
  install_script >"$tmp/install.body"
  KEY=k3 FAIL=1 child failing <"$tmp/install.body"
  expect failing 3 || return 1
  [[ ! -e "$tmp/cache/thing/.qwen-ci-installed" ]] || { log "  a failed install left a marker"; return 1; }
  KEY=k3 child after-failure <"$tmp/install.body"
  rm "$tmp/cache/thing/ok"
  KEY=k3 child check-failed <"$tmp/install.body"
  expect after-failure 0 "installing into" && expect check-failed 0 "installing into"
}

# A second caller waits for the first one's install (the lock) and does not install again.
case_second_caller_waits() {
  install_script >"$tmp/install.body"
  rm -f "$tmp/runs" "$tmp/holding"
  KEY=k4 HOLD=1 child slow <"$tmp/install.body" &
  local slow=$!
  for _ in $(seq 100); do [[ -e "$tmp/holding" ]] && break; sleep 0.1; done
  KEY=k4 child waiter <"$tmp/install.body"
  wait "$slow"
  expect slow 0 installed && expect waiter 0 installed "waiting for it" || return 1
  [[ "$(runs)" == 1 ]] || { log "  $(runs) installs, expected 1"; return 1; }
}

case_flag() {
  child flag-none <<'SH'
echo "[$(ci_flag --print)]"
SH
  child flag-given <<'SH'
echo "[$(ci_flag --print --print)]"
SH
  child flag-other <<'SH'
x=$(ci_flag --print --other)
echo "not reached $x"
SH
  expect flag-none 0 "[false]" && expect flag-given 0 "[true]" && expect flag-other 2 "usage: " "[--print]"
}

# A server that dies before it is ready: exit 1 with the end of its log; one that never answers:
# exit 1 after the timeout; a ready one is stopped at exit, and the scratch directory removed.
case_server_wait() {
  child dies <<'SH'
(echo "boom in the log"; exit 4) >"$T/dies.log" 2>&1 &
server_track "short server" $! "$T/dies.log"
server_wait "short server" $! http://127.0.0.1:9/v1/models 30 "$T/dies.log" false
SH
  child slow-server <<'SH'
servers_init "$T/slow-scratch"
sleep 30 &
server_track "slow server" $! /dev/null
server_wait "slow server" $! http://127.0.0.1:9/v1/models 1 /dev/null false
SH
  child ready <<'SH'
servers_init "$T/ready-scratch"
mkdir -p "$T/ready-scratch"
sleep 60 &
echo $! >"$T/ready.pid"
server_track "sleeper" "$(cat "$T/ready.pid")" /dev/null
server_wait "sleeper" "$(cat "$T/ready.pid")" http://x/y 5 /dev/null true
echo "ready after $server_ready_secs s"
exit 7
SH
  expect dies 1 "child: error: the short server exited before it answered /v1/models" "boom in the log" || return 1
  expect slow-server 1 "did not answer http://127.0.0.1:9/v1/models within 1s" || return 1
  expect ready 7 "ready after 0 s" || return 1
  ! kill -0 "$(cat "$tmp/ready.pid")" 2>/dev/null || { log "  the server outlived its script"; return 1; }
  [[ ! -e "$tmp/ready-scratch" ]] || { log "  the scratch directory is left"; return 1; }
}

# run_cases counts, names the failures and the servers that died, and fails when any case failed.
case_run_cases() {
  child cases-mixed <<'SH'
case_good() { true; }
case_bad_one() { false; }
(exit 0) & server_track "gone server" $! /dev/null
sleep 0.2
run_cases demo good bad-one good
SH
  child cases-good <<'SH'
case_good() { true; }
run_cases demo good
SH
  expect cases-mixed 1 "demo: 2 passed, 1 failed" "child: FAIL bad-one" "child: failed: bad-one" \
    "child: the gone server is no longer running" || return 1
  expect cases-good 0 "demo: 1 passed, 0 failed" || return 1
  [[ "$(tail -n 1 "$tmp/cases-mixed.out")" == "demo: 2 passed, 1 failed" ]] || { log "  not the last line"; return 1; }
}

# run_qwen: only the variables it is given, a fresh HOME, the status and the time; pycheck's fail.
case_run_qwen_and_pycheck() {
  child qwen <<'SH'
tmp="$T/q"; mkdir -p "$tmp"
printf '#!/bin/sh\necho "$OPENAI_MODEL $EXTRA $HOME ${SECRET:-none} $*"\nexit 5\n' >"$T/fake-qwen"; chmod +x "$T/fake-qwen"
qwen_bin="$T/fake-qwen" base_url=http://b qwen_api_key=k qwen_model=m case_timeout=10
SECRET=leak run_qwen one EXTRA=x -- -a "b c"
pycheck one <<'PY'
if status != 5: fail(f"status {status}")
if out.split()[:2] != ["m", "x"] or not out.split()[2].endswith("/one/home") or out.split()[3:] != ["none", "-a", "b", "c"]:
    fail(f"stdout {out!r}")
if not secs >= 0: fail("no time")
PY
pycheck one <<'PY' && exit 9
fail("as told")
PY
echo "checks done"
SH
  expect qwen 0 "checks done" "as told" "exit status 5 after"
}

CASES=(install-once-per-key failed-install-is-not-installed second-caller-waits flag server-wait run-cases
  run-qwen-and-pycheck)
run_cases lib "${CASES[@]}"
