"""Raw-socket HTTP for the tests that send what no client library would (malformed framing, split writes)."""
import socket


def read_until_closed(port, raw, timeout=5):
    """Sends `raw` on a fresh connection; the bytes the server sent before closing, None if it kept it open."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    s.sendall(raw)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return data
            data += d
    except socket.timeout:
        return None
    finally:
        s.close()
