"""Echo server: asyncio protocols on uvloop (the asyncio_protocols peer, unchanged, on uvloop's loop)."""
import uvloop

import asyncio_protocols

if __name__ == "__main__":
    asyncio_protocols.main(loop_factory=uvloop.new_event_loop)
