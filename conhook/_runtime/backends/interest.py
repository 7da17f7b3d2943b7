"""What a waiter waits for on a file descriptor: the kernel's own bits, the same for every backend."""

READ = 1
WRITE = 2
