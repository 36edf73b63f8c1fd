package dev.sampleloop.bench.streams;

/** An input record whose event time is a field of its value. */
public interface EventTimed {
  long eventTime();
}
