"""The queue: transactional outbox relay, Redis Streams region queues, the in-process queue."""
