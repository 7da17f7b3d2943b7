# The proposal's echo server over TLS: the same loop, with a certificate.
#   python -m conhook samples/echo_tls.py CERT.pem KEY.pem [PORT]      (PORT: 6840)
#   then: openssl s_client -connect localhost:6840 -CAfile CA.pem
import ssl
import sys

from con import bootstrap, tcplisten, ipv6addr, ipv4addr

def main(context, port):
    main_s = tcplisten@(ipv6addr('::1', port), ipv4addr('127.0.0.1', port), tls=context)
    while 1:
        sibling echo@(main_s.accept@())

def echo(s):
    try:
        try:
            while 1:
                s.write@(s.read@())
        except (EOFError, IOError):
            pass
    finally:
        s.close()

if __name__ == '__main__':
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    try:
        bootstrap(main, context, int(sys.argv[3]) if len(sys.argv) > 3 else 6840)
    except KeyboardInterrupt:
        pass
