# Shared by scripts/test and scripts/demo: a project virtualenv, created on first use, and
# the environment that keeps mDNS and servers on loopback on development and CI machines.
VENV="${MICRO_VENV:-.venv}"
PY="$VENV/bin/python"
export MICRO_MDNS_INTERFACES="${MICRO_MDNS_INTERFACES:-127.0.0.1}"
export MICRO_SERVER_ADDRESS="${MICRO_SERVER_ADDRESS:-127.0.0.1:0}"
export PYTHONDONTWRITEBYTECODE=1

bootstrap() {
    local extras="$1"
    local stamp="$VENV/.micro-installed-$extras"
    if [ ! -x "$PY" ]; then
        echo "== creating $VENV" >&2
        python3 -m venv "$VENV"
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== installing micro[$extras] into $VENV" >&2
        "$PY" -m pip install --quiet --disable-pip-version-check -e ".[$extras]" 2>&1 \
            | grep -v "^WARNING: Location" >&2 || true
        "$PY" -c "import micro" || { echo "install failed" >&2; exit 1; }
        touch "$stamp"
    fi
}

# Debian packages the tests need (servers that tests start themselves on free ports).
SYSTEM_PACKAGES=(etcd-server etcd-client curl iproute2 wrk)
SYSTEM_COMMANDS=(etcd etcdctl curl ip wrk)

ensure_system_packages() {
    local missing=0 cmd
    for cmd in "${SYSTEM_COMMANDS[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" = 0 ] && return 0
    echo "== installing Debian packages: ${SYSTEM_PACKAGES[*]}" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${SYSTEM_PACKAGES[@]}" >&2
}
