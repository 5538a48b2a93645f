#!/usr/bin/env bash
# LocalStack (community) and tflocal in their own virtualenv, for the Terraform tests.
#
#   scripts/localstack.sh install        create/refresh the venv; prints its path (instant when done)
#   scripts/localstack.sh start [PORT]   run LocalStack on 127.0.0.1:PORT (default 4566) in the background
#   scripts/localstack.sh stop           stop the one `start` ran (by its process group), nothing else
#   scripts/localstack.sh status         print its URL when it answers, else exit 1
#
# scripts/localstack_server.py is LocalStack's own entry point with one change: Lambda functions
# become Active without Docker (created, never run). LocalStack needs Python >= 3.12
# (LOCALSTACK_PYTHON, default pyenv's 3.13.0, else python3.13/3.12 on PATH); the project's .venv
# may be older. The pins keep localstack-core importable with the
# crypto stack of these machines. A marker holding the requirement list makes re-runs instant and
# re-installs when the list changes. tests/terraform/conftest.py calls `install` and starts its own
# LocalStack (free port, temporary state) with the same environment as `start`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${LOCALSTACK_VENV:-$root/.cache/localstack-venv}"
state="${LOCALSTACK_STATE_DIR:-$root/.cache/localstack}"
requirements=(
  "localstack-core[runtime]==2026.3.0"
  "terraform-local==0.27.0"
  "cbor2<6"
  "pyopenssl==24.2.1"
  "cryptography==43.0.3"
  "service-identity==24.1.0"
  "joserfc<1.3"
)
# What the stack needs and LocalStack community emulates without Docker (no OpenSearch, no SageMaker).
services="${LOCALSTACK_SERVICES:-s3,iam,sts,kms,logs,lambda,apigateway}"

find_python() {
  local candidate
  for candidate in "${LOCALSTACK_PYTHON:-}" /root/.pyenv/versions/3.13.0/bin/python3.13 python3.13 python3.12; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "LocalStack needs Python >= 3.12: set LOCALSTACK_PYTHON (e.g. pyenv's 3.13)." >&2
  return 1
}

install() {
  local marker="$venv/.installed" wanted
  wanted="$(printf '%s\n' "${requirements[@]}")"
  if [[ -f "$marker" && "$(cat "$marker")" == "$wanted" && -x "$venv/bin/tflocal" ]]; then
    echo "$venv"
    return 0
  fi
  local python
  python="$(find_python)"
  echo "Installing LocalStack into $venv (with $python) ..." >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # pip's output goes to a log (its warnings about the local package mirror are many).
  if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q "${requirements[@]}"; } >"$venv/pip.log" 2>&1; then
    tail -n 30 "$venv/pip.log" >&2
    echo "pip install failed; the whole log is $venv/pip.log" >&2
    return 1
  fi
  "$venv/bin/python" -c 'import localstack.runtime.main, localstack_client' >&2
  echo "$wanted" >"$marker"
  echo "$venv"
}

# The environment LocalStack runs with: 127.0.0.1 only (hypercorn honours GATEWAY_LISTEN), no
# Docker, no DNS server, no telemetry or certificate download, state under FILESYSTEM_ROOT.
localstack_env() {
  local port="$1" data="$2"
  printf '%s\n' "GATEWAY_LISTEN=127.0.0.1:$port" GATEWAY_SERVER=hypercorn OVERRIDE_IN_DOCKER=0 \
    DOCKER_BRIDGE_IP=127.0.0.1 DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    "FILESYSTEM_ROOT=$data" "SERVICES=$services" EAGER_SERVICE_LOADING=0
}

start() {
  local port="${1:-4566}"
  local running
  if running="$(status 2>/dev/null)"; then
    echo "LocalStack already runs (pid $(cat "$state/pid"))" >&2
    echo "$running"
    return 0
  fi
  install >/dev/null
  mkdir -p "$state/data"
  local vars
  mapfile -t vars < <(localstack_env "$port" "$state/data")
  # setsid execs (a background job leads no group): the PID is LocalStack's and names its own
  # process group, so `stop` ends LocalStack and every child it started, and nothing else.
  setsid env -u AWS_ENDPOINT_URL "${vars[@]}" "$venv/bin/python" "$root/scripts/localstack_server.py" \
    >"$state/localstack.log" 2>&1 </dev/null &
  echo "$!" >"$state/pid"
  echo "$port" >"$state/port"
  local url="http://127.0.0.1:$port"
  for _ in $(seq 1 240); do
    if curl -fsS "$url/_localstack/health" >/dev/null 2>&1; then
      echo "$url"
      return 0
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "LocalStack exited; see $state/localstack.log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "LocalStack did not answer at $url within 120 s; see $state/localstack.log" >&2
  stop
  return 1
}

stop() {
  [[ -f "$state/pid" ]] || return 0
  local pid
  pid="$(cat "$state/pid")"
  # The whole process group, even if its leader is already gone.
  if kill -0 -- "-$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do # LocalStack's own shutdown takes a few seconds
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$state/pid" "$state/port"
}

status() {
  [[ -f "$state/pid" && -f "$state/port" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null || return 1
  local url="http://127.0.0.1:$(cat "$state/port")"
  curl -fsS "$url/_localstack/health" >/dev/null && echo "$url"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop ;;
  status) status ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
