# Shared by scripts/test, scripts/demo and scripts/lock: the project virtualenv, installed from
# uv.lock on first use and whenever the lock changes, and the environment that keeps mDNS and
# servers on loopback on development and CI machines.
VENV="${MICRO_VENV:-.venv}"
PY="$VENV/bin/python"
UV="$VENV/bin/uv"
UV_VERSION="0.13.9"  # keep in step with the dev group's pin in pyproject.toml
export UV_PROJECT_ENVIRONMENT="$VENV"
export MICRO_MDNS_INTERFACES="${MICRO_MDNS_INTERFACES:-127.0.0.1}"
export MICRO_SERVER_ADDRESS="${MICRO_SERVER_ADDRESS:-127.0.0.1:0}"
export PYTHONDONTWRITEBYTECODE=1

# The venv: python3 -m venv, uv from PyPI, then exactly the locked versions (uv.lock) of the
# library with every extra, the test tools (group dev), what a `micro new` project installs
# (group scaffold) and the benchmark anchors (group bench).
bootstrap() {
    ensure_uv
    sync_venv
}

ensure_uv() {
    if [ ! -x "$UV" ]; then
        if [ ! -x "$PY" ]; then
            echo "== creating $VENV (python3 -m venv)" >&2
            python3 -m venv "$VENV"
        fi
        echo "== installing uv $UV_VERSION into $VENV (it installs the locked versions)" >&2
        "$PY" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>&1 \
            | grep -v "^WARNING: Location" >&2 || true
        [ -x "$UV" ] || { echo "could not install uv into $VENV" >&2; exit 1; }
    fi
}

sync_venv() {
    local stamp="$VENV/.micro-synced"
    if [ ! -f "$stamp" ] || [ uv.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== installing the locked versions from uv.lock into $VENV (uv sync --frozen)" >&2
        "$UV" sync --quiet --frozen --extra all --group dev --group scaffold --group bench >&2 \
            || { echo "uv sync failed: is uv.lock in step with pyproject.toml? (scripts/lock)" >&2; exit 1; }
        "$PY" -c "import micro" || { echo "install failed: 'import micro' does not work" >&2; exit 1; }
        touch "$stamp"
    fi
}

# Debian packages the tests need: etcd (tests start their own on free ports), curl, iproute2
# (network namespaces), wrk (load), prosody (the bot's XMPP tests), chromium (the web dashboard's browser tests, driven by
# Playwright; never a downloaded browser), and the message servers that the tests start privately
# (tests/servers.py) when none is running on its default port.
SYSTEM_PACKAGES=(etcd-server etcd-client curl iproute2 wrk nats-server redis-server rabbitmq-server mosquitto prosody chromium)
SYSTEM_COMMANDS=(etcd etcdctl curl ip wrk nats-server redis-server /usr/lib/rabbitmq/bin/rabbitmq-server mosquitto prosody /usr/bin/chromium)

ensure_system_packages() {
    local missing=() cmd i
    for i in "${!SYSTEM_COMMANDS[@]}"; do
        cmd="${SYSTEM_COMMANDS[$i]}"
        command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || missing+=("${SYSTEM_PACKAGES[$i]}")
    done
    [ "${#missing[@]}" = 0 ] && return 0
    echo "== installing Debian packages the tests need: ${missing[*]}" >&2
    echo "   (servers the tests start on free loopback ports; apt does not start them)" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
