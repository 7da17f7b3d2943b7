"""The network, built on the runtime: byte streams and the sockets that make them.

    streams   the stream contract and the socket stream
    sockets   tcplisten, tcpconnect, unixlisten, unixconnect, the listener
"""
