#!/usr/bin/env bash
# How a Kafka-protocol broker serves one partition as it grows: appends
# single-record batches to a fresh topic and, at each step, times producing
# the last 1 000 of them and a fresh consumer fetching the newest record.
#
#   scripts/tansu-growth.sh [STEP...]          default: 5000 10000 20000 30000 40000
#
# It starts a private Tansu (the one scripts/services.sh installs, memory
# storage, port 19092) so that nothing else shares it, or probes the broker
# at BOOTSTRAP=<host:port> if that is set. Each fetch gives up after 60 s
# ("none"). The consumer's fetch.wait.max.ms is FETCH_WAIT_MS (default 10,
# the backend's default fetch_wait): Tansu stops listing a partition when a
# fetch's wait runs out. The client is confluent-kafka (PyPI), installed
# under target/services/py/. docs/kafka.md (Tansu's quirks) has what it
# showed.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=("${@:-5000 10000 20000 30000 40000}")
py=target/services/py/confluent-kafka-2.16.2
if [ ! -d "$py/confluent_kafka" ]; then
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
        --target "$py" confluent-kafka==2.16.2
fi
broker_pid=
if [ -z "${BOOTSTRAP:-}" ]; then
    scripts/services.sh status >/dev/null 2>&1 || true
    bin=${KAFKA_BROKER_BIN:-$(sed -n 's/^KAFKA_BROKER_BIN=//p' target/services/env 2>/dev/null)}
    [ -x "$bin" ] || { echo "no Tansu: run scripts/services.sh up (or set KAFKA_BROKER_BIN)" >&2; exit 1; }
    "$bin" broker --storage-engine memory://tansu/ --listener-url tcp://127.0.0.1:19092 \
        --advertised-listener-url tcp://127.0.0.1:19092 >target/services/tansu-growth.log 2>&1 &
    broker_pid=$!
    trap 'kill $broker_pid 2>/dev/null || true' EXIT
    BOOTSTRAP=127.0.0.1:19092
    sleep 1
fi
# shellcheck disable=SC2086
PYTHONPATH=$py python3 - "$BOOTSTRAP" ${steps[*]} <<'EOF'
import os, sys, time, uuid
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, steps = sys.argv[1], [int(s) for s in sys.argv[2:]]
topic = "growth-" + uuid.uuid4().hex[:8]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
    f.result()
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})

def append():
    """One record, flushed alone: one batch on the broker."""
    out = []
    producer.produce(topic, b"x" * 100, partition=0, on_delivery=lambda e, m: out.append(m.offset()))
    producer.flush()
    return out[0]

def fetch(offset, cap=60.0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "growth",
                  "enable.auto.commit": False,
                  "fetch.wait.max.ms": int(os.environ.get("FETCH_WAIT_MS", "10"))})
    t = time.perf_counter()
    c.assign([TopicPartition(topic, 0, offset)])
    try:
        while time.perf_counter() - t < cap:
            m = c.poll(0.5)
            if m is not None and not m.error():
                return f"{(time.perf_counter() - t) * 1000:.0f}"
        return "none"
    finally:
        c.close()

n = 0
print(f"{'batches':>8}  {'last 1000 appended in':>22}  fetch of the newest record, ms (3 tries)")
for step in steps:
    while n < step - 1000:
        append(); n += 1
    t = time.perf_counter()
    while n < step:
        last = append(); n += 1
    took = time.perf_counter() - t
    print(f"{n:>8}  {took * 1000:>19.0f} ms  {[fetch(last) for _ in range(3)]}", flush=True)
EOF
