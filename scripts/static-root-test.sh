#!/usr/bin/env bash
# Proves the Docker image's final stage without a Docker engine: builds the same static binary, puts
# it in an empty root directory laid out like the image (the binary, the CA bundle, a passwd line for
# uid 10001, nothing else) and runs it there with chroot as uid 10001 against local servers only.
#
#   sudo ./scripts/static-root-test.sh          # installs what it needs (apt-get), prints a summary line
#
# Target: x86_64-unknown-linux-musl, as in the Dockerfile, when `rustup target add` can fetch it; if it
# cannot (an offline toolchain), a static glibc build (`-C target-feature=+crt-static`) stands in, and
# the script says so. STATIC_ROOT_TARGET=gnu forces that fallback (whose root also gets /dev/null and
# /dev/urandom, as Docker gives every container; the musl root has no /dev at all).
# Profile: `static-test` (Cargo.toml: release without LTO, 16 codegen units) to stay quick on 2 cores;
# shipped binaries use `release`. Not root: chroot is impossible, so the script skips and exits 0.
# shellcheck disable=SC2016 # the check conditions are single-quoted on purpose: eval'd after each run
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if [ "$(id -u)" -ne 0 ]; then
  echo "static-root: skipped: chroot needs root (run as root or with sudo)"
  exit 0
fi

say() { echo "static-root: $*" >&2; }

# --- tools -------------------------------------------------------------------------------------
need_pkgs=()
command -v file >/dev/null || need_pkgs+=(file)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v python3 >/dev/null || need_pkgs+=(python3)
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_pkgs+=(ca-certificates)

target=x86_64-unknown-linux-musl
if [ "${STATIC_ROOT_TARGET:-musl}" = gnu ]; then
  target=x86_64-unknown-linux-gnu
elif ! rustup target list --installed 2>/dev/null | grep -qx "$target" &&
  ! timeout 300 rustup target add "$target" >/dev/null 2>&1; then
  say "rustup cannot fetch the musl target here: falling back to a static glibc build"
  target=x86_64-unknown-linux-gnu
fi
if [ "$target" = x86_64-unknown-linux-musl ]; then
  command -v musl-gcc >/dev/null || need_pkgs+=(musl-tools) # ring's C and assembly need musl-gcc
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# --- build -------------------------------------------------------------------------------------
started=$(date +%s)
if [ "$target" = x86_64-unknown-linux-musl ]; then
  CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --quiet --locked --profile static-test --target "$target" --bin qwen
else
  # Only with an explicit --target do these flags skip build scripts and proc-macros.
  RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --quiet --locked --profile static-test --target "$target" --bin qwen
fi
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/$target/static-test/qwen"
size=$(stat -c %s "$bin")
say "built $bin ($target, profile static-test) in $(($(date +%s) - started))s: $size bytes"
started=$(date +%s)
cargo build --quiet --locked --example echo-server
say "built the echo server (debug) in $(($(date +%s) - started))s"

# --- the root, as the image's final stage lays it out ---------------------------------------------
work=$(mktemp -d)
root="$work/root"
# shellcheck source=scripts/lib/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/server.sh"
servers_init "$work" # the servers below are stopped, and $work removed, at exit

make_root() { # make_root DIR [CA_BUNDLE]: the binary, optionally a CA bundle, the passwd and group lines
  local dir=$1 bundle=${2:-}
  mkdir -p "$dir/usr/local/bin" "$dir/etc/ssl/certs" "$dir/work"
  install -m 0755 "$bin" "$dir/usr/local/bin/qwen"
  [ -n "$bundle" ] && install -m 0644 "$bundle" "$dir/etc/ssl/certs/ca-certificates.crt"
  echo 'qwen:x:10001:10001:qwen:/home/qwen:/sbin/nologin' >"$dir/etc/passwd"
  echo 'qwen:x:10001:' >"$dir/etc/group"
  if [ "$target" = x86_64-unknown-linux-gnu ]; then
    # Static glibc reads randomness from /dev/urandom: give it the device nodes Docker gives every
    # container. The musl binary uses the getrandom syscall and runs with no /dev at all.
    mkdir -p "$dir/dev"
    mknod -m 0666 "$dir/dev/null" c 1 3
    mknod -m 0666 "$dir/dev/urandom" c 1 9
    mknod -m 0666 "$dir/dev/random" c 1 8
  fi
  chmod 0755 "$dir" "$dir/usr" "$dir/usr/local" "$dir/usr/local/bin" "$dir/etc" "$dir/etc/ssl" \
    "$dir/etc/ssl/certs" "$dir/work"
}

# A local CA and a certificate for 127.0.0.1, so that TLS is checked against the bundle in the root.
tls="$work/tls"
mkdir -p "$tls"
(
  cd "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=qwen static-root test CA" -keyout ca.key -out ca.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
    -keyout server.key -out server.csr 2>/dev/null
  printf '%s\n' subjectAltName=IP:127.0.0.1 basicConstraints=critical,CA:FALSE \
    keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth >ext.cnf
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out server.crt 2>/dev/null
  cat /etc/ssl/certs/ca-certificates.crt ca.crt >bundle-with-test-ca.crt
)

make_root "$root" "$tls/bundle-with-test-ca.crt"
make_root "$work/root-system-bundle" /etc/ssl/certs/ca-certificates.crt
mkdir -p "$work/root-system-bundle/certs"
install -m 0644 "$tls/ca.crt" "$work/root-system-bundle/certs/test-ca.crt"
make_root "$work/root-no-bundle"

# --- servers on 127.0.0.1 (chroot shares the network namespace) ------------------------------------
"$target_dir/debug/examples/echo-server" --port 0 >"$work/echo.log" 2>&1 &
server_track "echo server" $! "$work/echo.log"
cat >"$work/tls_server.py" <<'PY'
# A one-answer OpenAI-compatible server over TLS, for the static-root test.
import http.server, json, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps({"id": "t", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "tls ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"tls server listening on https://127.0.0.1:{server.server_address[1]}/v1", flush=True)
server.serve_forever()
PY
python3 "$work/tls_server.py" "$tls/server.crt" "$tls/server.key" >"$work/tls.log" 2>&1 &
server_track "TLS server" $! "$work/tls.log"
for _ in $(seq 100); do
  grep -q listening "$work/echo.log" && grep -q listening "$work/tls.log" && break
  sleep 0.1
done
echo_url=$(grep -o 'http://[^ ]*' "$work/echo.log")
tls_url=$(grep -o 'https://[^ ]*' "$work/tls.log")

# --- the checks --------------------------------------------------------------------------------
key="sk-static-root-$RANDOM$RANDOM-do-not-print"
chroot_bin=$(command -v chroot)
passed=0
failed=0
# in_root ROOT [VAR=value...] -- ARGS...: run `qwen ARGS` in ROOT as uid 10001 with only these variables,
# like `docker run -e ...` (PATH and HOME as Docker sets them for USER 10001).
in_root() {
  local dir=$1
  shift
  local vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/qwen \
    OPENAI_API_KEY="$key" "${vars[@]}" \
    "$chroot_bin" --userspec=10001:10001 "$dir" qwen "$@"
}
check() { # check NAME CONDITION: CONDITION is shell code, evaluated after the run before it
  local name=$1
  if eval "$2"; then
    passed=$((passed + 1))
    echo "  ok    $name"
  else
    failed=$((failed + 1))
    echo "  FAIL  $name (exit $status)"
    [ -s "$work/out" ] && sed 's/^/        stdout: /' "$work/out" | head -20
    [ -s "$work/err" ] && sed 's/^/        stderr: /' "$work/err" | head -20
  fi
  return 0
}
status=0
run() { # run ROOT [VAR=value...] -- ARGS... [< input]: stdout, stderr and status kept for the checks
  set +e
  in_root "$@" >"$work/out" 2>"$work/err"
  status=$?
  set -e
}
no_key_printed() { ! grep -qF -- "$key" "$work/out" "$work/err"; }
# The last message of the --json document on stdout: success with this result text, or an error.
json_last() {
  python3 - "$work/out" "$@" 2>/dev/null <<'PY'
import json, sys
last = json.load(open(sys.argv[1]))[-1]
if sys.argv[2] == "error":
    ok = last["type"] == "result" and last["is_error"] is True
else:
    ok = last["type"] == "result" and last["is_error"] is False and last["result"] == sys.argv[3]
sys.exit(0 if ok else 1)
PY
}
stdout_is() { [ "$(cat "$work/out")" = "$1" ]; }

echo "static-root: $target binary, $size bytes, in an empty root as uid 10001"
: >"$work/out"
: >"$work/err"

check "the binary is static" \
  'file -b "$bin" | grep -Eq "statically linked|static-pie linked" &&
    ldd "$bin" 2>&1 | grep -Eq "not a dynamic executable|statically linked"'
check "the root holds only the binary, the CA bundle, passwd and group" \
  '[ "$(cd "$root" && find . -type f | sort | tr "\n" " ")" = "./etc/group ./etc/passwd ./etc/ssl/certs/ca-certificates.crt ./usr/local/bin/qwen " ]'

# A pipe on stdin, as `echo ... | docker run -i`; process substitution keeps `run` in this shell.
run "$root" OPENAI_BASE_URL="$echo_url" -- --json < <(echo "static root")
check "echo prompt | qwen --json: exit 0 and the JSON result" \
  '[ "$status" -eq 0 ] && json_last success "static root
"'
check "the key is never printed (--json)" no_key_printed

printf 'prompt from a file\n' >"$work/prompt.txt"
run "$root" OPENAI_BASE_URL="$echo_url" -- <"$work/prompt.txt"
check "qwen < prompt.txt (the ssh form): exit 0 and the answer on stdout" \
  '[ "$status" -eq 0 ] && stdout_is "prompt from a file"'

run "$root" OPENAI_BASE_URL="$echo_url" -- "argument only" </dev/null
check "qwen \"argument only\" with a silent stdin: exit 0 and the answer" \
  '[ "$status" -eq 0 ] && stdout_is "argument only"'

run "$root" OPENAI_BASE_URL="$echo_url" -- auth status </dev/null
check "qwen auth status: exit 0, ready, key from the environment" \
  '[ "$status" -eq 0 ] && grep -q "ready: *yes" "$work/out" && grep -q OPENAI_API_KEY "$work/out"'
check "the key is never printed (auth status)" no_key_printed

run "$root" OPENAI_BASE_URL="$echo_url" -- auth status --json </dev/null
check "qwen auth status --json: ready is true" \
  '[ "$status" -eq 0 ] && python3 -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))[\"ready\"] is True else 1)" "$work/out"'

run "$root" OPENAI_BASE_URL="$tls_url" -- --json "over tls" </dev/null
check "https: the certificate is verified with /etc/ssl/certs/ca-certificates.crt" \
  '[ "$status" -eq 0 ] && json_last success "tls ok"'

run "$work/root-system-bundle" OPENAI_BASE_URL="$tls_url" -- --json --retries 0 "over tls" </dev/null
check "https: a server whose CA is not in the bundle is refused" \
  '[ "$status" -ne 0 ] && json_last error'

run "$work/root-system-bundle" OPENAI_BASE_URL="$tls_url" SSL_CERT_FILE=/certs/test-ca.crt -- --json "over tls" </dev/null
check "https: SSL_CERT_FILE names another bundle" \
  '[ "$status" -eq 0 ] && json_last success "tls ok"'

run "$work/root-no-bundle" OPENAI_BASE_URL="$echo_url" -- --json "no bundle" </dev/null
check "without any CA bundle the HTTP client cannot start (why the image carries one)" \
  '[ "$status" -eq 52 ] && grep -q "cannot set up the HTTP client" "$work/err" && grep -q "CA bundle" "$work/err"'

echo "static-root: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
