#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

// `sampleloop consume ... | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

// A failed command exits at once: clients a failed start-up left open (Kafka consumers, timers) must
// not keep the process alive. Success lets the event loop drain, so piped output is never cut short.
main(process.argv).then(
  (code) => {
    if (code === 0) process.exitCode = 0;
    else process.exit(code);
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
