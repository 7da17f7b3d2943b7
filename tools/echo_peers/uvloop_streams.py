"""Echo server: asyncio streams on uvloop (the asyncio_streams peer, unchanged, on uvloop's loop)."""
import uvloop

import asyncio_streams

if __name__ == "__main__":
    asyncio_streams.main(loop_factory=uvloop.new_event_loop)
