#!/usr/bin/env python3
"""Helpers the network-namespace egress test runs inside its namespaces.

  netns_tool.py get URL
      Prints the body of an HTTP GET (camgate's admin listener).
  netns_tool.py sink PORTS_TCP PORTS_UDP
      The 'internet': listens on 0.0.0.0 and [::] on each TCP and UDP port
      (comma separated), and for GRE and SCTP packets (raw sockets, IPv4 and
      IPv6), and prints one JSON line per connection, datagram or packet
      that arrives. Prints "ready" once listening.
  netns_tool.py alarm ADDR:PORT
      A recorder's alarm endpoint: answers every connection's first bytes
      with "OK <n bytes>" and prints one JSON line per connection.
  netns_tool.py probes RESOLVER
      The camera's outbound attempts; prints one JSON line per probe.
  netns_tool.py escape SRC,DST,GW,KINDS ...
      Attempts from source address SRC (a camera that moved, or speaks
      IPv6), all at once: KINDS is '+'-separated from tcp (connect to
      DST:7660), udp (datagrams to DST:8800 and a DNS query to DST:53), raw
      (a GRE and an SCTP packet to DST), gw (a DNS query to GW:53 and a
      connection to GW:15001, camgate itself). One JSON line per attempt.
  netns_tool.py dns SRC SERVER NAME
      One A query from SRC; prints its rcode and addresses as JSON.
  netns_tool.py listen-udp HOST@PORT ...
      Listens on each address and port (UDP) and prints one JSON line per
      datagram, with the address it was sent to. Prints "ready" once
      listening.
  netns_tool.py send-udp HOST@PORT ...
      Sends one datagram to each; prints one JSON line per datagram with
      "sent" or the error (a packet the output hook drops fails with EPERM).

Only the standard library: it runs under any python3.
"""

import json
import random
import socket
import ssl
import struct
import sys
import threading
import urllib.request


def out(**kw):
    print(json.dumps(kw), flush=True)


def cmd_get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        sys.stdout.write(r.read().decode())


def cmd_sink(tcp_ports, udp_ports):
    def tcp(port, family):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        s.listen(64)
        while True:
            c, peer = s.accept()
            c.settimeout(1)
            try:
                data = c.recv(4096)
            except OSError:
                data = b""
            out(proto="tcp", port=port, peer=peer[0], dst=c.getsockname()[0], bytes=len(data))
            c.close()

    def udp(port, family):
        s = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        while True:
            data, peer = s.recvfrom(65535)
            out(proto="udp", port=port, peer=peer[0], bytes=len(data))

    def raw(proto, family):
        # A raw socket gets a copy of every packet of its protocol that is
        # delivered here, whatever the kernel does with it next.
        s = socket.socket(family, socket.SOCK_RAW, proto)
        while True:
            data, peer = s.recvfrom(65535)
            out(proto="raw%d" % proto, peer=peer[0], bytes=len(data))

    families = (socket.AF_INET, socket.AF_INET6)
    threads = [threading.Thread(target=tcp, args=(int(p), f), daemon=True)
               for p in tcp_ports.split(",") if p for f in families]
    threads += [threading.Thread(target=udp, args=(int(p), f), daemon=True)
                for p in udp_ports.split(",") if p for f in families]
    threads += [threading.Thread(target=raw, args=(p, f), daemon=True)
                for p in (GRE, SCTP) for f in families]
    for t in threads:
        t.start()
    print("ready", flush=True)
    threading.Event().wait()


def cmd_alarm(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(16)
    print("ready", flush=True)
    while True:
        c, peer = s.accept()
        c.settimeout(5)
        try:
            data = c.recv(4096)
            c.sendall(b"OK %d" % len(data))
        except OSError:
            data = b""
        out(proto="tcp", peer=peer[0], bytes=len(data))
        c.close()


GRE = 47
SCTP = 132


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def dns_query(server, name, qtype=1, timeout=3, src=None):
    """One A (1) or AAAA (28) query over UDP: (rcode, [addresses])."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", qtype, 1)
    s = socket.socket(family_of(server), socket.SOCK_DGRAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.sendto(q, (server, 53))
    try:
        r, _ = s.recvfrom(4096)
    except socket.timeout:
        return ("timeout", [])
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", r[:12])
    if rid != qid:
        return ("bad-id", [])
    rcode = flags & 0xF
    i = 12
    for _ in range(qd):  # skip the question
        while r[i] != 0:
            if r[i] & 0xC0:
                i += 1
                break
            i += r[i] + 1
        i += 1 + 4
    addrs = []
    for _ in range(an):
        if r[i] & 0xC0:
            i += 2
        else:
            while r[i] != 0:
                i += r[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
        i += 10
        rdata = r[i:i + rdlen]
        i += rdlen
        if rtype == 1:
            addrs.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            addrs.append(socket.inet_ntop(socket.AF_INET6, rdata))
    names = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
    return (names.get(rcode, str(rcode)), addrs)


def tcp_attempt(host, port, payload=b"", tls_name=None, timeout=5, src=None):
    """Connects and sends; reports whether anything came back."""
    try:
        s = socket.create_connection((host, port), timeout=timeout,
                                     source_address=(src, 0) if src else None)
    except OSError as e:
        return "connect-failed: %s" % e.__class__.__name__
    try:
        if tls_name:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            t = ctx.wrap_socket(s, server_hostname=tls_name)
            return "tls-established"  # must never happen
        s.sendall(payload)
        data = s.recv(100)
        return "answered: %r" % data if data else "closed"
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error: %s" % e.__class__.__name__
    finally:
        s.close()


def cmd_probes(resolver):
    # DNS through the configured resolver.
    for name in ["litedev.hik-connect.com", "www.easy4ipcloud.com", "www.dahuaddns.com",
                 "ntp.site.example", "example.com"]:
        rcode, addrs = dns_query(resolver, name)
        out(probe="dns", name=name, rcode=rcode, addrs=addrs)
    # A hard-coded public resolver: caught and answered by camgate.
    rcode, addrs = dns_query("203.0.113.53", "dev.hik-connect.com")
    out(probe="dns-hardcoded", name="dev.hik-connect.com", rcode=rcode, addrs=addrs)
    # HTTPS to a Hik-Connect name.
    _, addrs = dns_query(resolver, "litedev.hik-connect.com")
    host = addrs[0] if addrs else "203.0.113.10"
    out(probe="https-hik-connect", dst=host,
        result=tcp_attempt(host, 443, tls_name="litedev.hik-connect.com"))
    # HTTP to a DDNS name.
    _, addrs = dns_query(resolver, "www.dahuaddns.com")
    host = addrs[0] if addrs else "203.0.113.10"
    out(probe="http-ddns", dst=host, result=tcp_attempt(
        host, 80, b"GET /update?hostname=cam HTTP/1.1\r\nHost: www.dahuaddns.com\r\n\r\n"))
    # A vendor port by bare IP (ISUP registration).
    out(probe="tcp-bare-ip", dst="203.0.113.10:7660",
        result=tcp_attempt("203.0.113.10", 7660, b"\x10\x00\x00\x20ISUP-register"))
    # Dahua P2P rendezvous over UDP.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.sendto(b"DHGET /probe/p2psrv HTTP/1.1\r\nCSeq: 1\r\n\r\n", ("203.0.113.30", 8800))
    try:
        data = s.recv(100)
        res = "answered"
    except socket.timeout:
        res = "no-answer"
    out(probe="udp-p2p", dst="203.0.113.30:8800", result=res)
    # The alarm push an allow rule forwards to the recorder.
    out(probe="alarm-push", dst="10.30.0.5:8089",
        result=tcp_attempt("10.30.0.5", 8089, b"POST /alarm HTTP/1.1\r\n\r\nmotion"))


def escape_attempts(src, dst, gw, kinds):
    """The attempts of one `escape` spec, as (what, function) pairs."""
    def udp(port, payload):
        def send():
            s = socket.socket(family_of(dst), socket.SOCK_DGRAM)
            s.bind((src, 0))
            s.sendto(payload, (dst, port))
            return "sent"
        return send

    def raw(proto):
        def send():
            s = socket.socket(family_of(dst), socket.SOCK_RAW, proto)
            s.bind((src, 0))
            s.sendto(b"\x00\x00\x08\x00escape-probe", (dst, 0))
            return "sent"
        return send

    attempts = []
    if "tcp" in kinds:
        attempts.append(("tcp:7660", lambda: tcp_attempt(dst, 7660, b"ISUP", timeout=2, src=src)))
    if "udp" in kinds:
        attempts.append(("udp:8800", udp(8800, b"DHGET /probe/p2psrv")))
        attempts.append(("dns", lambda: dns_query(dst, "dev.hik-connect.com", timeout=2, src=src)[0]))
    if "raw" in kinds:
        attempts.append(("gre", raw(GRE)))
        attempts.append(("sctp", raw(SCTP)))
    if "gw" in kinds:
        attempts.append(("gw-dns", lambda: dns_query(gw, "dev.hik-connect.com", timeout=2, src=src)[0]))
        attempts.append(("gw-tcp:15001", lambda: tcp_attempt(gw, 15001, b"x", timeout=2, src=src)))
    return attempts


def cmd_escape(*specs):
    lock = threading.Lock()

    def run(src, dst, what, fn):
        try:
            res = fn()
        except OSError as e:
            res = "error: %s" % e
        with lock:
            out(probe="escape", src=src, dst=dst, what=what, result=res)

    threads = []
    for spec in specs:
        src, dst, gw, kinds = spec.split(",")
        for what, fn in escape_attempts(src, dst, gw, kinds.split("+")):
            threads.append(threading.Thread(target=run, args=(src, dst, what, fn)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def cmd_dns(src, server, name):
    rcode, addrs = dns_query(server, name, timeout=3, src=src)
    out(probe="dns", src=src, name=name, rcode=rcode, addrs=addrs)


def cmd_listen_udp(*targets):
    socks = []
    for t in targets:
        host, port = t.rsplit("@", 1)
        s = socket.socket(family_of(host), socket.SOCK_DGRAM)
        s.bind((host, int(port)))
        socks.append((host, int(port), s))

    lock = threading.Lock()

    def serve(host, port, s):
        while True:
            data, peer = s.recvfrom(65535)
            with lock:
                out(proto="udp", dst=host, port=port, peer=peer[0], bytes=len(data))

    for host, port, s in socks:
        threading.Thread(target=serve, args=(host, port, s), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def cmd_send_udp(*targets):
    for t in targets:
        host, port = t.rsplit("@", 1)
        s = socket.socket(family_of(host), socket.SOCK_DGRAM)
        try:
            s.sendto(b"\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", (host, int(port)))
            res = "sent"
        except OSError as e:
            res = "error: %s" % e
        finally:
            s.close()
        out(probe="send-udp", to=host, port=int(port), result=res)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"get": cmd_get, "sink": cmd_sink, "alarm": cmd_alarm, "probes": cmd_probes,
     "escape": cmd_escape, "dns": cmd_dns, "listen-udp": cmd_listen_udp,
     "send-udp": cmd_send_udp}[cmd](*args)


if __name__ == "__main__":
    main()
