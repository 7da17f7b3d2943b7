"""The network, built on the runtime: byte streams and the sockets that make them.

    stream_contract  the stream contract (ByteStream), the fairness budget, SocketOwner
    streams   the socket stream
    tls       TLS over any stream (tls_wrap, TLSStream)
    sockets   tcplisten, tcpconnect, unixlisten, unixconnect, the listener
    happy_eyeballs  tcpconnect's race of a name's addresses (RFC 8305)
    udp       udpsocket and its datagram socket
"""
