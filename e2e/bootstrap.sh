# Sourced by e2e/run-tests and e2e/demo: installs what remediator needs on a
# bare machine, idempotently and cached. Debian packages (apt), a virtualenv
# with the project (pip), and the control-plane binaries (Go builds, cached
# under ${XDG_CACHE_HOME:-~/.cache}/remediator).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REMEDIATOR_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"

step() { printf '\n==> %s\n' "$*"; }

apt_packages() {
  # Debian packages the tiers need; installed only when missing.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_env() {
  local stamp="$VENV/.installed-$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)"
  if [ ! -x "$PY" ]; then
    step "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ]; then
    step "pip install -e .[test]"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e "$REPO[test]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

control_plane_binaries() {
  # $1: extras beside the control plane, comma-separated (helm,kubeconform,flux); each command asks for its own.
  # e2e/cluster's build needs only the standard library, so it runs on the system Python.
  command -v go >/dev/null || { echo "Go >= 1.26 is needed to build the control plane" >&2; exit 1; }
  step "control-plane binaries${1:+ with $1} (compiled once from Go modules, cached by version)"
  (cd "$REPO" && python3 -m e2e.cluster build --with "${1:-}")
}

bootstrap() {
  # $1: the extras this command needs (see control_plane_binaries); git serves Flux's test repositories.
  # The compile (minutes when cold) runs while apt and pip install, then is waited for.
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is needed" >&2; exit 1; }
  control_plane_binaries "${1:-}" &
  local compiling=$!
  apt_packages prometheus prometheus-alertmanager git
  python_env
  wait "$compiling" || { echo "building the control-plane binaries failed (see above)" >&2; exit 1; }
}
