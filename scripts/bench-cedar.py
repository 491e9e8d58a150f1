#!/usr/bin/env python3
"""Cedar (PyPI cedarpy) on the policy equivalent to Warden's PolicyBenchmarks fleet: decisions per second.

The Warden policy (Benchmarks/Benchmarks/PolicyBenchmarks) has 10,000 devices `dev-00000`…`dev-09999`, device i in
group `gNN` with NN = i % 50, and 100 statements:
  1   allow device:*  mqtt:publish            topic:d/${device.id}/up/#
  2   allow device:*  mqtt:subscribe,receive  topic:d/${device.id}/down/#
  3   deny  device:*  mqtt:publish            topic:d/${device.id}/up/secret
  50  allow group:gNN mqtt:receive            topic:fleet/gNN/#              (NN = 00…49)
  47  deny  group:gNN mqtt:receive            topic:fleet/gNN/restricted/#   (NN = 00…46)
Cedar has no MQTT topic matching, so a topic is an entity whose attributes carry its parsed structure (kind, owner,
dir, leaf, group) and the policies compare them; that is the same decision for every request of the benchmark.
The requests are the same deterministic sequence as the Swift benchmark (same LCG), and both print how many of the
first 100,000 are allowed, so the two answer the same questions identically.

Usage: python3 scripts/bench-cedar.py [--requests N] [--rounds R]
Prints decisions/s (best and median of R rounds of N requests through cedarpy.is_authorized_batch, with the policy
set and the entity graph parsed once, outside the timing).
"""
import argparse
import importlib.metadata
import json
import statistics
import time

import cedarpy

DEVICES = 10_000
GROUPS = 50
DENIED_GROUPS = 47


def device_id(i):
    return "dev-%05d" % i


def group(i):
    return "g%02d" % (i % GROUPS)


def requests(count):
    """The benchmark's request sequence: (device index, action, topic)."""
    state = 0x2545F4914F6CDD1D
    out = []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        r = state >> 33
        i = r % DEVICES
        other = (i + 1 + (r >> 14) % (DEVICES - 1)) % DEVICES
        kind = (r >> 7) % 8
        me = device_id(i)
        if kind == 0:
            out.append((i, "publish", "d/%s/up/telemetry" % me))
        elif kind == 1:
            out.append((i, "publish", "d/%s/up/secret" % me))
        elif kind == 2:
            out.append((i, "publish", "d/%s/up/telemetry" % device_id(other)))
        elif kind == 3:
            out.append((i, "receive", "d/%s/down/config" % me))
        elif kind == 4:
            out.append((i, "receive", "fleet/%s/status" % group(i)))
        elif kind == 5:
            out.append((i, "receive", "fleet/%s/restricted/key" % group(i)))
        elif kind == 6:
            out.append((i, "receive", "fleet/%s/status" % group(other)))
        else:
            out.append((i, "subscribe", "d/%s/down/config" % me))
    return out


def topic_attributes(topic):
    levels = topic.split("/")
    attrs = {"kind": levels[0], "owner": "", "dir": "", "leaf": levels[-1], "group": ""}
    if levels[0] == "d":
        attrs["owner"] = levels[1]
        attrs["dir"] = levels[2]
    elif levels[0] == "fleet":
        attrs["group"] = levels[1]
        attrs["dir"] = levels[2]
    return attrs


def policies():
    text = [
        'permit(principal, action == Action::"publish", resource) when { resource.kind == "d" && resource.owner == principal.name && resource.dir == "up" };',
        'permit(principal, action in [Action::"subscribe", Action::"receive"], resource) when { resource.kind == "d" && resource.owner == principal.name && resource.dir == "down" };',
        'forbid(principal, action == Action::"publish", resource) when { resource.kind == "d" && resource.owner == principal.name && resource.dir == "up" && resource.leaf == "secret" };',
    ]
    for n in range(GROUPS):
        text.append('permit(principal in Group::"g%02d", action == Action::"receive", resource) when { resource.kind == "fleet" && resource.group == "g%02d" };' % (n, n))
    for n in range(DENIED_GROUPS):
        text.append('forbid(principal in Group::"g%02d", action == Action::"receive", resource) when { resource.kind == "fleet" && resource.group == "g%02d" && resource.dir == "restricted" };' % (n, n))
    assert len(text) == 100
    return "\n".join(text)


def entities(topics):
    out = [{"uid": {"type": "Group", "id": "g%02d" % n}, "attrs": {}, "parents": []} for n in range(GROUPS)]
    for i in range(DEVICES):
        out.append({"uid": {"type": "Device", "id": device_id(i)}, "attrs": {"name": device_id(i)}, "parents": [{"type": "Group", "id": group(i)}]})
    for topic in sorted(topics):
        out.append({"uid": {"type": "Topic", "id": topic}, "attrs": topic_attributes(topic), "parents": []})
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sequence = requests(args.requests)
    policy_set = cedarpy.PolicySet.from_str(policies()) if hasattr(cedarpy, "PolicySet") else policies()
    graph_json = json.dumps(entities({topic for _, _, topic in sequence}))
    graph = cedarpy.Entities.from_json_str(graph_json) if hasattr(cedarpy, "Entities") else graph_json
    batch = [
        {"principal": 'Device::"%s"' % device_id(i), "action": 'Action::"%s"' % action, "resource": {"type": "Topic", "id": topic}, "context": {}}
        for i, action, topic in sequence
    ]
    allowed = None
    rates = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        results = cedarpy.is_authorized_batch(batch, policy_set, graph)
        elapsed = time.perf_counter() - start
        rates.append(len(batch) / elapsed)
        allowed = sum(1 for result in results if result.allowed)
    print("cedarpy %s: %d requests x %d rounds, %d allowed" % (importlib.metadata.version("cedarpy"), len(batch), args.rounds, allowed))
    print("cedar decisions/s: best %.0f, median %.0f" % (max(rates), statistics.median(rates)))


if __name__ == "__main__":
    main()
