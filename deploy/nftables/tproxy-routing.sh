#!/bin/sh
# Policy routing the UDP trap needs: datagrams the camgate ruleset marks
# (tproxy, fwmark 0xca7e) are delivered locally, to camgate's UDP trap,
# whatever their destination. Run once per boot before `nft -f camgate.nft`
# (e.g. from a systemd ExecStartPre=, or ifupdown post-up). Idempotent.
set -eu
ip rule show | grep -q 'fwmark 0xca7e lookup 202' || ip rule add fwmark 0xca7e lookup 202
ip route replace local 0.0.0.0/0 dev lo table 202
if [ -e /proc/net/if_inet6 ]; then
  ip -6 rule show | grep -q 'fwmark 0xca7e lookup 202' || ip -6 rule add fwmark 0xca7e lookup 202
  ip -6 route replace local ::/0 dev lo table 202
fi
