"""The runtime: the scheduler and everything con threads use while they run.

The core, importing nothing above it:
    errors          Interrupted and Deadlock
    traps           every way a coroutine yields to the kernel
    threads         a con thread's record and its interruption
    backends        readiness backends (epoll, kqueue, poll, select), one module each
    wakeup          waking a blocked kernel from another OS thread or a signal handler
    kernel          the run loop: ready threads, timers, fd readiness
    outside_threads threads started from outside the kernel (from_thread, from_aio, inputs)

Built on the core:
    prejoin         prejoin scopes; the module compiled code calls as ``__con__``
    primitives      Event, Lock, Semaphore, Queue
    results         gather, race, as_completed: results of calls, on prejoin
    timeouts        sleep and timeout
    fd_waits        waiting for a file descriptor to be readable or writable
    worker_threads  to_thread: blocking calls in a pool of OS threads; CapacityLimiter
    from_thread     from_thread, current_token: OS threads calling into a scheduler
    cactus_stack    con.tree(): the program's threads drawn as a cactus stack
    diagnostics     the watchdog, the schedule seed, the Deadlock report
    never_run_warning  "never run" instead of "never awaited" for a forgotten @
    slips           common mistakes said in conhook's words when their failure surfaces
    bootstrap       running a main function in a new kernel, Ctrl-C included
    hosted          the kernel as a guest of an asyncio or uvloop loop
    aio             con.aio@ and con.from_aio: con threads and asyncio code, both ways
    session         a long-lived hosted kernel whose inputs are %%con cells or REPL lines
"""
