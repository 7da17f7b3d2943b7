"""The network, built on the runtime: byte streams and the sockets that make them.

    streams   the stream contract and the socket stream
    tls       TLS over any stream (tls_wrap, TLSStream)
    sockets   tcplisten, tcpconnect, unixlisten, unixconnect, the listener
    happy_eyeballs  tcpconnect's race of a name's addresses (RFC 8305)
    udp       udpsocket and its datagram socket
"""
