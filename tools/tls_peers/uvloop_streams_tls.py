"""TLS echo server: asyncio streams with ``ssl=`` on uvloop (the asyncio peer, unchanged, on uvloop's loop)."""
import uvloop

import asyncio_streams_tls

if __name__ == "__main__":
    asyncio_streams_tls.main(loop_factory=uvloop.new_event_loop)
