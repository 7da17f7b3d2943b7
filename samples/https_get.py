# Fetch a page over HTTPS with tcpconnect@(host, port, tls=True): certificates checked against
# the system's store (or SSL_CERT_FILE), the host name checked.
#   python -m conhook samples/https_get.py https://example.com/
import sys
from urllib.parse import urlsplit

from con import bootstrap, tcpconnect

def get(url):
    parts = urlsplit(url)
    if parts.scheme != 'https':
        raise SystemExit(f'not an https URL: {url}')
    s = tcpconnect@(parts.hostname, parts.port or 443, tls=True, https_compatible=True)
    with s:
        path = parts.path or '/'
        if parts.query:
            path += '?' + parts.query
        s.write@(f'GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n'
                 f'User-Agent: conhook-https_get\r\n\r\n'.encode())
        response = b''
        try:
            while 1:
                response += s.read@()
        except EOFError:
            pass
    head, _, body = response.partition(b'\r\n\r\n')
    status = head.split(b'\r\n', 1)[0].decode()
    return status, body

def main(url):
    status, body = get@(url)
    print(status, file=sys.stderr)
    sys.stdout.buffer.write(body)

if __name__ == '__main__':
    bootstrap(main, sys.argv[1])
