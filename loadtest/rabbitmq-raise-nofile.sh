#!/usr/bin/env bash
# Restart the local RabbitMQ with a 20,000 open-file limit (its default of 1024 breaks Web-STOMP at about
# 800 connections). The Debian wrapper starts it through `su rabbitmq`, which resets the soft limit, so the
# limit is raised inside that shell. RabbitMQ comes back on 5672 (guest/guest) and Web-STOMP on 15674.
set -euo pipefail
pid=$(pgrep -x beam.smp | head -1 || true)
if [ -n "$pid" ] && [ "$(awk '/Max open files/ {print $4}' "/proc/$pid/limits")" -ge 20000 ]; then
  echo "RabbitMQ already has 20000 open files"; exit 0
fi
rabbitmqctl stop >/dev/null 2>&1 || true
while pgrep -x beam.smp >/dev/null; do sleep 0.5; done
cd /var/lib/rabbitmq
su rabbitmq -s /bin/sh -c 'ulimit -n 20000 && /usr/lib/rabbitmq/bin/rabbitmq-server -detached'
for _ in $(seq 1 120); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 0.5; done
rabbitmq-plugins enable rabbitmq_web_stomp >/dev/null
pid=$(pgrep -x beam.smp | head -1)
echo "RabbitMQ pid $pid: $(grep 'Max open files' "/proc/$pid/limits")"
