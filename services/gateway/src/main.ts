#!/usr/bin/env node
/** Entry point of the `tidings` bin. Wiring only. */
import { createProgram } from './cli';

createProgram()
  .parseAsync(process.argv)
  .catch((err: Error) => {
    process.stderr.write(`tidings: ${err.message}\n`);
    process.exit(1);
  });
