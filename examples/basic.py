"""The Go dque README's example, in Python: new, enqueue, close, reopen, peek, dequeue, blocking dequeue.

Run: python examples/basic.py [directory]   (a temporary directory by default)
"""

import sys
import tempfile
import threading

import dque


def main(dirpath: str) -> None:
    # Create a queue of 50 items per segment file; safe mode (every change fsynced).
    q = dque.new("item-queue", dirpath, segment_size=50)
    for i in range(1, 4):
        q.enqueue({"name": f"item {i}", "id": i})
    print("enqueued 3 items; size", q.size())
    q.close()

    # Reopen: the segment size and serializer come from the queue's own config.
    q = dque.open("item-queue", dirpath)
    print("reopened; size", q.size(), "segments", q.segment_numbers())
    print("peek   ", q.peek())
    print("dequeue", q.dequeue())

    # Turbo mode: calls return once the OS has the bytes; synced within max_delay seconds.
    q.turbo_on(max_delay=0.5)
    print("turbo on:", q.turbo)

    # A blocking dequeue, woken by an enqueue from another thread.
    print("dequeue", q.dequeue(), "| size now", q.size())
    print("dequeue", q.dequeue(), "| the queue is now empty")
    threading.Timer(0.2, q.enqueue, args=({"name": "late item", "id": 4},)).start()
    print("dequeue_block ->", q.dequeue_block(timeout=5))

    q.turbo_off()  # everything synced; back to fsync-per-call
    q.close()
    print("closed; every change is on disk")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="dque-example-"))
