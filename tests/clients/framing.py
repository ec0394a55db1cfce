"""HTTP framing on a raw socket (RFC 9112 section 6): the request-smuggling patterns are
refused and the connection closed before the smuggled bytes are read as a request; what
libmicrohttpd answers itself is what docs/api.md says, and counted; pipelined requests after
a refusal are answered in order.
"""
import socket

from common import Daemon, check, error_json, finish, parse_response, recv_all


def exchange(port, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    while True:  # everything until the server closes (or goes quiet)
        try:
            d = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not d:
            break
        out += d
    s.close()
    return out


def responses(raw):
    """Every response in raw, in order: [(status, headers, body)]."""
    out = []
    while raw.startswith(b"HTTP/1.1 "):
        st, h, body = parse_response(raw)
        if st is None:
            break
        out.append((st, h, body))
        head_len = raw.index(b"\r\n\r\n") + 4
        raw = raw[head_len + len(body):]
    return out


def main():
    d = Daemon()
    port = d.port
    smuggled = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"

    r = responses(exchange(port, b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           b"Content-Length: 6\r\n\r\n{\"a\":1}" + smuggled))
    check("two Content-Lengths: one 400 JSON reply, Connection: close, nothing smuggled",
          len(r) == 1 and r[0][0] == 400 and r[0][1].get("connection") == "close"
          and "Content-Length values" in (error_json(r[0][2]) or ""), repr(r))

    r = responses(exchange(port, b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled))
    check("Content-Length with Transfer-Encoding: one 400 JSON reply, closed",
          len(r) == 1 and r[0][0] == 400 and r[0][1].get("connection") == "close"
          and "Transfer-Encoding together" in (error_json(r[0][2]) or ""), repr(r))

    r = responses(exchange(port, b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n"
                           b"\r\n{\"a\":" + smuggled))
    check("Content-Length: 5, 5 (a list): 400",
          len(r) == 1 and r[0][0] in (400,), repr(r))

    r = responses(exchange(port, b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip"
                           b"\r\n\r\n0\r\n\r\n"))
    check("Transfer-Encoding: gzip: 501 JSON, closed",
          len(r) == 1 and r[0][0] == 501 and "only chunked" in (error_json(r[0][2]) or ""), repr(r))

    # what libmicrohttpd answers itself: its status, no JSON (documented), counted
    before = d.metric("relud_http_protocol_errors_total{code=\"400\"}") or 0
    for name, req, want in (
            ("Content-Length: -1", b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: -1"
             b"\r\n\r\n", 400),
            ("a header line without a colon", b"GET /v2 HTTP/1.1\r\nHost: x\r\nBad header line"
             b"\r\n\r\n", 400),
            ("a request line it cannot parse", b"GET  /v2  HTTP/1.1 extra\r\nHost: x\r\n\r\n",
             400)):
        r = responses(exchange(port, req))
        check(f"{name}: libmicrohttpd's own {want}", len(r) >= 1 and r[0][0] == want, repr(r))
    r = responses(exchange(port, b"GET /v2 HTTP/1.1\r\n\r\n"))
    check("HTTP/1.1 without Host: relud's 400 JSON (RFC 9112 section 3.2)",
          len(r) == 1 and r[0][0] == 400 and "Host" in (error_json(r[0][2]) or ""), repr(r))
    big = b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    r = responses(exchange(port, big))
    check("a 40 KB header over max_header_bytes (32 KiB): libmicrohttpd's own 431",
          len(r) >= 1 and r[0][0] == 431, repr(r)[:200])
    after = d.metric("relud_http_protocol_errors_total{code=\"400\"}") or 0
    check("libmicrohttpd's 400s are counted in relud_http_protocol_errors_total",
          after - before >= 3, f"{before} -> {after}")
    check("and logged", "libmicrohttpd answered 400 itself" in d.text())
    d.stop()

    d = Daemon("--max-header-bytes", "128KiB")
    r = responses(exchange(d.port, big.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")))
    check("the same header under --max-header-bytes 128KiB: 200",
          len(r) == 1 and r[0][0] == 200, repr(r)[:200])
    d.stop()

    # pipelining: a refusal whose body was read keeps the connection for the next request
    d = Daemon()
    live = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    r = responses(exchange(d.port, b"POST /v1/nothere HTTP/1.1\r\nHost: x\r\nContent-Length: 10"
                           b"\r\n\r\n0123456789" + live))
    check("pipelined after a 404 with a body: 404, then 200 on the same connection",
          [x[0] for x in r] == [404, 200], repr(r))
    fwd = b'{"input": [-1, 1], "layers": [{"type": "relu"}]}'
    r = responses(exchange(d.port, b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                           b"\r\n\r\n" % len(fwd) + fwd + b"POST /v1/forward HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 3\r\n\r\n{x}" + live))
    check("pipelined 200, 400, 200 in order",
          [x[0] for x in r] == [200, 400, 200] and r[0][2] == b'{"output":[0,1]}', repr(r))
    d.stop()
    finish()


if __name__ == "__main__":
    main()
